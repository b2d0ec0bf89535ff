#include "bench/loadgen/loadgen.h"

#include "core/log/logger.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>

#include "bench/loadgen/bench_setup.h"
#include "bench/loadgen/child_process.h"
#include "bench/loadgen/latency_histogram.h"
#include "bench/loadgen/payload.h"
#include "bench/loadgen/sequence_checker.h"
#include "core/loop/loop_thread.h"
#include "core/loop/timer.h"
#include "transports/auth/sas_token.h"
#include "transports/mqtt/blocking_client.h"
#include "transports/mqtt/decoder.h"
#include "transports/mqtt/encoder.h"
#include "transports/tls/dev_certs.h"

namespace edgehub::bench {

namespace mqtt = transports::mqtt;
using Clock = std::chrono::steady_clock;

namespace {

// Above this many bytes waiting in a connection's user-space buffer a publisher stops producing
// until onWriteDone(): the kernel buffer is full, so more would only grow our memory.
constexpr size_t kHighWaterBytes = 256 * 1024;
// Messages one pump may produce before yielding to the loop (so reads, acks and the other
// clients of the loop get their turn; bounded work per callback, style rule 26). Pumps run on
// every read (PUBACKs), on onWriteDone() and on the loop's 1 ms tick, so an unpaced QoS 0
// publisher can reach kPumpBatch x 1000 msgs/s even when the kernel takes every write whole.
// Why no zero-delay timer for "pump again next turn": libuv runs a timer re-armed with 0 ms
// from its own callback again in the same timer phase, which never ends.
constexpr uint64_t kPumpBatch = 1024;
constexpr uint16_t kKeepAliveSeconds = 60;

std::string formatAddress(const core::SocketAddress& a) {
  return (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
         std::to_string(a.port);
}

// How one client connects and what it publishes to or subscribes to.
struct ClientSpec {
  std::string name;  // "pub0", "recv1", "idle3"
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  bool clean_session = true;
  std::string topic;   // publishers
  std::string filter;  // receivers
  uint8_t sub_qos = 1;
};

struct alignas(64) PublisherCounters {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> acked{0};  // PUBACKs (QoS 1) or sent (QoS 0)
  std::atomic<bool> done{false};
};
struct alignas(64) ReceiverCounters {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> last_ns{0};
};
struct ReceiverResult {
  SequenceChecker checker;
  LatencyHistogram histogram;
  std::vector<uint64_t> last_ns_by_publisher;  // when each publisher's latest message arrived
};

// State shared by the controller (main) thread and the client loops of one run.
struct RunState {
  const LoadgenOptions& options;
  core::SocketAddress address;
  uint32_t publishers = 0;
  uint32_t receivers = 0;
  std::atomic<uint32_t> ready{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string error;  // first failure; guarded by mu
  // Written by the controller before it posts the start; read on the loops after it.
  uint64_t start_ns = 0;
  uint64_t end_ns = UINT64_MAX;  // duration mode: publishers stop at this time
  std::unique_ptr<PublisherCounters[]> pub;
  std::unique_ptr<ReceiverCounters[]> recv;
  std::vector<std::unique_ptr<ReceiverResult>> results;  // filled on teardown

  explicit RunState(const LoadgenOptions& o) : options(o) {}
  void fail(std::string message) {
    std::lock_guard<std::mutex> lock(mu);
    if (error.empty()) error = std::move(message);
    failed.store(true, std::memory_order_release);
  }
  std::string firstError() {
    std::lock_guard<std::mutex> lock(mu);
    return error;
  }
};

// One MQTT client connection: connect, CONNECT/CONNACK, decoding, batched output, keepalive.
// Subclasses add the publisher and receiver behaviour.
class Client : public core::TcpConnectionCallbacks, public mqtt::PacketHandler {
 public:
  Client(core::Loop& loop, RunState& run, ClientSpec spec)
      : loop_(loop), run_(run), spec_(std::move(spec)),
        decoder_(mqtt::DecoderOptions{.role = mqtt::Role::kClient}, *this) {
    out_.reserve(64 * 1024);
  }
  ~Client() override = default;

  void start() {
    auto c = core::TcpConnection::connect(loop_, run_.address, *this);
    if (!c.isOk()) {
      fail("cannot connect to " + formatAddress(run_.address) + ": " + std::string(c.status().message()));
      return;
    }
    conn_ = std::move(c).value();
  }
  // Sends DISCONNECT if it can and closes. No callback runs afterwards.
  void shutdown() {
    closing_ = true;
    if (conn_ && conn_->isConnected() && !conn_->isClosing()) {
      out_.clear();
      mqtt::appendDisconnect(out_);
      conn_->write(out_).permitUncheckedError();
    }
    conn_.reset();
  }
  void ping() {
    if (!connacked_ || closing_) return;
    mqtt::appendPingreq(out_);
    flush();
  }

  // core::TcpConnectionCallbacks
  void onConnected(const core::Status& status) override {
    if (!status.isOk()) {
      fail("cannot connect to " + formatAddress(run_.address) + ": " + std::string(status.message()));
      return;
    }
    conn_->setNoDelay(true).permitUncheckedError();
    if (core::Status s = conn_->startReading(); !s.isOk()) {
      fail(spec_.name + ": cannot read from " + formatAddress(run_.address) + ": " + std::string(s.message()));
      return;
    }
    mqtt::Connect connect;
    connect.protocol_name = "MQTT";
    connect.clean_session = spec_.clean_session;
    connect.keep_alive_seconds = kKeepAliveSeconds;
    connect.client_id = spec_.client_id;
    if (spec_.username) connect.username = *spec_.username;
    if (spec_.password) {
      connect.password = std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(spec_.password->data()), spec_.password->size());
    }
    if (core::Status s = mqtt::appendConnect(out_, connect); !s.isOk()) {
      fail(spec_.name + ": cannot encode CONNECT: " + std::string(s.message()));
      return;
    }
    flush();
  }
  void onData(core::ConstBytes data) override {
    if (closing_) return;
    core::Status s = decoder_.feed(data);
    if (!s.isOk()) {
      if (!run_.failed.load(std::memory_order_relaxed)) {
        fail(spec_.name + ": bad data from " + formatAddress(run_.address) + ": " + std::string(s.message()));
      }
      closing_ = true;
      conn_->close();
      return;
    }
    afterData();
    flush();
  }
  void onWriteDone() override { writable(); }
  void onClosed(const core::Status& reason) override {
    if (closing_) return;
    closing_ = true;
    std::string why = reason.isOk() ? "closed by the peer" : std::string(reason.message());
    if (!connacked_) {
      fail(spec_.name + ": " + formatAddress(run_.address) + " closed the connection before CONNACK (" +
           why + ")");
    } else {
      fail(spec_.name + ": connection to " + formatAddress(run_.address) + " lost mid-run (" + why + ")");
    }
  }

  // mqtt::PacketHandler
  core::Status onPacket(const mqtt::Packet& packet) override {
    switch (mqtt::packetTypeOf(packet)) {
      case mqtt::PacketType::kConnack: {
        const auto& ack = std::get<mqtt::Connack>(packet);
        if (ack.code != mqtt::ConnackCode::kAccepted) {
          fail(spec_.name + ": CONNACK refused with code " + std::to_string(static_cast<int>(ack.code)) +
               connackName(ack.code));
          return core::unauthenticated("CONNACK refused");
        }
        connacked_ = true;
        onConnack();
        return core::Status::ok();
      }
      case mqtt::PacketType::kPublish:
        return onPublish(std::get<mqtt::Publish>(packet));
      case mqtt::PacketType::kPuback:
        onPuback();
        return core::Status::ok();
      case mqtt::PacketType::kSuback: {
        const auto& ack = std::get<mqtt::Suback>(packet);
        for (uint8_t code : ack.return_codes) {
          if (code == mqtt::kSubackFailure) {
            fail(spec_.name + ": SUBSCRIBE to '" + spec_.filter + "' refused (SUBACK 0x80)");
            return core::permissionDenied("SUBACK failure");
          }
        }
        onSuback();
        return core::Status::ok();
      }
      case mqtt::PacketType::kPingresp:
        return core::Status::ok();
      default:
        fail(spec_.name + ": unexpected " + std::string(mqtt::packetTypeName(mqtt::packetTypeOf(packet))));
        return core::failedPrecondition("unexpected packet");
    }
  }

 protected:
  static std::string connackName(mqtt::ConnackCode code) {
    switch (code) {
      case mqtt::ConnackCode::kUnacceptableProtocolVersion: return " (unacceptable protocol version)";
      case mqtt::ConnackCode::kIdentifierRejected: return " (identifier rejected)";
      case mqtt::ConnackCode::kServerUnavailable: return " (server unavailable)";
      case mqtt::ConnackCode::kBadUsernameOrPassword: return " (bad username or password)";
      case mqtt::ConnackCode::kNotAuthorized: return " (not authorized)";
      default: return "";
    }
  }
  virtual void onConnack() = 0;
  virtual void onSuback() {}
  virtual core::Status onPublish(const mqtt::Publish&) { return core::Status::ok(); }
  virtual void onPuback() {}
  virtual void afterData() {}
  virtual void writable() {}

  void fail(std::string message) { run_.fail(std::move(message)); }
  void markReady() { run_.ready.fetch_add(1, std::memory_order_acq_rel); }
  void flush() {
    if (out_.empty() || !conn_ || closing_) return;
    core::Status s = conn_->write(out_);
    out_.clear();
    // A socket error closes the connection; onClosed() reports it.
    s.permitUncheckedError();
  }
  size_t buffered() const { return conn_ ? conn_->bufferedBytes() : 0; }

  core::Loop& loop_;
  RunState& run_;
  const ClientSpec spec_;
  mqtt::Decoder decoder_;
  mqtt::ByteBuffer out_;  // packets of this turn, written in one gather write by flush()
  core::TcpConnectionPtr conn_;
  bool connacked_ = false;
  bool closing_ = false;
};

class Publisher final : public Client {
 public:
  Publisher(core::Loop& loop, RunState& run, ClientSpec spec, uint32_t index)
      : Client(loop, run, std::move(spec)), index_(index) {
    const LoadgenOptions& o = run.options;
    limit_ = o.duration_s > 0 ? UINT64_MAX : o.messages;
    rate_per_pub_ = o.rate > 0 ? static_cast<double>(o.rate) / run.publishers : 0;
    // Prebuild one PUBLISH; each message copies it and patches packet id and payload header.
    std::vector<uint8_t> payload(o.size);
    for (size_t i = kPayloadHeaderSize; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>('a' + i % 26);
    mqtt::Publish p;
    p.topic = spec_.topic;
    p.qos = o.qos;
    p.packet_id = o.qos > 0 ? 1 : 0;
    p.payload = payload;
    header_size_ = mqtt::publishHeaderSize(spec_.topic, o.qos, payload.size());
    if (core::Status s = mqtt::appendPublish(template_, p); !s.isOk()) {
      fail(spec_.name + ": cannot encode PUBLISH: " + std::string(s.message()));
    }
  }

  void begin() {
    running_ = true;
    pump();
  }

  // Produces what the window, the rate and the send buffer allow, up to kPumpBatch messages,
  // as one write.
  void pump() {
    if (!running_ || done_ || closing_ || !conn_) return;
    const LoadgenOptions& o = run_.options;
    uint64_t now = monotonicNowNs();
    if (now >= run_.end_ns) {
      finish();
      return;
    }
    uint64_t can = std::min(limit_ - sent_, kPumpBatch);
    if (o.qos > 0) {
      // Refill only once a quarter of the window is free: a broker that acks one PUBLISH per
      // write would otherwise make us send one PUBLISH per write too (a syscall per message).
      uint64_t free_slots = o.window - inflight_;
      can = free_slots >= std::max<uint32_t>(1, o.window / 4) ? std::min<uint64_t>(can, free_slots) : 0;
    }
    if (rate_per_pub_ > 0) {
      double elapsed = static_cast<double>(now - run_.start_ns) / 1e9;
      uint64_t due = static_cast<uint64_t>(rate_per_pub_ * elapsed) + 1;
      can = std::min(can, due > sent_ ? due - sent_ : 0);
    }
    if (buffered() > kHighWaterBytes) can = 0;  // resumed by onWriteDone()
    if (can > 0) {
      const size_t msg_size = template_.size();
      size_t base = out_.size();
      out_.resize(base + can * msg_size);
      uint8_t* w = out_.data() + base;
      for (uint64_t i = 0; i < can; ++i, w += msg_size) {
        std::memcpy(w, template_.data(), msg_size);
        if (o.qos > 0) {
          w[header_size_ - 2] = static_cast<uint8_t>(next_id_ >> 8);
          w[header_size_ - 1] = static_cast<uint8_t>(next_id_ & 0xff);
          next_id_ = next_id_ == 65535 ? 1 : static_cast<uint16_t>(next_id_ + 1);
        }
        writePayloadHeader(w + header_size_, PayloadHeader{index_, sent_ + i, monotonicNowNs()});
      }
      sent_ += can;
      inflight_ += static_cast<uint32_t>(can);
      if (o.qos == 0) inflight_ = 0;
      run_.pub[index_].sent.store(sent_, std::memory_order_relaxed);
      flush();
    }
    if (sent_ >= limit_) {
      finish();
      return;
    }
  }

 private:
  void onConnack() override { markReady(); }
  void onPuback() override {
    if (inflight_ > 0) --inflight_;
    ++acked_;
  }
  void afterData() override {
    run_.pub[index_].acked.store(run_.options.qos > 0 ? acked_ : sent_, std::memory_order_relaxed);
    pump();
  }
  void writable() override { pump(); }
  void finish() {
    if (done_) return;
    done_ = true;
    run_.pub[index_].sent.store(sent_, std::memory_order_relaxed);
    if (run_.options.qos == 0) run_.pub[index_].acked.store(sent_, std::memory_order_relaxed);
    run_.pub[index_].done.store(true, std::memory_order_release);
  }

  const uint32_t index_;
  uint64_t limit_ = 0;
  double rate_per_pub_ = 0;
  mqtt::ByteBuffer template_;
  size_t header_size_ = 0;
  uint64_t sent_ = 0;
  uint32_t inflight_ = 0;
  uint64_t acked_ = 0;
  uint16_t next_id_ = 1;
  bool running_ = false;
  bool done_ = false;
};

class Receiver final : public Client {
 public:
  Receiver(core::Loop& loop, RunState& run, ClientSpec spec, uint32_t index)
      : Client(loop, run, std::move(spec)), index_(index),
        result_(std::make_unique<ReceiverResult>(
            ReceiverResult{SequenceChecker(run.publishers, spec_.name), LatencyHistogram(),
                           std::vector<uint64_t>(run.publishers, 0)})) {}

  std::unique_ptr<ReceiverResult> takeResult() { return std::move(result_); }

 private:
  void onConnack() override {
    mqtt::SubscribeTopic topic{spec_.filter, spec_.sub_qos};
    if (core::Status s = mqtt::appendSubscribe(out_, 1, std::span<const mqtt::SubscribeTopic>(&topic, 1));
        !s.isOk()) {
      fail(spec_.name + ": cannot encode SUBSCRIBE: " + std::string(s.message()));
    }
  }
  void onSuback() override { markReady(); }
  core::Status onPublish(const mqtt::Publish& p) override {
    if (p.qos > 0) mqtt::appendPuback(out_, p.packet_id);
    if (p.payload.size() < kPayloadHeaderSize) {
      ++short_payloads_;
      if (short_payloads_ == 1) {
        fail(spec_.name + ": received a " + std::to_string(p.payload.size()) + "-byte payload on '" +
             std::string(p.topic) + "' (not from this load generator?)");
      }
      return core::Status::ok();
    }
    uint64_t now = monotonicNowNs();
    PayloadHeader h = readPayloadHeader(p.payload.data());
    result_->checker.record(h.publisher, h.sequence);
    if (h.publisher < result_->last_ns_by_publisher.size()) result_->last_ns_by_publisher[h.publisher] = now;
    if (h.sequence >= run_.options.warmup_messages) {
      result_->histogram.record(now >= h.send_ns ? now - h.send_ns : 0);
    }
    ++received_;
    last_ns_ = now;
    return core::Status::ok();
  }
  void afterData() override {
    run_.recv[index_].received.store(received_, std::memory_order_relaxed);
    run_.recv[index_].last_ns.store(last_ns_, std::memory_order_relaxed);
  }

  const uint32_t index_;
  std::unique_ptr<ReceiverResult> result_;
  uint64_t received_ = 0;
  uint64_t last_ns_ = 0;
  uint64_t short_payloads_ = 0;
};

// The clients of one loop thread and its timers. Created and destroyed on that thread.
struct LoopClients {
  std::vector<std::unique_ptr<Publisher>> publishers;
  std::vector<std::unique_ptr<Receiver>> receivers;
  std::unique_ptr<core::Timer> tick;  // pacing and duration end, every 1 ms
  std::unique_ptr<core::Timer> ping;  // keepalive
};

// --upstream-drain: what the receivers on the upstream broker subscribe to (every identity's
// telemetry); their session is made before the hub can connect (subscribeUpstreamReceivers).
constexpr std::string_view kUpstreamReceiverFilter = "devices/#";

// Where a workload goes and how its clients identify themselves.
struct Endpoint {
  std::string label;
  core::SocketAddress address;
  bool hub_dialect = false;                 // IoT Hub topics and SAS credentials
  std::optional<core::IdentityConfig> ids;  // hub dialect
  std::optional<pid_t> pid;                 // CPU and RSS of this process
  // --upstream-drain: the broker between the hub and the receivers. Its CPU is reported next to
  // the hub's, because on a small machine the two share the cores the drain is measured on.
  std::optional<pid_t> relay_pid;
};

core::Result<ClientSpec> makeSpec(const Endpoint& ep, const LoadgenOptions& o, const std::string& name,
                                  bool publisher) {
  ClientSpec spec;
  spec.name = name;
  if (!ep.hub_dialect) {
    spec.client_id = name;
    spec.topic = "bench/" + name;
    spec.filter = "bench/#";
    spec.sub_qos = o.qos;
    spec.clean_session = true;  // a broker keeps persistent sessions across runs: stale messages
    return spec;
  }
  const core::IdentityConfig& ids = *ep.ids;
  const core::IdentityEntry* entry = ids.findModule(name);
  if (entry == nullptr) {
    return core::invalidArgument("the identity file has no module '" + name + "' of device '" +
                                 ids.device_id + "'");
  }
  const std::string& d = ids.device_id;
  spec.client_id = d + "/" + name;
  spec.username = ids.hub_host_name + "/" + d + "/" + name + "/?api-version=2021-04-12";
  int64_t expiry = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count() + 3600;
  spec.password = transports::auth::makeSasToken(
      ids.hub_host_name + "%2Fdevices%2F" + d + "%2Fmodules%2F" + name, entry->primary_key, expiry);
  if (spec.password->empty()) return core::invalidArgument("cannot sign a SAS token for module '" + name + "'");
  spec.clean_session = publisher;  // receivers keep a session, like the SDKs
  spec.topic = "devices/" + d + "/modules/" + name + "/messages/events/%24.on=out/";
  spec.filter = "devices/" + d + "/modules/" + name + "/inputs/#";
  spec.sub_qos = 1;
  return spec;
}

std::string padRight(std::string s, size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

// Between the phases of --backlog --backlog-restart: restarts the target and returns where it
// listens now; fills stop_ms and ready_ms.
using RestartFn = std::function<core::Result<Endpoint>(BacklogReport&)>;

// Runs one workload (or the idle measurement) against one endpoint.
TargetReport runWorkload(const LoadgenOptions& o, const Endpoint& initial_ep, std::ostream& progress,
                         const RestartFn& restart = {}) {
  Endpoint ep = initial_ep;  // a restart (--backlog-restart) moves it
  TargetReport report;
  report.target = ep.label;
  report.idle = o.idle > 0;
  const uint32_t n_pub = o.idle > 0 ? 0 : o.publishers;
  const uint32_t n_recv = o.idle > 0 ? o.idle : o.receivers;

  RunState run(o);
  run.address = ep.address;
  run.publishers = n_pub;
  run.receivers = n_recv;
  run.pub = std::make_unique<PublisherCounters[]>(std::max<uint32_t>(n_pub, 1));
  run.recv = std::make_unique<ReceiverCounters[]>(std::max<uint32_t>(n_recv, 1));

  std::vector<ClientSpec> pub_specs, recv_specs;
  for (uint32_t i = 0; i < n_pub; ++i) {
    auto s = makeSpec(ep, o, "pub" + std::to_string(i), true);
    if (!s.isOk()) {
      report.error = std::string(s.status().message());
      return report;
    }
    pub_specs.push_back(std::move(s).value());
  }
  for (uint32_t j = 0; j < n_recv; ++j) {
    if (o.upstream && ep.hub_dialect) {
      // --upstream-drain: the receivers read the upstream broker, not the hub.
      ClientSpec spec;
      spec.name = "recv" + std::to_string(j);
      spec.client_id = spec.name;
      spec.filter = std::string(kUpstreamReceiverFilter);
      spec.sub_qos = 1;
      spec.clean_session = false;  // resumes the session subscribeUpstreamReceivers() made
      recv_specs.push_back(std::move(spec));
      continue;
    }
    auto s = makeSpec(ep, o, (o.idle > 0 ? "idle" : "recv") + std::to_string(j), false);
    if (!s.isOk()) {
      report.error = std::string(s.status().message());
      return report;
    }
    recv_specs.push_back(std::move(s).value());
  }

  const uint32_t n_threads = std::max<uint32_t>(1, o.threads);
  std::vector<std::unique_ptr<core::LoopThread>> threads;
  std::vector<std::unique_ptr<LoopClients>> clients;
  auto postAll = [&](auto make_fn) {
    for (uint32_t t = 0; t < threads.size(); ++t) {
      LoopClients* lc = clients[t].get();
      core::LoopThread* lt = threads[t].get();
      if (!lt->post(make_fn(lt, lc))) run.fail("cannot post to a client loop (queue full)");
    }
  };
  auto teardown = [&]() {
    postAll([&run](core::LoopThread*, LoopClients* lc) {
      return [&run, lc] {
        lc->tick.reset();
        lc->ping.reset();
        for (auto& p : lc->publishers) p->shutdown();
        for (auto& r : lc->receivers) r->shutdown();
        lc->publishers.clear();
        lc->receivers.clear();
        (void)run;
      };
    });
    for (auto& t : threads) t->stop();
  };

  for (uint32_t t = 0; t < n_threads; ++t) {
    threads.push_back(std::make_unique<core::LoopThread>("bench-" + std::to_string(t)));
    clients.push_back(std::make_unique<LoopClients>());
    if (core::Status s = threads.back()->start(); !s.isOk()) {
      report.error = "cannot start a client loop: " + std::string(s.message());
      teardown();
      return report;
    }
  }
  // Publishers and receivers are spread round-robin over the loops.
  for (uint32_t t = 0; t < n_threads; ++t) {
    LoopClients* lc = clients[t].get();
    std::vector<std::pair<uint32_t, ClientSpec>> mine_pub, mine_recv;
    for (uint32_t i = 0; i < n_pub; ++i) {
      if (i % n_threads == t) mine_pub.emplace_back(i, pub_specs[i]);
    }
    for (uint32_t j = 0; j < n_recv; ++j) {
      if ((n_pub + j) % n_threads == t) mine_recv.emplace_back(j, recv_specs[j]);
    }
    core::LoopThread* lt = threads[t].get();
    bool posted = lt->post([lt, lc, &run, mp = std::move(mine_pub), mr = std::move(mine_recv)]() mutable {
      core::Loop& loop = *lt->loop();
      for (auto& [i, spec] : mp) lc->publishers.push_back(std::make_unique<Publisher>(loop, run, std::move(spec), i));
      for (auto& [j, spec] : mr) lc->receivers.push_back(std::make_unique<Receiver>(loop, run, std::move(spec), j));
      lc->ping = std::make_unique<core::Timer>(loop, [lc] {
        for (auto& p : lc->publishers) p->ping();
        for (auto& r : lc->receivers) r->ping();
      });
      lc->ping->enable(std::chrono::seconds(kKeepAliveSeconds / 2), std::chrono::seconds(kKeepAliveSeconds / 2));
      for (auto& p : lc->publishers) p->start();
      // --backlog: the receivers connect only once everything is queued.
      if (!run.options.backlog) {
        for (auto& r : lc->receivers) r->start();
      }
    });
    if (!posted) run.fail("cannot post to a client loop");
  }

  const auto hard_deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  // Connecting is quick when it works; a server that never answers CONNECT fails fast.
  const auto connect_deadline = std::min(hard_deadline, Clock::now() + std::chrono::seconds(20));
  const uint32_t want_ready = n_pub + (o.backlog ? 0 : n_recv);
  while (!run.failed.load(std::memory_order_acquire) && run.ready.load(std::memory_order_acquire) < want_ready) {
    if (Clock::now() > connect_deadline) {
      run.fail("timed out waiting for CONNACK/SUBACK: " + std::to_string(run.ready.load()) + " of " +
               std::to_string(want_ready) + " clients ready");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  std::optional<ProcessStats> before;
  auto stats = [&]() -> std::optional<ProcessStats> {
    if (!ep.pid) return std::nullopt;
    auto s = readProcessStats(*ep.pid);
    return s.isOk() ? std::optional<ProcessStats>(s.value()) : std::nullopt;
  };
  // The CPU of the other processes in the measured interval: the relay broker (--upstream-drain)
  // and this one (publishers and receivers; only receivers during a drain).
  auto cpuOf = [](std::optional<pid_t> pid) -> std::optional<double> {
    if (!pid) return std::nullopt;
    auto s = readProcessStats(*pid);
    return s.isOk() ? std::optional<double>(s->cpu_seconds) : std::nullopt;
  };
  std::optional<double> relay_before, clients_before;
  auto markOthers = [&] {
    relay_before = cpuOf(ep.relay_pid);
    clients_before = cpuOf(::getpid());
  };
  if (!run.failed.load()) {
    before = stats();
    markOthers();
    run.start_ns = monotonicNowNs();
    if (o.duration_s > 0 && o.idle == 0) run.end_ns = run.start_ns + static_cast<uint64_t>(o.duration_s * 1e9);
    postAll([&run](core::LoopThread* lt, LoopClients* lc) {
      return [&run, lt, lc] {
        lc->tick = std::make_unique<core::Timer>(*lt->loop(), [lc] {
          for (auto& p : lc->publishers) p->pump();
        });
        if (!lc->publishers.empty()) lc->tick->enable(std::chrono::milliseconds(1), std::chrono::milliseconds(1));
        for (auto& p : lc->publishers) p->begin();
        (void)run;
      };
    });
  }

  uint64_t acked = 0;
  auto totals = [&](uint64_t& sent, uint64_t& received, bool& all_done, uint64_t& last_ns) {
    sent = 0, received = 0, last_ns = 0, acked = 0;
    all_done = true;
    for (uint32_t i = 0; i < n_pub; ++i) {
      sent += run.pub[i].sent.load(std::memory_order_relaxed);
      acked += run.pub[i].acked.load(std::memory_order_relaxed);
      all_done = all_done && run.pub[i].done.load(std::memory_order_acquire);
    }
    for (uint32_t j = 0; j < n_recv; ++j) {
      received += run.recv[j].received.load(std::memory_order_relaxed);
      last_ns = std::max(last_ns, run.recv[j].last_ns.load(std::memory_order_relaxed));
    }
  };

  uint64_t sent = 0, received = 0, last_ns = 0;
  bool all_done = false;
  uint64_t drain_start_ns = 0;
  if (o.backlog && !run.failed.load()) {
    // Ingest: every PUBACK counted; the rate over the first and the last tenth compares a
    // nearly empty store with a nearly complete backlog.
    report.backlog.emplace();
    BacklogReport& bl = *report.backlog;
    const uint64_t total = o.messages * n_pub;
    bl.queued = total;
    const uint64_t tenth = std::max<uint64_t>(1, total / 10);
    uint64_t t_first = 0, t_last = 0, acked_first = 0, acked_last = 0;
    uint64_t prev_ns = run.start_ns, prev_acked = 0;
    auto last_line = Clock::now();
    while (!run.failed.load(std::memory_order_acquire)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      totals(sent, received, all_done, last_ns);
      const uint64_t now_ns = monotonicNowNs();
      if (t_first == 0 && acked >= tenth) {
        t_first = now_ns;
        acked_first = acked;
      }
      if (t_last == 0 && acked >= total - tenth) {
        // The window starts at the sample before the crossing, so a fast ingest that crosses
        // and finishes within one sample still measures a positive interval.
        t_last = prev_ns;
        acked_last = prev_acked;
      }
      prev_ns = now_ns;
      prev_acked = acked;
      if (all_done && acked >= sent) break;
      if (Clock::now() > hard_deadline) {
        run.fail("timed out after " + std::to_string(static_cast<int>(o.timeout_s)) + " s of ingest: " +
                 std::to_string(acked) + " of " + std::to_string(total) + " PUBLISHes acknowledged");
        break;
      }
      if (o.progress && Clock::now() - last_line >= std::chrono::seconds(1)) {
        char line[160];
        std::snprintf(line, sizeof line, "\r%s: ingest, %llu of %llu acknowledged   ", ep.label.c_str(),
                      static_cast<unsigned long long>(acked), static_cast<unsigned long long>(total));
        progress << line << std::flush;
        last_line = Clock::now();
      }
    }
    const uint64_t t_end = monotonicNowNs();
    if (!run.failed.load()) {
      const auto secs = [](uint64_t a, uint64_t b) { return b > a ? static_cast<double>(b - a) / 1e9 : 0.0; };
      bl.ingest_seconds = secs(run.start_ns, t_end);
      if (bl.ingest_seconds > 0) bl.ingest_per_sec = static_cast<double>(acked) / bl.ingest_seconds;
      if (secs(run.start_ns, t_first) > 0) bl.ingest_first_per_sec = static_cast<double>(acked_first) / secs(run.start_ns, t_first);
      if (secs(t_last, t_end) > 0) bl.ingest_last_per_sec = static_cast<double>(acked - acked_last) / secs(t_last, t_end);
      if (auto now_stats = stats(); now_stats && before) {
        bl.ingest_cpu_seconds = now_stats->cpu_seconds - before->cpu_seconds;
        bl.ingest_peak_rss_bytes = now_stats->hwm_bytes;
      }
    }
    // The publishers leave (a restart would cut them off), then the receivers come online.
    std::atomic<uint32_t> closed{0};
    postAll([&closed](core::LoopThread*, LoopClients* lc) {
      return [&closed, lc] {
        lc->tick.reset();
        for (auto& p : lc->publishers) p->shutdown();
        lc->publishers.clear();
        closed.fetch_add(1, std::memory_order_acq_rel);
      };
    });
    while (!run.failed.load() && closed.load(std::memory_order_acquire) < threads.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (restart && !run.failed.load()) {
      auto moved = restart(bl);
      if (!moved.isOk()) {
        run.fail(std::string(moved.status().message()));
      } else {
        ep = std::move(moved).value();
        run.address = ep.address;  // read by the receivers' start(), posted below
      }
    }
    if (!run.failed.load()) {
      before = stats();
      markOthers();
      drain_start_ns = monotonicNowNs();
      postAll([](core::LoopThread*, LoopClients* lc) {
        return [lc] {
          for (auto& r : lc->receivers) r->start();
        };
      });
    }
  }
  // The drain has its own --timeout.
  const auto drain_deadline =
      o.backlog ? Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)) : hard_deadline;
  uint64_t first_ns = 0;
  auto last_progress = Clock::now();
  uint64_t last_progress_received = 0;
  bool progress_shown = false;
  const auto idle_end = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.duration_s * 1000));
  while (!run.failed.load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.idle > 0 ? 20 : 5));
    totals(sent, received, all_done, last_ns);
    auto now = Clock::now();
    if (o.idle > 0) {
      if (now >= idle_end) break;
      continue;
    }
    if (o.backlog && first_ns == 0 && received > 0) first_ns = monotonicNowNs();
    if (all_done && received >= sent * n_recv) break;
    if (now > drain_deadline) {
      uint64_t expect = all_done ? sent * n_recv : std::max(sent * n_recv, o.messages * n_pub * n_recv);
      run.fail("timed out after " + std::to_string(static_cast<int>(o.timeout_s)) + " s: " +
               std::to_string(expect > received ? expect - received : 0) + " of " + std::to_string(expect) +
               " deliveries missing (" + std::to_string(received) + " received, " + std::to_string(sent) +
               " published)");
      break;
    }
    if (o.progress && now - last_progress >= std::chrono::seconds(1)) {
      double dt = std::chrono::duration<double>(now - last_progress).count();
      char line[200];
      std::snprintf(line, sizeof line, "\r%s: sent %llu, received %llu, %.0f msgs/s   ", ep.label.c_str(),
                    static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
                    static_cast<double>(received - last_progress_received) / dt);
      progress << line << std::flush;
      progress_shown = true;
      last_progress = now;
      last_progress_received = received;
    }
  }
  uint64_t end_ns = monotonicNowNs();
  std::optional<ProcessStats> after = stats();
  const std::optional<double> relay_after = cpuOf(ep.relay_pid);
  const std::optional<double> clients_after = cpuOf(::getpid());
  if (progress_shown) progress << "\r" << std::string(78, ' ') << "\r" << std::flush;

  // Collect results on the loops, then stop them (joins: everything below reads plain memory).
  for (uint32_t t = 0; t < threads.size(); ++t) {
    LoopClients* lc = clients[t].get();
    bool posted = threads[t]->post([&run, lc] {
      for (auto& r : lc->receivers) {
        auto res = r->takeResult();
        std::lock_guard<std::mutex> lock(run.mu);  // several loops hand over at once
        if (res) run.results.push_back(std::move(res));
      }
    });
    if (!posted) run.fail("cannot post to a client loop");
  }
  teardown();

  totals(sent, received, all_done, last_ns);
  report.error = run.firstError();
  report.published = sent;
  report.expected = sent * n_recv;
  report.delivered = received;
  report.missing = report.expected > received ? report.expected - received : 0;
  if (o.idle > 0) {
    report.seconds = static_cast<double>(end_ns - run.start_ns) / 1e9;
  } else if (o.backlog) {
    // The headline figure of a backlog run is the drain.
    if (drain_start_ns != 0 && last_ns > drain_start_ns) {
      report.seconds = static_cast<double>(last_ns - drain_start_ns) / 1e9;
    }
  } else if (run.start_ns != 0 && last_ns > run.start_ns) {
    report.seconds = static_cast<double>(last_ns - run.start_ns) / 1e9;
  }
  if (report.seconds > 0) report.msgs_per_sec = static_cast<double>(received) / report.seconds;
  if (report.backlog) {
    BacklogReport& bl = *report.backlog;
    bl.drain_seconds = report.seconds;
    bl.drain_per_sec = report.msgs_per_sec;
    if (first_ns > drain_start_ns && drain_start_ns != 0) {
      bl.first_delivery_ms = static_cast<double>(first_ns - drain_start_ns) / 1e6;
    }
  }
  if (before && after) {
    report.cpu_seconds = after->cpu_seconds - before->cpu_seconds;
    report.peak_rss_bytes = after->hwm_bytes;
    report.rss_bytes = after->rss_bytes;
  }
  if (relay_before && relay_after) report.relay_cpu_seconds = *relay_after - *relay_before;
  if (clients_before && clients_after) report.clients_cpu_seconds = *clients_after - *clients_before;
  std::vector<uint64_t> expected_per_pub(n_pub);
  for (uint32_t i = 0; i < n_pub; ++i) expected_per_pub[i] = run.pub[i].sent.load();
  LatencyHistogram merged;
  bool check_ok = true;
  std::vector<uint64_t> done_ns(n_pub, 0);  // the last delivery of each publisher, any receiver
  for (auto& res : run.results) {
    if (!res) continue;
    for (uint32_t i = 0; i < n_pub && i < res->last_ns_by_publisher.size(); ++i) {
      done_ns[i] = std::max(done_ns[i], res->last_ns_by_publisher[i]);
    }
    res->checker.finish(expected_per_pub);
    merged.merge(res->histogram);
    check_ok = check_ok && res->checker.ok();
    report.duplicates += res->checker.duplicates();
    report.reordered += res->checker.reordered();
    report.unknown += res->checker.unknown();
    for (const std::string& p : res->checker.problems()) {
      if (report.problems.size() < 10) report.problems.push_back(p);
    }
  }
  report.check_ok = check_ok && report.error.empty() && report.missing == 0 && received == report.expected;
  // How evenly the drain was shared: when the first and the last publisher's backlog was through.
  if (report.backlog && report.check_ok && drain_start_ns != 0 && n_pub > 0) {
    const auto [first, last] = std::minmax_element(done_ns.begin(), done_ns.end());
    if (*first > drain_start_ns) {
      report.backlog->first_done_seconds = static_cast<double>(*first - drain_start_ns) / 1e9;
      report.backlog->last_done_seconds = static_cast<double>(*last - drain_start_ns) / 1e9;
    }
  }
  report.p50_ns = merged.percentile(0.50);
  report.p99_ns = merged.percentile(0.99);
  report.max_ns = merged.max();
  return report;
}

core::Result<std::string> findInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/sbin:/usr/local/sbin:/sbin";
  std::stringstream ss(dirs);
  for (std::string dir; std::getline(ss, dir, ':');) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return core::notFound("'" + name + "' not found in PATH");
}

// A free TCP port on 127.0.0.1 (bind port 0, read it back, close). Racy by nature; the caller
// retries if the port is taken by the time the child binds it.
core::Result<uint16_t> pickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return core::ioError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return core::ioError("cannot bind a free port");
  }
  ::close(fd);
  return static_cast<uint16_t>(ntohs(addr.sin_port));
}

bool connectsOnLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

TargetReport failedTarget(std::string label, std::string error) {
  TargetReport r;
  r.target = std::move(label);
  r.error = std::move(error);
  return r;
}

// Starts mosquitto on `port` and waits until it accepts TCP connections. Errors: kNotFound (no
// mosquitto), kUnavailable (it exited, e.g. the port was taken meanwhile, or never accepted).
// With a persistence_dir, sessions are saved there when it exits and restored when it starts.
core::Result<std::unique_ptr<ChildProcess>> startMosquittoOn(const LoadgenOptions& o, const TempDir& dir,
                                                             uint16_t port, const std::string& persistence_dir = "",
                                                             const MosquittoTls* tls = nullptr) {
  HUB_ASSIGN_OR_RETURN(std::string exe, findInPath(o.mosquitto_path.empty() ? "mosquitto" : o.mosquitto_path));
  const std::string conf = dir.path() + "/mosquitto-" + std::to_string(port) + ".conf";
  HUB_RETURN_IF_ERROR(writeTextFile(conf, makeMosquittoConfig(port, persistence_dir, tls)));
  HUB_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child,
                       ChildProcess::start({exe, "-c", conf}, dir.path() + "/mosquitto.log"));
  // Ready when it accepts a TCP connection (on both listeners); it exits at once if a port is taken.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline && !child->exited()) {
    if (connectsOnLoopback(port) && (tls == nullptr || connectsOnLoopback(tls->plain_port))) return child;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  child->stop();
  return core::unavailable("mosquitto " + child->describeExit() + " without accepting on port " +
                           std::to_string(port) + ": " + child->stderrTail(500));
}

struct StartedBroker {
  uint16_t port = 0;
  std::unique_ptr<ChildProcess> child;
};

// startMosquittoOn a free port, with another one (up to five tries) if that port was taken
// before mosquitto bound it. Errors: those of startMosquittoOn and pickFreePort.
core::Result<StartedBroker> startMosquittoOnFreePort(const LoadgenOptions& o, const TempDir& dir,
                                                     const std::string& persistence_dir = "") {
  for (int attempt = 0;; ++attempt) {
    HUB_ASSIGN_OR_RETURN(uint16_t port, pickFreePort());
    auto child = startMosquittoOn(o, dir, port, persistence_dir);
    if (child.isOk()) return StartedBroker{port, std::move(child).value()};
    if (child.status().code() != core::StatusCode::kUnavailable || attempt == 4) return child.status();
  }
}

// Starts mosquitto on a free port, runs the workload, stops and reaps it.
TargetReport runAgainstMosquitto(const LoadgenOptions& o, const TempDir& dir, std::ostream& progress) {
  auto broker = startMosquittoOnFreePort(o, dir);
  if (!broker.isOk()) return failedTarget("mosquitto", std::string(broker.status().message()));
  Endpoint ep;
  ep.label = "mosquitto";
  ep.address = core::SocketAddress{"127.0.0.1", broker->port};
  ep.pid = broker->child->pid();
  TargetReport r = runWorkload(o, ep, progress);
  broker->child->stop();
  return r;
}

// --upstream-drain: the hub connects the moment the upstream port opens, so the receivers'
// subscriptions must already exist then, or mosquitto acknowledges and drops the hub's first
// messages (nobody subscribed). They are made in persistent sessions on a private port; that
// mosquitto saves them to `sessions` when it exits, and the one on the upstream port restores them
// before it accepts anyone.
core::Status subscribeUpstreamReceivers(const LoadgenOptions& o, const TempDir& dir, const std::string& sessions) {
  std::error_code ec;
  std::filesystem::create_directories(sessions, ec);
  if (ec) return core::ioError("cannot create " + sessions + ": " + ec.message());
  HUB_ASSIGN_OR_RETURN(StartedBroker broker, startMosquittoOnFreePort(o, dir, sessions));
  const uint16_t port = broker.port;
  for (uint32_t j = 0; j < o.receivers; ++j) {
    const std::string client_id = "recv" + std::to_string(j);
    auto client = transports::mqtt::BlockingClient::open("127.0.0.1:" + std::to_string(port));
    if (!client) return core::unavailable("cannot connect to mosquitto on port " + std::to_string(port));
    if (uint8_t code = client->connect(client_id, std::nullopt, std::nullopt, /*clean_session=*/false); code != 0) {
      return core::unavailable("mosquitto refused " + client_id + " (CONNACK " + std::to_string(code) + ")");
    }
    if (uint8_t code = client->subscribe(std::string(kUpstreamReceiverFilter), 1); code > 1) {
      return core::unavailable("mosquitto refused " + client_id + "'s subscription (SUBACK " + std::to_string(code) + ")");
    }
    client->disconnect();
  }
  std::string how = broker.child->stop(std::chrono::seconds(30));
  // mosquitto logs a failed save and still exits with 0.
  if (how != "exited with code 0" || !std::filesystem::exists(sessions + "/mosquitto.db")) {
    return core::unavailable("mosquitto did not save its sessions (" + how + "); see " + dir.path() + "/mosquitto.log");
  }
  return core::Status::ok();
}

TargetReport runAgainstSpawnedHub(const LoadgenOptions& o, const TempDir& dir, std::ostream& progress) {
  std::string exe = o.edgehub_path;
  if (exe.empty()) {
    auto self = currentExecutablePath();
    if (!self.isOk()) return failedTarget("edgehub", std::string(self.status().message()));
    exe = self.value();
  }
  std::vector<std::string> modules;
  std::string manifest;
  if (o.idle > 0) {
    for (uint32_t i = 0; i < o.idle; ++i) modules.push_back("idle" + std::to_string(i));
    manifest = makeIdleManifest(o.idle);
  } else if (o.upstream) {
    for (uint32_t i = 0; i < o.publishers; ++i) modules.push_back("pub" + std::to_string(i));
    manifest = makeUpstreamManifest(o.publishers);
  } else {
    for (uint32_t i = 0; i < o.publishers; ++i) modules.push_back("pub" + std::to_string(i));
    for (uint32_t j = 0; j < o.receivers; ++j) modules.push_back("recv" + std::to_string(j));
    manifest = makeFanOutManifest(o.publishers, o.receivers);
  }
  auto ids = makeBenchIdentities(modules);
  if (!ids.isOk()) return failedTarget("edgehub", std::string(ids.status().message()));
  const std::string manifest_path = dir.path() + "/manifest.json";
  const std::string ids_path = dir.path() + "/identities.json";
  const std::string data_dir = dir.path() + "/data";
  if (core::Status s = writeTextFile(manifest_path, manifest); !s.isOk()) {
    return failedTarget("edgehub", std::string(s.message()));
  }
  if (core::Status s = core::writeIdentityFile(ids_path, ids.value()); !s.isOk()) {
    return failedTarget("edgehub", std::string(s.message()));
  }
  std::vector<std::string> argv = {exe, "run", "--manifest", manifest_path, "--identities", ids_path,
                                   "--data", data_dir, "--durability", o.hub_durability,
                                   "--mqtt-listen", "127.0.0.1:0", "--mqtts-listen", "off",
                                   "--log-level", "warn"};
  if (o.hub_io_threads > 0) {
    argv.push_back("--io-threads");
    argv.push_back(std::to_string(o.hub_io_threads));
  }
  // --upstream-drain: the upstream's port is reserved now; mosquitto starts there after the ingest.
  uint16_t upstream_port = 0;
  std::optional<MosquittoTls> upstream_tls;  // --upstream-tls
  if (o.upstream) {
    auto port = pickFreePort();
    if (!port.isOk()) return failedTarget("edgehub", std::string(port.status().message()));
    upstream_port = port.value();
    argv.push_back("--upstream");
    if (o.upstream_tls) {
      // IoT Hub is always TLS: the hub gets a development CA, mosquitto a certificate it signed
      // (SAN 127.0.0.1), and the receivers a plain listener of their own.
      auto certs = transports::tls::ensureDevCertificates(dir.path() + "/upstream-tls", {});
      if (!certs.isOk()) return failedTarget("edgehub", std::string(certs.status().message()));
      auto plain = pickFreePort();
      if (!plain.isOk()) return failedTarget("edgehub", std::string(plain.status().message()));
      upstream_tls = MosquittoTls{certs->server_cert_chain_path, certs->server_key_path, plain.value()};
      argv.push_back("mqtts://127.0.0.1:" + std::to_string(upstream_port));
      argv.push_back("--upstream-ca");
      argv.push_back(certs->ca_path);
    } else {
      argv.push_back("mqtt://127.0.0.1:" + std::to_string(upstream_port));
    }
  }
  std::unique_ptr<ChildProcess> upstream_broker;
  Endpoint ep;
  ep.label = "edgehub";
  ep.hub_dialect = true;
  ep.ids = std::move(ids).value();
  // Starts the hub and waits until it listens; fills ep.address and ep.pid.
  std::unique_ptr<ChildProcess> child;
  auto spawn = [&]() -> core::Status {
    auto started = ChildProcess::start(argv, dir.path() + "/edgehub.log");
    if (!started.isOk()) return started.status();
    child = std::move(started).value();
    auto listening = child->waitForLine("edgehub: listening for MQTT on ", std::chrono::seconds(60));
    if (!listening.isOk()) {
      return core::unavailable("the hub did not start (" + exe + "): " + std::string(listening.status().message()));
    }
    auto address = parseHostPort(listening.value());
    if (!address.isOk()) return core::unavailable("unexpected listening address '" + listening.value() + "'");
    ep.address = address.value();
    ep.pid = child->pid();
    return core::Status::ok();
  };
  if (core::Status s = spawn(); !s.isOk()) {
    if (child) child->stop();
    return failedTarget("edgehub", std::string(s.message()));
  }
  // A hub with a store prints what it wrote when it stops (SIGTERM); summed over restarts.
  TargetReport::StoreWrites writes;
  auto readStoreWrites = [&] {
    if (o.hub_durability == "memory" || child->exited()) return;
    ::kill(child->pid(), SIGTERM);
    auto line = child->waitForLine("edgehub: stopped; ", std::chrono::seconds(60));
    unsigned long long written = 0, wal = 0, flush = 0, compaction = 0, appended = 0;
    double amplification = 0;
    if (line.isOk() && std::sscanf(line.value().c_str(),
                                   "store wrote %llu bytes (wal %llu, flush %llu, compaction %llu) for %llu "
                                   "message bytes: write amplification %lf",
                                   &written, &wal, &flush, &compaction, &appended, &amplification) == 6) {
      writes.written += written, writes.wal += wal, writes.flush += flush, writes.compaction += compaction;
      writes.appended += appended;
    }
  };
  RestartFn restart_hub;
  if (o.backlog && o.backlog_restart) {
    restart_hub = [&](BacklogReport& bl) -> core::Result<Endpoint> {
      const auto t0 = Clock::now();
      readStoreWrites();  // sends the SIGTERM when the hub has a store
      std::string how = o.hub_durability == "memory" ? child->stop(std::chrono::seconds(60))
                                                     : child->waitForExit(std::chrono::seconds(60));
      bl.stop_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (how != "exited with code 0") return core::unavailable("the hub stopped badly: " + how);
      const auto t1 = Clock::now();
      HUB_RETURN_IF_ERROR(spawn());
      bl.ready_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
      return ep;
    };
  }
  RestartFn restart = restart_hub;
  if (o.upstream) {
    // With --backlog-restart the hub restarts first, offline with its backlog, as after a reboot
    // during an outage; then the upstream becomes reachable.
    restart = [&](BacklogReport& bl) -> core::Result<Endpoint> {
      if (restart_hub) HUB_RETURN_IF_ERROR(restart_hub(bl).status());
      const std::string sessions = dir.path() + "/upstream-sessions";
      HUB_RETURN_IF_ERROR(subscribeUpstreamReceivers(o, dir, sessions));
      HUB_ASSIGN_OR_RETURN(upstream_broker, startMosquittoOn(o, dir, upstream_port, sessions,
                                                             upstream_tls ? &*upstream_tls : nullptr));
      Endpoint up = ep;  // CPU and RSS stay the hub's
      up.label = "edgehub";
      up.address = core::SocketAddress{"127.0.0.1", upstream_tls ? upstream_tls->plain_port : upstream_port};
      up.hub_dialect = false;
      up.relay_pid = upstream_broker->pid();
      return up;
    };
  }
  TargetReport r = runWorkload(o, ep, progress, restart);
  if (upstream_broker) upstream_broker->stop();
  readStoreWrites();
  if (writes.appended > 0) {
    writes.amplification = static_cast<double>(writes.written) / static_cast<double>(writes.appended);
    r.store_writes = writes;
  }
  std::string how = child->waitForExit(std::chrono::seconds(o.hub_durability == "memory" ? 0 : 60));
  if (!r.error.empty() && child->exited() && how.find("signal 15") == std::string::npos &&
      how != "exited with code 0") {
    std::string tail = child->stderrTail(500);
    r.error += " [hub " + how + (tail.empty() ? "" : ": " + tail) + "]";
  }
  return r;
}

// One JSON escaper for the whole code base: the logger's.
std::string jsonEscape(const std::string& s) {
  std::string out;
  core::appendJsonEscaped(out, s);
  return out;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace

bool tcpConnects(uint16_t port) { return connectsOnLoopback(port); }

bool LoadgenReport::ok() const {
  if (targets.empty()) return false;
  for (const TargetReport& t : targets) {
    if (!t.ok()) return false;
  }
  return true;
}

core::Result<core::SocketAddress> parseHostPort(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return core::invalidArgument("'" + text + "' is not HOST:PORT");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return core::invalidArgument("'" + text + "' is not HOST:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) == 0 || std::stoul(port) > 65535) {
    return core::invalidArgument("'" + text + "' has no valid port");
  }
  return core::SocketAddress{host, static_cast<uint16_t>(std::stoul(port))};
}

core::Status validateOptions(const LoadgenOptions& o) {
  if (o.qos > 1) return core::invalidArgument("--qos must be 0 or 1");
  if (o.size < kPayloadHeaderSize) {
    return core::invalidArgument("--size must be at least " + std::to_string(kPayloadHeaderSize) +
                                 " (the sequence/timestamp header)");
  }
  if (o.window < 1 || o.window > 65535) return core::invalidArgument("--window must be 1..65535");
  if (o.threads < 1) return core::invalidArgument("--threads must be at least 1");
  if (o.idle > 0 && o.duration_s <= 0) return core::invalidArgument("--idle needs --duration SECONDS");
  if (o.idle == 0 && (o.publishers < 1 || o.receivers < 1)) {
    return core::invalidArgument("--publishers and --receivers must be at least 1");
  }
  if (o.idle == 0 && o.duration_s <= 0 && o.messages < 1) return core::invalidArgument("--messages must be at least 1");
  int targets = (o.broker ? 1 : 0) + (o.hub ? 1 : 0) + (o.compare_mosquitto ? 1 : 0);
  if (targets > 1) return core::invalidArgument("--broker, --hub and --compare-mosquitto exclude each other");
  if (o.hub && o.identities_path.empty()) return core::invalidArgument("--hub needs --identities FILE");
  if (o.timeout_s <= 0) return core::invalidArgument("--timeout must be positive");
  if (o.upstream) {
    if (!o.backlog) return core::invalidArgument("--upstream-drain is a backlog run");
    if (o.broker || o.hub) return core::invalidArgument("--upstream-drain starts its own hub: not with --broker or --hub");
  }
  if (o.backlog) {
    if (o.broker || (o.compare_mosquitto && !o.upstream)) {
      return core::invalidArgument("--backlog measures a hub's store-and-forward: not with --broker or --compare-mosquitto");
    }
    if (o.idle > 0 || o.duration_s > 0) return core::invalidArgument("--backlog publishes --messages, not --duration or --idle");
    if (o.qos != 1) return core::invalidArgument("--backlog needs --qos 1 (acknowledged messages are the backlog)");
  }
  if (o.upstream_tls && !o.upstream) return core::invalidArgument("--upstream-tls needs --upstream-drain");
  if (o.backlog_restart && !o.backlog) return core::invalidArgument("--backlog-restart needs --backlog");
  if (o.backlog_restart && o.hub) return core::invalidArgument("--backlog-restart restarts a hub it started: not with --hub");
  return core::Status::ok();
}

core::Result<LoadgenReport> runLoadgen(const LoadgenOptions& o, std::ostream& progress) {
  HUB_RETURN_IF_ERROR(validateOptions(o));
  // A peer that closes while we write must give EPIPE, not kill the load generator.
  ::signal(SIGPIPE, SIG_IGN);
  LoadgenReport report;
  if (o.broker) {
    Endpoint ep;
    ep.label = "broker " + formatAddress(*o.broker);
    ep.address = *o.broker;
    report.targets.push_back(runWorkload(o, ep, progress));
    return report;
  }
  if (o.hub) {
    auto ids = core::loadIdentityFile(o.identities_path);
    if (!ids.isOk()) {
      report.targets.push_back(failedTarget("edgehub " + formatAddress(*o.hub), std::string(ids.status().message())));
      return report;
    }
    Endpoint ep;
    ep.label = "edgehub " + formatAddress(*o.hub);
    ep.address = *o.hub;
    ep.hub_dialect = true;
    ep.ids = std::move(ids).value();
    if (o.hub_pid) ep.pid = static_cast<pid_t>(*o.hub_pid);
    report.targets.push_back(runWorkload(o, ep, progress));
    return report;
  }
  auto dir = TempDir::create();
  if (!dir.isOk()) {
    report.targets.push_back(failedTarget("edgehub", std::string(dir.status().message())));
    return report;
  }
  if (o.keep_dir) {
    dir->keep();
    progress << "edgehub: keeping " << dir->path() << " (edgehub.log, data/store/LOG)\n";
  }
  if (o.compare_mosquitto) {
    // --upstream-drain compares with mosquitto's plain pub -> sub from as many publishers.
    LoadgenOptions plain = o;
    plain.backlog = plain.backlog_restart = plain.upstream = false;
    report.targets.push_back(runAgainstMosquitto(plain, dir.value(), progress));
  }
  report.targets.push_back(runAgainstSpawnedHub(o, dir.value(), progress));
  return report;
}

namespace {

// One line per target: the exactly-once/in-order check, or what failed.
void appendCheckLines(std::ostream& os, const LoadgenReport& report) {
  for (const TargetReport& t : report.targets) {
    if (t.ok()) {
      os << t.target << ": check: ok (every message once, in order)\n";
      continue;
    }
    os << t.target << ": check: FAILED";
    if (!t.error.empty()) os << ": " << t.error;
    os << "\n  " << t.delivered << " of " << t.expected << " deliveries received, " << t.missing << " missing, "
       << t.duplicates << " duplicate, " << t.reordered << " out of order, " << t.unknown << " unexpected\n";
    for (const std::string& p : t.problems) os << "  " << p << "\n";
  }
}

// The CPU of every process in a run, per delivered message, and the rate the machine's cores
// could sustain if they did nothing else: on a 2-core gateway the hub, the broker and the
// receivers share the cores, so this bounds what any hub could reach there.
void appendCpuBudget(std::ostream& os, const TargetReport& t, const char* target_name, const char* relay_name,
                     const char* clients_name) {
  if (!t.cpu_seconds || !t.clients_cpu_seconds || t.delivered == 0) return;
  const double n = static_cast<double>(t.delivered);
  const double target_us = *t.cpu_seconds * 1e6 / n;
  const double relay_us = t.relay_cpu_seconds ? *t.relay_cpu_seconds * 1e6 / n : 0.0;
  const double clients_us = *t.clients_cpu_seconds * 1e6 / n;
  const double total_us = target_us + relay_us + clients_us;
  const long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  os << "  CPU per message: " << target_name << " " << fmt("%.1f", target_us) << " us";
  if (relay_name != nullptr) os << ", " << relay_name << " " << fmt("%.1f", relay_us) << " us";
  os << ", " << clients_name << " " << fmt("%.1f", clients_us) << " us; " << fmt("%.1f", total_us)
     << " us in all: " << cores << " core(s) doing nothing else would run at most "
     << (total_us > 0 ? fmt("%.0f", static_cast<double>(cores) * 1e6 / total_us) : std::string("n/a")) << " msgs/s\n";
}

}  // namespace

std::string formatReportText(const LoadgenOptions& o, const LoadgenReport& report) {
  std::ostringstream os;
  auto mb = [](const std::optional<uint64_t>& b) {
    return b ? fmt("%.1f", static_cast<double>(*b) / (1024.0 * 1024.0)) : std::string("n/a");
  };
  auto us = [](uint64_t ns) { return fmt("%.0f", static_cast<double>(ns) / 1000.0); };
  if (o.backlog) {
    auto opt_ms = [](const std::optional<double>& v) { return v ? fmt("%.0f", *v) : std::string("n/a"); };
    for (const TargetReport& t : report.targets) {
      if (!t.backlog) continue;
      const BacklogReport& b = *t.backlog;
      os << t.target << ": backlog of " << b.queued << " messages per receiver (" << o.receivers << " receiver(s))\n"
         << "  ingest:  " << fmt("%.0f", b.ingest_per_sec) << " msgs/s over " << fmt("%.1f", b.ingest_seconds)
         << " s; first tenth " << fmt("%.0f", b.ingest_first_per_sec) << " msgs/s, last tenth "
         << fmt("%.0f", b.ingest_last_per_sec) << " msgs/s (last/first "
         << (b.ingest_first_per_sec > 0 ? fmt("%.2f", b.ingest_last_per_sec / b.ingest_first_per_sec) : "n/a")
         << "x); CPU " << (b.ingest_cpu_seconds ? fmt("%.1f", *b.ingest_cpu_seconds) : "n/a") << " s, peak RSS "
         << mb(b.ingest_peak_rss_bytes) << " MB\n";
      if (b.stop_ms || b.ready_ms) {
        os << "  restart: stop " << opt_ms(b.stop_ms) << " ms, ready (start to listening) " << opt_ms(b.ready_ms)
           << " ms\n";
      }
      os << "  drain:   " << fmt("%.0f", b.drain_per_sec) << " msgs/s over " << fmt("%.1f", b.drain_seconds)
         << " s; first delivery after " << fmt("%.0f", b.first_delivery_ms) << " ms; CPU "
         << (t.cpu_seconds ? fmt("%.1f", *t.cpu_seconds) : "n/a") << " s, peak RSS " << mb(t.peak_rss_bytes)
         << " MB\n";
      if (b.first_done_seconds > 0) {
        os << "  fairness: the first publisher's backlog was through after " << fmt("%.1f", b.first_done_seconds)
           << " s, the last one's after " << fmt("%.1f", b.last_done_seconds) << " s\n";
      }
      if (t.relay_cpu_seconds) appendCpuBudget(os, t, "hub", "upstream broker", "receivers");
    }
    // --upstream-drain --compare-mosquitto: the plain pub -> sub run is the ceiling.
    const TargetReport* ceiling = nullptr;
    const TargetReport* drained = nullptr;
    for (const TargetReport& t : report.targets) {
      if (!t.backlog && t.ok()) ceiling = &t;
      if (t.backlog && t.ok()) drained = &t;
      if (t.backlog) continue;
      os << t.target << ": pub -> sub " << fmt("%.0f", t.msgs_per_sec) << " msgs/s from " << o.publishers
         << " publisher(s) over " << fmt("%.1f", t.seconds) << " s; CPU "
         << (t.cpu_seconds ? fmt("%.1f", *t.cpu_seconds) : "n/a") << " s\n";
      if (o.upstream) appendCpuBudget(os, t, "mosquitto", nullptr, "publishers and receivers");
    }
    if (o.upstream && ceiling != nullptr && drained != nullptr && ceiling->msgs_per_sec > 0) {
      os << "upstream drain / mosquitto pub -> sub: " << fmt("%.2f", drained->backlog->drain_per_sec / ceiling->msgs_per_sec)
         << "x\n";
    }
    appendCheckLines(os, report);
    for (const TargetReport& t : report.targets) {
      if (!t.store_writes) continue;
      os << t.target << ": store write amplification " << fmt("%.2f", t.store_writes->amplification)
         << "x (whole run, ingest and drain)\n";
    }
    return os.str();
  }
  if (!report.targets.empty() && report.targets[0].idle) {
    os << padRight("target", 26) << padRight("modules", 9) << padRight("seconds", 9) << padRight("CPU s", 8)
       << padRight("RSS MB", 8) << "peak RSS MB\n";
    for (const TargetReport& t : report.targets) {
      os << padRight(t.target, 26) << padRight(std::to_string(o.idle), 9) << padRight(fmt("%.1f", t.seconds), 9)
         << padRight(t.cpu_seconds ? fmt("%.2f", *t.cpu_seconds) : "n/a", 8) << padRight(mb(t.rss_bytes), 8)
         << mb(t.peak_rss_bytes) << "\n";
      if (!t.error.empty()) os << "error: " << t.target << ": " << t.error << "\n";
    }
    return os.str();
  }
  os << padRight("target", 26) << padRight("qos", 4) << padRight("size", 6) << padRight("pubs", 5)
     << padRight("recvs", 6) << padRight("delivered", 11) << padRight("seconds", 8) << padRight("msgs/s", 10)
     << padRight("p50 us", 8) << padRight("p99 us", 8) << padRight("max us", 9) << padRight("CPU s", 7)
     << "peak RSS MB\n";
  for (const TargetReport& t : report.targets) {
    os << padRight(t.target, 26) << padRight(std::to_string(o.qos), 4) << padRight(std::to_string(o.size), 6)
       << padRight(std::to_string(o.publishers), 5) << padRight(std::to_string(o.receivers), 6)
       << padRight(std::to_string(t.delivered), 11) << padRight(fmt("%.2f", t.seconds), 8)
       << padRight(fmt("%.0f", t.msgs_per_sec), 10) << padRight(us(t.p50_ns), 8) << padRight(us(t.p99_ns), 8)
       << padRight(us(t.max_ns), 9) << padRight(t.cpu_seconds ? fmt("%.2f", *t.cpu_seconds) : "n/a", 7)
       << mb(t.peak_rss_bytes) << "\n";
  }
  appendCheckLines(os, report);
  for (const TargetReport& t : report.targets) {
    if (!t.store_writes) continue;
    const auto& w = *t.store_writes;
    auto mib = [](uint64_t b) { return fmt("%.1f", static_cast<double>(b) / (1024.0 * 1024.0)); };
    os << t.target << ": store wrote " << mib(w.written) << " MiB (WAL " << mib(w.wal) << ", flush " << mib(w.flush)
       << ", compaction " << mib(w.compaction) << ") for " << mib(w.appended)
       << " MiB of messages: write amplification " << fmt("%.2f", w.amplification) << "x\n";
  }
  if (report.targets.size() == 2 && report.targets[0].target == "mosquitto" && report.targets[0].msgs_per_sec > 0) {
    os << "throughput edgehub/mosquitto: "
       << fmt("%.2f", report.targets[1].msgs_per_sec / report.targets[0].msgs_per_sec) << "x\n";
  }
  return os.str();
}

std::string formatReportJson(const LoadgenOptions& o, const LoadgenReport& report) {
  std::ostringstream os;
  auto opt_d = [](const std::optional<double>& v) { return v ? fmt("%.3f", *v) : std::string("null"); };
  auto opt_u = [](const std::optional<uint64_t>& v) { return v ? std::to_string(*v) : std::string("null"); };
  os << "{\"mode\":\"" << (o.idle > 0 ? "idle" : o.backlog ? "backlog" : "fanout") << "\",\"qos\":" << int(o.qos) << ",\"size\":" << o.size
     << ",\"publishers\":" << (o.idle > 0 ? 0 : o.publishers) << ",\"receivers\":" << (o.idle > 0 ? o.idle : o.receivers)
     << ",\"rate\":" << o.rate << ",\"window\":" << o.window << ",\"threads\":" << o.threads << ",\"targets\":[";
  for (size_t i = 0; i < report.targets.size(); ++i) {
    const TargetReport& t = report.targets[i];
    os << (i ? "," : "") << "{\"target\":\"" << jsonEscape(t.target) << "\",\"ok\":" << (t.ok() ? "true" : "false")
       << ",\"error\":" << (t.error.empty() ? "null" : "\"" + jsonEscape(t.error) + "\"")
       << ",\"published\":" << t.published << ",\"expected\":" << t.expected << ",\"delivered\":" << t.delivered
       << ",\"missing\":" << t.missing << ",\"duplicates\":" << t.duplicates << ",\"reordered\":" << t.reordered
       << ",\"unexpected\":" << t.unknown << ",\"seconds\":" << fmt("%.6f", t.seconds)
       << ",\"msgs_per_sec\":" << fmt("%.1f", t.msgs_per_sec) << ",\"p50_us\":" << fmt("%.1f", t.p50_ns / 1000.0)
       << ",\"p99_us\":" << fmt("%.1f", t.p99_ns / 1000.0) << ",\"max_us\":" << fmt("%.1f", t.max_ns / 1000.0)
       << ",\"cpu_seconds\":" << opt_d(t.cpu_seconds) << ",\"relay_cpu_seconds\":" << opt_d(t.relay_cpu_seconds)
       << ",\"clients_cpu_seconds\":" << opt_d(t.clients_cpu_seconds) << ",\"peak_rss_bytes\":" << opt_u(t.peak_rss_bytes)
       << ",\"rss_bytes\":" << opt_u(t.rss_bytes);
    if (t.backlog) {
      const BacklogReport& b = *t.backlog;
      os << ",\"backlog\":{\"queued\":" << b.queued << ",\"ingest_seconds\":" << fmt("%.3f", b.ingest_seconds)
         << ",\"ingest_per_sec\":" << fmt("%.1f", b.ingest_per_sec)
         << ",\"ingest_first_per_sec\":" << fmt("%.1f", b.ingest_first_per_sec)
         << ",\"ingest_last_per_sec\":" << fmt("%.1f", b.ingest_last_per_sec)
         << ",\"ingest_cpu_seconds\":" << opt_d(b.ingest_cpu_seconds)
         << ",\"ingest_peak_rss_bytes\":" << opt_u(b.ingest_peak_rss_bytes) << ",\"stop_ms\":" << opt_d(b.stop_ms)
         << ",\"ready_ms\":" << opt_d(b.ready_ms) << ",\"first_delivery_ms\":" << fmt("%.1f", b.first_delivery_ms)
         << ",\"drain_seconds\":" << fmt("%.3f", b.drain_seconds) << ",\"drain_per_sec\":" << fmt("%.1f", b.drain_per_sec)
         << ",\"first_done_seconds\":" << fmt("%.3f", b.first_done_seconds)
         << ",\"last_done_seconds\":" << fmt("%.3f", b.last_done_seconds) << "}";
    }
    if (t.store_writes) {
      const auto& w = *t.store_writes;
      os << ",\"store_writes\":{\"written\":" << w.written << ",\"wal\":" << w.wal << ",\"flush\":" << w.flush
         << ",\"compaction\":" << w.compaction << ",\"appended\":" << w.appended
         << ",\"write_amplification\":" << fmt("%.3f", w.amplification) << "}";
    }
    os << ",\"problems\":[";
    for (size_t k = 0; k < t.problems.size(); ++k) os << (k ? "," : "") << "\"" << jsonEscape(t.problems[k]) << "\"";
    os << "]}";
  }
  os << "],\"ok\":" << (report.ok() ? "true" : "false") << "}\n";
  return os.str();
}

}  // namespace edgehub::bench
