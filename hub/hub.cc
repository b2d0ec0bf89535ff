// The composition root: the one place that creates the concrete parts of a hub and wires them.
#include "hub/hub.h"

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <future>
#include <thread>

#include "core/log/logger.h"
#include "core/loop/loop_thread.h"
#include "core/loop/tcp.h"
#include "routing/route_table.h"

namespace edgehub {

namespace {

constexpr std::string_view kLog = "hub";

core::Result<core::SocketAddress> parseListenAddress(std::string_view flag, std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return core::invalidArgument("invalid " + std::string(flag) + " '" + std::string(text) +
                                 "' (expected host:port, e.g. 127.0.0.1:1883)");
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return core::invalidArgument("invalid port in " + std::string(flag) + " '" + std::string(text) + "'");
  }
  return core::SocketAddress{std::string(host), static_cast<uint16_t>(port)};
}

std::string formatAddress(const core::SocketAddress& a) {
  if (a.host.find(':') != std::string::npos) return "[" + a.host + "]:" + std::to_string(a.port);
  return a.host + ":" + std::to_string(a.port);
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

// Accepts MQTT connections. The MQTT protocol itself arrives with issue 03; until then an
// accepted connection is closed at once, so a client sees a clean close instead of a hang.
class MqttAcceptor final : public core::TcpListenerCallbacks {
 public:
  explicit MqttAcceptor(core::Loop& loop) : loop_(loop) {}

  // core::TcpListenerCallbacks
  void onAccept(core::TcpConnectionPtr connection) override {
    HUB_LOG_DEBUG("mqtt", "connection from %s closed: no MQTT protocol handler yet",
                  formatAddress(connection->peerAddress()).c_str());
    connection->close();
    loop_.deferredDelete(std::move(connection));
  }
  void onAcceptError(const core::Status& status) override {
    HUB_LOG_WARN("mqtt", "accept failed: %s", status.toString().c_str());
  }

 private:
  core::Loop& loop_;
};

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
      : options_(std::move(options)), identities_(std::move(identities)), routes_(std::move(routes)) {}

  ~Impl() { stop(); }

  core::Status start() {
    if (running_) return core::failedPrecondition("hub already started");
    unsigned n = options_.io_threads != 0 ? options_.io_threads
                                          : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
      auto thread = std::make_unique<core::LoopThread>("edgehub-io-" + std::to_string(i));
      core::Status s = thread->start();
      if (!s.isOk()) {
        stop();
        return s.withContext("starting IO loop " + std::to_string(i));
      }
      io_threads_.push_back(std::move(thread));
    }
    if (!options_.mqtt_listen.empty()) {
      core::Status s = startMqttListener();
      if (!s.isOk()) {
        stop();
        return s;
      }
    }
    running_ = true;
    HUB_LOG_INFO(kLog, "started: %u IO loop(s), %zu route(s), %zu identit%s", n,
                 options_.manifest.routes.size(), identities_.identities.size(),
                 identities_.identities.size() == 1 ? "y" : "ies");
    return core::Status::ok();
  }

  void stop() {
    if (io_threads_.empty()) return;
    // Listener state belongs to IO loop 0: tear it down there, then stop the loops.
    if (mqtt_listener_ || mqtt_acceptor_) {
      bool ran = runOnLoopAndWait(*io_threads_[0], [this] {
        mqtt_listener_.reset();
        mqtt_acceptor_.reset();
      });
      HUB_RELEASE_ASSERT(ran, "IO loop 0 stopped before its listener was torn down");
    }
    for (auto& t : io_threads_) t->stop();
    io_threads_.clear();
    if (running_) HUB_LOG_INFO(kLog, "stopped");
    running_ = false;
    addresses_.clear();
  }

  core::Status startMqttListener() {
    HUB_ASSIGN_OR_RETURN(core::SocketAddress address, parseListenAddress("--mqtt-listen", options_.mqtt_listen));
    core::LoopThread& io0 = *io_threads_[0];
    core::Status s;
    bool ran = runOnLoopAndWait(io0, [this, &io0, &s, &address] {
      mqtt_acceptor_ = std::make_unique<MqttAcceptor>(*io0.loop());
      auto listener = core::TcpListener::create(*io0.loop(), address, *mqtt_acceptor_);
      if (!listener.isOk()) {
        mqtt_acceptor_.reset();
        s = listener.status();
        return;
      }
      mqtt_listener_ = std::move(listener).value();
      addresses_.push_back(formatAddress(mqtt_listener_->localAddress()));
    });
    if (!ran) return core::unavailable("IO loop 0 stopped before the MQTT listener was set up");
    if (!s.isOk()) return s.withContext("cannot listen for MQTT on " + options_.mqtt_listen);
    HUB_LOG_INFO("mqtt", "listening on %s (plain MQTT)", addresses_.back().c_str());
    return core::Status::ok();
  }

  HubOptions options_;
  core::IdentityConfig identities_;
  // Immutable; a manifest reload (issue 07) builds a new table and swaps the pointer.
  routing::RouteTableConstSharedPtr routes_;
  bool running_ = false;
  std::vector<std::string> addresses_;
  // Declaration order is destruction order: the listener and its acceptor live on IO loop 0 and
  // are destroyed there by stop(), before the loop threads.
  std::vector<std::unique_ptr<core::LoopThread>> io_threads_;
  std::unique_ptr<MqttAcceptor> mqtt_acceptor_;
  core::TcpListenerPtr mqtt_listener_;
};

core::Result<std::unique_ptr<Hub>> Hub::create(HubOptions options) {
  if (!options.mqtt_listen.empty()) {
    HUB_RETURN_IF_ERROR(parseListenAddress("--mqtt-listen", options.mqtt_listen).status());
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
std::vector<std::string> Hub::listeningAddresses() const { return impl_->addresses_; }
const core::IdentityConfig& Hub::identities() const { return impl_->identities_; }
const HubOptions& Hub::options() const { return impl_->options_; }

}  // namespace edgehub
