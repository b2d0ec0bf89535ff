// The composition root: the one place that creates the concrete parts of a hub and wires them.
#include "hub/hub.h"

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <future>
#include <thread>

#include "core/engine/engine.h"
#include "core/engine/memory_store.h"
#include "core/log/logger.h"
#include "core/loop/loop_thread.h"
#include "core/loop/tcp.h"
#include "core/loop/timer.h"
#include "core/twin/twin_service.h"
#include "hub/route_table_router.h"
#include "routing/route_table.h"
#include "store/rocks_store.h"
#include "transports/mqtt/server/server.h"
#include "transports/mqtt/server/tls_channel.h"
#include "transports/upstream/upstream_bridge.h"
#include "transports/upstream/upstream_url.h"

namespace edgehub {

namespace {

constexpr std::string_view kLog = "hub";

core::Status checkListenAddress(std::string_view flag, const std::string& text) {
  if (text.empty()) return core::Status::ok();
  auto a = core::parseSocketAddress(text);
  if (!a.isOk()) {
    std::string m = "invalid ";
    m.append(flag).append(": ").append(a.status().message());
    return core::invalidArgument(std::move(m));
  }
  return core::Status::ok();
}

core::Status makeDirectories(const std::string& path) {
  if (path.empty()) return core::invalidArgument("data directory must not be empty");
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return core::ioError("cannot create data directory '" + prefix + "': " + std::strerror(errno));
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return core::ioError("data directory '" + path + "' is not a directory");
  }
  return core::Status::ok();
}

// Runs `fn` on `thread`'s loop and waits for it. A full post queue is transient (the loop drains
// it), so the post is retried; it fails only once the loop thread no longer accepts work.
// Cold path only (start and stop): the caller blocks.
template <typename Fn>
bool runOnLoopAndWait(core::LoopThread& thread, Fn fn) {
  std::promise<void> done;
  for (;;) {
    if (thread.post([&fn, &done] {
          fn();
          done.set_value();
        })) {
      done.get_future().wait();
      return true;
    }
    if (!thread.isRunning()) return false;
    std::this_thread::yield();
  }
}

}  // namespace

class Hub::Impl {
 public:
  Impl(HubOptions options, core::IdentityConfig identities, routing::RouteTableConstSharedPtr routes)
      : options_(std::move(options)),
        identities_(std::make_shared<const core::IdentityConfig>(std::move(identities))),
        router_(std::make_shared<RouteTableRouter>(std::move(routes), identities_.get())) {}

  ~Impl() { stop(); }

  core::Status start() {
    if (running_) return core::failedPrecondition("hub already started");
    transports::mqtt::SecureChannelFactory tls_factory;
    if (!options_.mqtts_listen.empty()) {
      HUB_ASSIGN_OR_RETURN(tls_factory, prepareTls());
    }
    unsigned n = options_.io_threads != 0 ? options_.io_threads
                                          : std::max(1u, std::thread::hardware_concurrency());
    std::vector<core::Loop*> loops;
    for (unsigned i = 0; i < n; ++i) {
      auto thread = std::make_unique<core::LoopThread>("edgehub-io-" + std::to_string(i));
      core::Status s = thread->start();
      if (!s.isOk()) {
        stop();
        return s.withContext("starting IO loop " + std::to_string(i));
      }
      loops.push_back(thread->loop());
      io_threads_.push_back(std::move(thread));
    }
    core::EngineOptions engine_options;
    engine_options.device_id = identities_->device_id;
    engine_options.endpoint_max_messages = options_.endpoint_max_messages;
    engine_options.endpoint_max_bytes = options_.endpoint_max_bytes;
    if (options_.durability == "memory") {
      store_ = std::make_unique<core::MemoryStore>();
    } else {
      store::RocksStoreOptions so;
      so.path = options_.data_dir + "/store";
      so.durability = options_.durability == "sync" ? store::RocksStoreOptions::Durability::kSync
                                                    : store::RocksStoreOptions::Durability::kAsync;
      so.max_store_bytes = options_.max_store_bytes;
      if (so.max_store_bytes == 0 && options_.manifest.store_and_forward.max_size_bytes) {
        so.max_store_bytes = static_cast<uint64_t>(*options_.manifest.store_and_forward.max_size_bytes);
      }
      so.min_free_disk_bytes = options_.min_free_disk_bytes;
      so.full_policy = options_.store_full_policy == "drop-oldest" ? store::RocksStoreOptions::FullPolicy::kDropOldest
                                                                   : store::RocksStoreOptions::FullPolicy::kReject;
      so.repair = options_.repair_store;
      so.block_cache_bytes = options_.store_cache_bytes;
      auto opened = store::RocksStore::open(so, time());
      if (!opened.isOk()) {
        stop();
        return opened.status().withContext("cannot open the message store in " + so.path);
      }
      auto rocks = std::move(opened).value();
      if (core::Status s = rocks->setEndpoints(router_->endpoints()); !s.isOk()) {
        stop();
        return s.withContext("message store");
      }
      rocks_ = rocks.get();
      store_ = std::move(rocks);
      // Every copy is in the store, so memory holds only queue heads: an equal share of
      // store_memory_bytes per endpoint, whatever the backlog (issue 04: RSS bounded). The
      // rest is read back in batches when a consumer gets to it.
      const uint64_t endpoints = std::max<uint64_t>(1, router_->endpoints().size());
      const uint64_t share = std::max<uint64_t>(kMinEndpointMemoryBytes, options_.store_memory_bytes / endpoints);
      engine_options.endpoint_max_bytes = std::min(engine_options.endpoint_max_bytes, share);
      engine_options.endpoint_max_messages =
          std::min(engine_options.endpoint_max_messages, std::max<uint64_t>(kMinEndpointMemoryMessages, share / 128));
    }
    engine_ = std::make_unique<core::Engine>(engine_options, router_, *store_, time(), loops);
    twins_ = std::make_unique<core::twin::TwinService>(*engine_);
    if (core::Status s = twins_->load(options_.manifest, *identities_); !s.isOk()) {
      stop();
      return s.withContext("module twins");
    }

    transports::mqtt::MqttServerOptions server_options;
    server_options.plain_listen = options_.mqtt_listen;
    server_options.tls_listen = options_.mqtts_listen;
    server_options.make_tls_channel = std::move(tls_factory);
    server_options.hub_host_name = identities_->hub_host_name;
    server_options.max_message_bytes = options_.max_message_bytes;
    server_options.delivery_window = options_.delivery_window;
    server_options.connect_timeout = std::chrono::milliseconds(options_.connect_timeout_ms);
    server_options.max_connections = options_.max_connections;
    server_options.twins = twins_.get();
    server_ = std::make_unique<transports::mqtt::MqttServer>(server_options, *engine_, identities_, time());
    sweep_timers_.resize(n);
    for (unsigned i = 0; i < n; ++i) {
      bool ran = runOnLoopAndWait(*io_threads_[i], [this, i] {
        server_->attachLoop(i);
        // TTL: expired copies leave memory within a second even if nobody reads their queue.
        core::Shard* shard = &engine_->shard(i);
        sweep_timers_[i] = std::make_unique<core::Timer>(*io_threads_[i]->loop(), [shard] { shard->sweepExpired(); });
        sweep_timers_[i]->enable(std::chrono::seconds(1), std::chrono::seconds(1));
      });
      HUB_RELEASE_ASSERT(ran, "IO loop stopped during start");
    }
    if (!options_.upstream.empty()) {
      if (core::Status s = startUpstream(n); !s.isOk()) {
        stop();
        return s;
      }
    }
    core::Status listen_status;
    bool ran = runOnLoopAndWait(*io_threads_[0], [this, &listen_status] { listen_status = server_->startListening(); });
    HUB_RELEASE_ASSERT(ran, "IO loop 0 stopped during start");
    if (!listen_status.isOk()) {
      stop();
      return listen_status;
    }
    running_ = true;
    if (options_.durability == "memory") {
      HUB_LOG_WARN(kLog, "durability: memory: queued messages are lost when the hub stops");
    } else {
      HUB_LOG_INFO(kLog, "durability: %s (store in %s/store)", options_.durability.c_str(), options_.data_dir.c_str());
    }
    if (!server_->plainAddress().empty()) {
      HUB_LOG_INFO("mqtt", "listening on %s (plain MQTT)", server_->plainAddress().c_str());
    }
    if (!server_->tlsAddress().empty()) {
      HUB_LOG_INFO("mqtt", "listening on %s (MQTT over TLS)", server_->tlsAddress().c_str());
    }
    HUB_LOG_INFO(kLog, "started: %u IO loop(s), %zu route(s), %zu endpoint(s), %zu identit%s", n,
                 options_.manifest.routes.size(), engine_->endpoints().size(), identities_->identities.size(),
                 identities_->identities.size() == 1 ? "y" : "ies");
    return core::Status::ok();
  }

  // One UpstreamBridge (and pool) per IO loop, each serving the identities homed there.
  core::Status startUpstream(unsigned loops) {
    namespace up = transports::upstream;
    up::PoolOptions po;
    HUB_ASSIGN_OR_RETURN(po.connection.endpoint, up::parseUpstreamUrl(options_.upstream));
    po.connection.ca_file = options_.upstream_ca;
    po.connection.hub_host_name = identities_->hub_host_name;
    po.connection.keepalive = std::chrono::seconds(options_.upstream_keepalive_secs);
    po.max_connections = std::max(1u, (options_.upstream_max_connections + loops - 1) / loops);
    // A whole window per fill: what one identity publishes in a turn leaves in one corked burst.
    po.fill_quantum = po.connection.max_in_flight;
    bridges_.resize(loops);
    core::Status status;
    for (unsigned i = 0; i < loops && status.isOk(); ++i) {
      bool ran = runOnLoopAndWait(*io_threads_[i], [this, i, &po, &status] {
        auto bridge = up::UpstreamBridge::create(engine_->shard(i), *identities_, po, twins_.get());
        if (!bridge.isOk()) {
          status = bridge.status().withContext("upstream");
          return;
        }
        bridges_[i] = std::move(bridge).value();
      });
      HUB_RELEASE_ASSERT(ran, "IO loop stopped during start");
    }
    if (status.isOk()) {
      HUB_LOG_INFO(kLog, "upstream: %s as %s (at most %u connection(s) per IO loop)", options_.upstream.c_str(),
                   identities_->hub_host_name.c_str(), po.max_connections);
    }
    return status;
  }

  core::Result<transports::mqtt::SecureChannelFactory> prepareTls() {
    std::string cert = options_.tls_cert;
    std::string key = options_.tls_key;
    if (cert.empty() != key.empty()) {
      return core::invalidArgument("--tls-cert and --tls-key must be given together");
    }
    if (cert.empty()) {
      auto files = transports::mqtt::ensureDevTlsFiles(options_.data_dir, options_.tls_names);
      if (!files.isOk()) return files.status().withContext("cannot prepare the development TLS certificates");
      cert = files.value().cert_chain_path;
      key = files.value().key_path;
      ca_path_ = files.value().ca_path;
      if (files.value().created_ca) {
        HUB_LOG_INFO(kLog, "created a development CA: %s (give it to modules as EdgeModuleCACertificateFile)",
                     ca_path_.c_str());
      }
    }
    auto factory = transports::mqtt::makeTlsChannelFactory(cert, key);
    if (!factory.isOk()) return factory.status().withContext("TLS configuration");
    return std::move(factory).value();
  }

  void stop() {
    if (io_threads_.empty()) return;
    if (server_) {
      // Listeners and pending connections live on loop 0: it goes first, so no connection is
      // handed to a loop after that loop shut its sessions down.
      for (size_t i = 0; i < io_threads_.size(); ++i) {
        bool ran = runOnLoopAndWait(*io_threads_[i], [this, i] {
          server_->shutdownLoop(static_cast<uint32_t>(i));
          if (i < sweep_timers_.size()) sweep_timers_[i].reset();
          // Upstream links close; what was in flight stays in the store, unacknowledged.
          if (i < bridges_.size() && bridges_[i]) {
            bridges_[i]->shutdown();
            bridges_[i].reset();
          }
        });
        HUB_RELEASE_ASSERT(ran, "IO loop stopped before its sessions were closed");
      }
    }
    // The store finishes its in-flight commits while the loops still run, so every completion
    // it posts lands (sessions are gone by now: their completions are dropped, unacknowledged).
    if (rocks_ != nullptr) {
      rocks_->stop();
      final_store_stats_ = rocks_->stats();  // what it wrote, including the flush at stop
    }
    if (engine_) final_counters_ = engine_->counters();
    for (auto& t : io_threads_) t->stop();
    io_threads_.clear();
    sweep_timers_.clear();
    bridges_.clear();
    // The loops are gone: nothing can reach the server or the engine any more.
    server_.reset();
    twins_.reset();
    engine_.reset();
    rocks_ = nullptr;
    store_.reset();
    if (running_) HUB_LOG_INFO(kLog, "stopped");
    running_ = false;
  }

  core::CounterSnapshot counterSnapshot() const {
    return engine_ ? engine_->counters() : final_counters_;
  }

  HubOptions options_;
  std::shared_ptr<const core::IdentityConfig> identities_;
  // Immutable; a manifest reload (issue 07) builds a new router and swaps the pointer.
  std::shared_ptr<const RouteTableRouter> router_;
  const core::TimeSource& time() const {
    return options_.time_source != nullptr ? *options_.time_source : real_time_;
  }
  core::RealTimeSource real_time_;
  bool running_ = false;
  std::string ca_path_;
  core::CounterSnapshot final_counters_;
  std::optional<store::StoreStats> final_store_stats_;
  // Declaration order is destruction order, but stop() tears these down explicitly: the server
  // and engine only after the loops that use them have stopped.
  std::vector<std::unique_ptr<core::LoopThread>> io_threads_;
  std::vector<std::unique_ptr<core::Timer>> sweep_timers_;  // one per loop, destroyed on it
  std::vector<std::unique_ptr<transports::upstream::UpstreamBridge>> bridges_;  // one per loop, destroyed on it
  std::unique_ptr<core::MessageStore> store_;
  store::RocksStore* rocks_ = nullptr;  // store_ when it is the RocksDB store
  std::unique_ptr<core::Engine> engine_;
  std::unique_ptr<core::twin::TwinService> twins_;  // used by the server's sessions, on their loops
  std::unique_ptr<transports::mqtt::MqttServer> server_;
};

core::Result<std::unique_ptr<Hub>> Hub::create(HubOptions options) {
  HUB_RETURN_IF_ERROR(checkListenAddress("--mqtt-listen", options.mqtt_listen));
  HUB_RETURN_IF_ERROR(checkListenAddress("--mqtts-listen", options.mqtts_listen));
  if (options.durability != "sync" && options.durability != "async" && options.durability != "memory") {
    return core::invalidArgument("durability must be sync, async or memory, got '" + options.durability + "'");
  }
  if (options.store_full_policy != "reject" && options.store_full_policy != "drop-oldest") {
    return core::invalidArgument("store full policy must be reject or drop-oldest, got '" +
                                 options.store_full_policy + "'");
  }
  if (options.delivery_window == 0 || options.delivery_window > 65535) {
    return core::invalidArgument("delivery window must be 1-65535, got " + std::to_string(options.delivery_window));
  }
  if (options.max_message_bytes == 0 || options.max_message_bytes > core::kMaxMessageBytes) {
    return core::invalidArgument("max message bytes must be 1-" + std::to_string(core::kMaxMessageBytes));
  }
  if (!options.upstream.empty()) {
    auto url = transports::upstream::parseUpstreamUrl(options.upstream);
    if (!url.isOk()) return url.status().withContext("--upstream");
    if (!options.upstream_ca.empty() && !url.value().tls()) {
      return core::invalidArgument("--upstream-ca needs an mqtts:// upstream");
    }
  } else if (!options.upstream_ca.empty()) {
    return core::invalidArgument("--upstream-ca needs --upstream");
  }
  if (options.upstream_max_connections == 0) return core::invalidArgument("upstream max connections must be >= 1");
  if (options.upstream_keepalive_secs < 5 || options.upstream_keepalive_secs > 65535) {
    return core::invalidArgument("upstream keep-alive must be 5-65535 seconds");
  }
  if (options.io_threads > 256) {
    return core::invalidArgument("io_threads must be at most 256, got " + std::to_string(options.io_threads));
  }
  // Every route is compiled before anything else happens: a manifest with any bad route is
  // rejected as a whole, with each failing route named (routing-language.md §15).
  std::vector<routing::RouteCompileError> route_errors;
  auto routes = routing::RouteTable::build(options.manifest, &route_errors);
  if (!routes.isOk()) {
    // Appends, not operator+: GCC 12 reports a false -Wrestrict on `s += "\n" + t` at -O3.
    std::string message = "the manifest's routes are invalid:";
    for (const auto& e : route_errors) message.append("\n").append(e.toString());
    if (route_errors.empty()) message.append(" ").append(routes.status().message());
    return core::invalidArgument(std::move(message));
  }
  HUB_RETURN_IF_ERROR(makeDirectories(options.data_dir));
  core::IdentityConfig identities;
  if (options.identities) {
    identities = *options.identities;
  } else {
    HUB_ASSIGN_OR_RETURN(identities, core::loadOrCreateIdentities(options.data_dir, options.manifest));
  }
  return std::unique_ptr<Hub>(new Hub(std::make_unique<Impl>(std::move(options), std::move(identities),
                                                           std::move(routes).value())));
}

Hub::Hub(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Hub::~Hub() = default;

core::Status Hub::start() { return impl_->start(); }
void Hub::stop() { impl_->stop(); }
bool Hub::running() const { return impl_->running_; }
std::vector<std::string> Hub::listeningAddresses() const {
  std::vector<std::string> out;
  if (!mqttAddress().empty()) out.push_back(mqttAddress());
  if (!mqttsAddress().empty()) out.push_back(mqttsAddress());
  return out;
}
std::string Hub::mqttAddress() const { return impl_->server_ ? impl_->server_->plainAddress() : std::string(); }
std::string Hub::mqttsAddress() const { return impl_->server_ ? impl_->server_->tlsAddress() : std::string(); }
std::string Hub::tlsCaPath() const { return impl_->ca_path_; }
std::vector<std::pair<std::string, uint64_t>> Hub::counters() const {
  core::CounterSnapshot s = impl_->counterSnapshot();
  std::vector<std::pair<std::string, uint64_t>> out;
  for (size_t i = 0; i < core::kCounterCount; ++i) {
    out.emplace_back(std::string(core::counterName(static_cast<core::Counter>(i))), s.values[i]);
  }
  std::optional<store::StoreStats> store_stats = impl_->final_store_stats_;
  if (impl_->rocks_ != nullptr) store_stats = impl_->rocks_->stats();
  if (store_stats) {
    // The store's own drops and commits (drops by reason: ttl_expiry, store_full), and the
    // bytes it wrote (after stop(): the final figures).
    const store::StoreStats& st = *store_stats;
    out.emplace_back("store_dropped_ttl_expiry", st.dropped_ttl_expiry);
    out.emplace_back("store_dropped_store_full", st.dropped_store_full);
    out.emplace_back("store_rejected_store_full", st.rejected_store_full);
    out.emplace_back("store_corrupt_skipped", st.corrupt_skipped);
    out.emplace_back("store_messages", st.messages);
    out.emplace_back("store_bytes", st.bytes);
    out.emplace_back("store_commits", st.commits);
    out.emplace_back("store_batched_requests", st.batched_requests);
    out.emplace_back("store_appended_bytes", st.appended_bytes);
    out.emplace_back("store_wal_bytes", st.wal_bytes);
    out.emplace_back("store_flush_bytes", st.flush_bytes);
    out.emplace_back("store_compaction_bytes", st.compaction_bytes);
  }
  return out;
}
uint64_t Hub::counter(std::string_view name) const {
  for (const auto& [n, v] : counters()) {
    if (n == name) return v;
  }
  return 0;
}
uint64_t Hub::queuedMessages(std::string_view endpoint) const {
  if (!impl_->engine_) return 0;
  auto endpoints = impl_->engine_->endpoints();
  for (uint32_t e = 0; e < endpoints.size(); ++e) {
    if (endpoints[e].name == endpoint) return impl_->engine_->accountedMessages(e);
  }
  return 0;
}
const core::IdentityConfig& Hub::identities() const { return *impl_->identities_; }
const HubOptions& Hub::options() const { return impl_->options_; }

}  // namespace edgehub
