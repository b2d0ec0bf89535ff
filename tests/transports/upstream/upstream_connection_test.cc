#include "transports/upstream/upstream_connection.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/log/logger.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "core/time_source.h"
#include "tests/transports/upstream/broker_fixture.h"
#include "tests/transports/upstream/upstream_test_util.h"
#include "transports/tls/dev_certs.h"

namespace edgehub::testing::upstream {
namespace {

using core::StatusCode;
using up::ConnectionState;

// Records everything a connection reports.
struct Recorder final : up::ConnectionCallbacks {
  void onPublishDone(up::UpstreamConnection& c, uint64_t cookie, const core::Status& status) override {
    (status.isOk() ? acked : not_acked).push_back(cookie);
    if (close_on_first_ack && status.isOk()) {
      close_on_first_ack = false;
      c.close();  // re-entrant close from inside a completion
    }
  }
  void onReady(up::UpstreamConnection&) override { ++ready; }
  void onStateChange(up::UpstreamConnection&, ConnectionState state, const core::Status& reason) override {
    states.push_back(state);
    last_reason = std::string(reason.message());
  }
  virtual ~Recorder() = default;
  std::vector<uint64_t> acked;
  std::vector<uint64_t> not_acked;
  std::vector<ConnectionState> states;
  std::string last_reason;
  int ready = 0;
  bool close_on_first_ack = false;
};

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class UpstreamConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = core::Loop::create();
    ASSERT_TRUE(loop.isOk());
    loop_ = std::move(loop).value();
    runner_ = std::make_unique<LoopRunner>(*loop_);
  }
  void TearDown() override {
    conn_.reset();
    runner_.reset();
    ASSERT_TRUE(loop_->close().isOk()) << "a handle leaked";
  }
  bool startBroker(const std::vector<core::Identity>& ids, std::optional<TlsFiles> tls = {}) {
    broker_ = startTestBroker(dir_.path(), ids, time_, std::move(tls));
    return broker_ != nullptr;
  }
  // A TLS connection to 127.0.0.1:port whose failures could only surface late by themselves:
  // the CONNACK deadline is a minute, and a failure backs off for a minute.
  void startSlowFailingTlsConnection(uint16_t port) {
    auto o = connectionOptions(port);
    o.endpoint.scheme = up::UpstreamScheme::kMqtts;
    o.endpoint.host = "localhost";
    o.connect_timeout = std::chrono::seconds(60);
    o.network_backoff = {std::chrono::milliseconds(60'000), std::chrono::milliseconds(60'000), 0.2};
    makeConnection(o, core::Identity::module("dev1", "m1"));
    conn_->start();
  }
  void makeConnection(up::ConnectionOptions options, const core::Identity& id, std::string key = "") {
    auto c = up::UpstreamConnection::create(*loop_, time_, std::move(options),
                                            up::UpstreamCredentials{id, key.empty() ? keyFor(id) : key}, rec_);
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    conn_ = std::move(c).value();
  }

  TempDir dir_;
  core::SimulatedTimeSource time_;
  core::LoopPtr loop_;
  std::unique_ptr<LoopRunner> runner_;
  std::unique_ptr<MosquittoBroker> broker_;
  Recorder rec_;
  up::UpstreamConnectionPtr conn_;
};

TEST_F(UpstreamConnectionTest, RefusesOversizedAndUnconnectedPublishes) {
  auto o = connectionOptions(1);
  o.max_message_bytes = 1000;
  makeConnection(o, core::Identity::module("dev1", "m1"));
  const std::string big(1001, 'x');
  core::Status s = conn_->publish("devices/dev1/modules/m1/messages/events/", bytes(big), 1);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(conn_->stats().oversized, 1u);
  s = conn_->publish("devices/dev1/modules/m1/messages/events/", bytes("small"), 2);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(rec_.acked.empty());
  EXPECT_TRUE(rec_.not_acked.empty());
}

TEST_F(UpstreamConnectionTest, InvalidOptionsAndKeysAreRejected) {
  auto o = connectionOptions(1883);
  o.keepalive = std::chrono::seconds(2);
  EXPECT_FALSE(up::UpstreamConnection::create(*loop_, time_, o, {core::Identity::device("d"), keyFor(core::Identity::device("d"))}, rec_).isOk());
  o = connectionOptions(1883);
  o.max_in_flight = 0;
  EXPECT_FALSE(up::UpstreamConnection::create(*loop_, time_, o, {core::Identity::device("d"), keyFor(core::Identity::device("d"))}, rec_).isOk());
  o = connectionOptions(1883);
  auto bad = up::UpstreamConnection::create(*loop_, time_, o, {core::Identity::device("d"), "%%%"}, rec_);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

// A resolver that blocks until released, as DNS does while the WAN is down, and answers `answer`.
// Its state is shared with the lookup threads, which may outlive the test.
struct BlockingResolver {
  struct State {
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> calls{0};
    std::atomic<int> returned{0};
    core::Status answer = core::Status::ok();
  };
  std::shared_ptr<State> state = std::make_shared<State>();
  core::HostLookup::ResolveFn fn() const {
    return [s = state](const std::string&) {
      ++s->calls;
      s->released.wait();
      core::Status answer = s->answer;
      ++s->returned;
      return answer;
    };
  }
};

// The host name is looked up off the loop: while the lookup blocks, the loop keeps running
// (libmosquitto's own lookup would have held it), and once it answers the attempt goes on.
TEST_F(UpstreamConnectionTest, SlowHostLookupKeepsTheLoopRunningThenConnects) {
  const auto id = core::Identity::module("dev1", "m1");
  ASSERT_TRUE(startBroker({id}));
  auto o = connectionOptions(broker_->port());
  o.endpoint.host = "localhost";  // a name, so it is looked up
  BlockingResolver resolver;
  o.resolve = resolver.fn();
  makeConnection(o, id);
  conn_->start();
  bool ticked = false;
  {
    core::Timer tick(*loop_, [&] { ticked = true; });
    tick.enable(std::chrono::milliseconds(50));
    ASSERT_TRUE(runner_->runUntil([&] { return ticked; }, std::chrono::seconds(5)));
  }
  EXPECT_EQ(resolver.state->calls.load(), 1);
  EXPECT_EQ(conn_->state(), ConnectionState::kConnecting);
  resolver.state->release.set_value();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)))
      << rec_.last_reason;
}

TEST_F(UpstreamConnectionTest, FailedHostLookupBacksOffWithTheResolversReason) {
  auto o = connectionOptions(pickFreePort());
  o.endpoint.host = "upstream.example";
  o.network_backoff = {std::chrono::milliseconds(60'000), std::chrono::milliseconds(60'000), 0.2};
  BlockingResolver resolver;
  resolver.state->answer = core::unavailable("cannot resolve 'upstream.example': test");
  resolver.state->release.set_value();
  o.resolve = resolver.fn();
  makeConnection(o, core::Identity::module("dev1", "m1"));
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(5)));
  EXPECT_EQ(rec_.last_reason, "cannot resolve 'upstream.example': test");
  EXPECT_EQ(conn_->stats().connects, 0u);
}

// The connect deadline covers the lookup, and a connection closed or destroyed while its lookup
// still blocks never hears of it (ASan and TSan check the late answer touches nothing).
TEST_F(UpstreamConnectionTest, LookupThatNeverAnswersHitsTheDeadlineAndIsAbandoned) {
  auto o = connectionOptions(pickFreePort());
  o.endpoint.host = "upstream.example";
  o.connect_timeout = std::chrono::milliseconds(100);
  o.network_backoff = {std::chrono::milliseconds(60'000), std::chrono::milliseconds(60'000), 0.2};
  BlockingResolver resolver;
  o.resolve = resolver.fn();
  makeConnection(o, core::Identity::module("dev1", "m1"));
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(5)));
  EXPECT_EQ(rec_.last_reason, "no address for upstream.example within 100 ms");
  conn_->retryNow();  // a second lookup, still blocked when the connection goes
  ASSERT_TRUE(runner_->runUntil([&] { return resolver.state->calls.load() == 2; }, std::chrono::seconds(5)));
  conn_.reset();
  const size_t states = rec_.states.size();
  resolver.state->release.set_value();
  ASSERT_TRUE(runner_->runUntil([&] { return resolver.state->returned.load() == 2; }, std::chrono::seconds(5)));
  for (int i = 0; i < 3; ++i) loop_->runNoWait();
  EXPECT_EQ(rec_.states.size(), states);
}

TEST_F(UpstreamConnectionTest, NetworkFailureBacksOffAndRetryNowSkipsIt) {
  const uint16_t port = pickFreePort();  // nothing listens there
  auto o = connectionOptions(port);
  o.network_backoff = {std::chrono::milliseconds(60'000), std::chrono::milliseconds(60'000), 0.2};
  makeConnection(o, core::Identity::module("dev1", "m1"));
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(5)));
  EXPECT_GE(conn_->currentBackoff().count(), 48'000);
  EXPECT_LE(conn_->currentBackoff().count(), 72'000);
  EXPECT_EQ(conn_->stats().connect_attempts, 1u);
  conn_->retryNow();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->stats().connect_attempts == 2 && conn_->state() == ConnectionState::kBackoff; },
                                std::chrono::seconds(5)));
  EXPECT_EQ(conn_->stats().connects, 0u);
}

// A listener that completes the TCP handshake (kernel backlog) but never answers CONNECT: the
// CONNACK deadline turns that into a network failure.
TEST_F(UpstreamConnectionTest, NoConnackWithinTheDeadlineIsANetworkFailure) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto o = connectionOptions(ntohs(addr.sin_port));
  o.connect_timeout = std::chrono::milliseconds(300);
  makeConnection(o, core::Identity::module("dev1", "m1"));
  const auto started = std::chrono::steady_clock::now();
  conn_->start();
  EXPECT_EQ(conn_->state(), ConnectionState::kConnecting);
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(5)));
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(290));
  EXPECT_NE(rec_.last_reason.find("no CONNACK"), std::string::npos) << rec_.last_reason;
  conn_.reset();
  ::close(fd);
}

TEST_F(UpstreamConnectionTest, PublishesWithAWindowAndReportsAcks) {
  const auto id = core::Identity::module("dev1", "m1");
  ASSERT_TRUE(startBroker({id}));
  auto o = connectionOptions(broker_->port());
  o.max_in_flight = 8;
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)))
      << rec_.last_reason << "\n" << broker_->logTail();
  std::string topic;
  up::appendTelemetryTopic(topic, id, std::string_view("seq=1"));
  // The window: exactly max_in_flight accepted before any PUBACK is read.
  uint64_t next = 0;
  while (conn_->canPublish()) ASSERT_TRUE(conn_->publish(topic, bytes("hello"), next++).isOk());
  EXPECT_EQ(next, 8u);
  EXPECT_EQ(conn_->inFlight(), 8u);
  EXPECT_EQ(conn_->publish(topic, bytes("hello"), 99).code(), StatusCode::kUnavailable);
  // Keep the window full until 500 messages were acknowledged.
  ASSERT_TRUE(runner_->runUntil(
      [&] {
        while (next < 500 && conn_->canPublish()) {
          if (!conn_->publish(topic, bytes("hello"), next++).isOk()) return true;
        }
        return rec_.acked.size() == 500;
      },
      std::chrono::seconds(20)));
  for (uint64_t i = 0; i < 500; ++i) EXPECT_EQ(rec_.acked[i], i);
  EXPECT_EQ(conn_->stats().acked, 500u);
  EXPECT_EQ(conn_->inFlight(), 0u);
  conn_->close();
  EXPECT_EQ(conn_->state(), ConnectionState::kIdle);
  EXPECT_EQ(rec_.states.back(), ConnectionState::kIdle);
}

TEST_F(UpstreamConnectionTest, WrongKeyIsRefusedWithConnack5AndNotLogged) {
  const auto id = core::Identity::module("dev1", "m1");
  ASSERT_TRUE(startBroker({id}));
  std::vector<std::string> lines;
  core::Logger::instance().setSinkForTest([&](std::string_view line) { lines.emplace_back(line); });
  makeConnection(connectionOptions(broker_->port()), id, core::base64Encode("wrong-key-wrong-key-wrong-key-00"));
  conn_->start();
  const bool refused =
      runner_->runUntil([&] { return conn_->state() == ConnectionState::kRefused; }, std::chrono::seconds(10));
  core::Logger::instance().setSinkForTest(nullptr);
  ASSERT_TRUE(refused) << rec_.last_reason;
  EXPECT_NE(rec_.last_reason.find("CONNACK 5"), std::string::npos) << rec_.last_reason;
  EXPECT_EQ(conn_->stats().refusals, 1u);
  EXPECT_GE(conn_->currentBackoff().count(), 48'000);  // the slow backoff
  conn_->retryNow();  // does not shorten a refusal
  EXPECT_EQ(conn_->stats().connect_attempts, 1u);
  ASSERT_FALSE(lines.empty());
  for (const std::string& l : lines) {
    EXPECT_EQ(l.find("SharedAccessSignature"), std::string::npos) << l;
    EXPECT_EQ(l.find("sig="), std::string::npos) << l;
  }
}

TEST_F(UpstreamConnectionTest, BrokerLossReportsInFlightInOrder) {
  const auto id = core::Identity::module("dev1", "m1");
  ASSERT_TRUE(startBroker({id}));
  makeConnection(connectionOptions(broker_->port()), id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)));
  std::string topic;
  up::appendTelemetryTopic(topic, id, std::string_view());
  // Fill the window without running the loop, so no PUBACK can have been processed.
  uint64_t n = 0;
  while (conn_->canPublish()) ASSERT_TRUE(conn_->publish(topic, bytes("x"), n++).isOk());
  broker_->kill();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(10)));
  ASSERT_EQ(rec_.acked.size() + rec_.not_acked.size(), n);
  // Whatever was not acknowledged is reported oldest first and after every acked one.
  for (size_t i = 0; i < rec_.not_acked.size(); ++i) EXPECT_EQ(rec_.not_acked[i], rec_.acked.size() + i);
  EXPECT_EQ(conn_->inFlight(), 0u);
  EXPECT_EQ(conn_->stats().disconnects, 1u);
}

// close() from inside an ack callback: every message still completes exactly once (the PUBACKs
// already read complete as acknowledged, the rest as not acknowledged).
TEST_F(UpstreamConnectionTest, CloseFromInsideACompletionCompletesEachMessageOnce) {
  const auto id = core::Identity::module("dev1", "m1");
  ASSERT_TRUE(startBroker({id}));
  makeConnection(connectionOptions(broker_->port()), id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)));
  std::string topic;
  up::appendTelemetryTopic(topic, id, std::string_view());
  uint64_t n = 0;
  while (conn_->canPublish()) ASSERT_TRUE(conn_->publish(topic, bytes("x"), n++).isOk());
  rec_.close_on_first_ack = true;
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kIdle; }, std::chrono::seconds(10)));
  std::vector<int> seen(n, 0);
  for (uint64_t c : rec_.acked) ++seen.at(c);
  for (uint64_t c : rec_.not_acked) ++seen.at(c);
  for (uint64_t i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1) << "cookie " << i;
  EXPECT_EQ(conn_->stats().acked + conn_->stats().not_acked, n);
  EXPECT_EQ(conn_->inFlight(), 0u);
}

TEST_F(UpstreamConnectionTest, KeepaliveSilenceIsDetectedAfterOneAndAHalfKeepalives) {
  const auto id = core::Identity::module("dev1", "m1");
  ASSERT_TRUE(startBroker({id}));
  auto o = connectionOptions(broker_->port());
  o.keepalive = std::chrono::seconds(10);
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)));
  time_.advance(std::chrono::seconds(14));  // < 1.5 x 10 s
  conn_->tickForTest();
  EXPECT_EQ(conn_->state(), ConnectionState::kConnected);
  time_.advance(std::chrono::seconds(2));  // 16 s > 15 s
  conn_->tickForTest();
  EXPECT_EQ(conn_->state(), ConnectionState::kBackoff);
  EXPECT_NE(rec_.last_reason.find("1.5 x keepalive"), std::string::npos) << rec_.last_reason;
}

TEST_F(UpstreamConnectionTest, TokenRenewalReconnectsWithAFreshToken) {
  const auto id = core::Identity::module("dev1", "m1");
  ASSERT_TRUE(startBroker({id}));
  auto o = connectionOptions(broker_->port());
  o.keepalive = std::chrono::seconds(3600);  // the simulated clock jumps; no keep-alive loss
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)));
  time_.advance(std::chrono::seconds(2800));  // 78% of the lifetime
  conn_->tickForTest();
  EXPECT_EQ(conn_->state(), ConnectionState::kConnected);
  EXPECT_EQ(conn_->stats().renewals, 0u);
  time_.advance(std::chrono::seconds(100));  // 80.6%
  conn_->tickForTest();  // nothing in flight: renews at once
  EXPECT_EQ(conn_->stats().renewals, 1u);
  EXPECT_EQ(conn_->stats().connect_attempts, 2u);
  // The broker only knows the first token, so the fresh one is refused: proof that it changed.
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kRefused; }, std::chrono::seconds(10)));
  EXPECT_EQ(conn_->stats().disconnects, 0u);
}

TEST_F(UpstreamConnectionTest, TlsUpstreamWithCaFile) {
  const auto id = core::Identity::module("dev1", "m1");
  auto certs = transports::tls::ensureDevCertificates(dir_.path() + "/data", {});
  ASSERT_TRUE(certs.isOk()) << certs.status().toString();
  ASSERT_TRUE(startBroker({id}, TlsFiles{certs->server_cert_chain_path, certs->server_key_path}));
  auto o = connectionOptions(broker_->port());
  o.endpoint.scheme = up::UpstreamScheme::kMqtts;
  o.endpoint.host = "localhost";
  o.ca_file = certs->ca_path;
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)))
      << rec_.last_reason << "\n" << broker_->logTail();
  std::string topic;
  up::appendTelemetryTopic(topic, id, std::string_view());
  const std::string payload(3000, 'p');
  uint64_t next = 0;
  ASSERT_TRUE(runner_->runUntil(
      [&] {
        while (next < 2000 && conn_->canPublish()) {
          if (!conn_->publish(topic, bytes(payload), next++).isOk()) return true;
        }
        return rec_.acked.size() == 2000;
      },
      std::chrono::seconds(30)))
      << rec_.acked.size() << " " << rec_.last_reason;
  EXPECT_EQ(conn_->stats().connects, 1u);
}

// A TLS 1.3-only broker: the 1.2 floor must not have become a 1.2 ceiling.
TEST_F(UpstreamConnectionTest, TlsOneThreeBrokerIsAccepted) {
  const auto id = core::Identity::module("dev1", "m1");
  auto certs = transports::tls::ensureDevCertificates(dir_.path() + "/data", {});
  ASSERT_TRUE(certs.isOk()) << certs.status().toString();
  ASSERT_TRUE(startBroker({id}, TlsFiles{certs->server_cert_chain_path, certs->server_key_path, "tlsv1.3"}));
  auto o = connectionOptions(broker_->port());
  o.endpoint.scheme = up::UpstreamScheme::kMqtts;
  o.endpoint.host = "localhost";
  o.ca_file = certs->ca_path;
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)))
      << rec_.last_reason << "\n" << broker_->logTail();
}

// The server certificate names localhost and 127.0.0.1, not this host name: refused.
TEST_F(UpstreamConnectionTest, TlsHostNameMismatchFails) {
  const auto id = core::Identity::module("dev1", "m1");
  auto certs = transports::tls::ensureDevCertificates(dir_.path() + "/data", {});
  ASSERT_TRUE(certs.isOk());
  ASSERT_TRUE(startBroker({id}, TlsFiles{certs->server_cert_chain_path, certs->server_key_path}));
  auto o = connectionOptions(broker_->port());
  o.endpoint.scheme = up::UpstreamScheme::kMqtts;
  o.endpoint.host = "127.0.0.2";  // loopback too, but not in the certificate
  o.ca_file = certs->ca_path;
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(10)));
  EXPECT_EQ(conn_->stats().connects, 0u);
  // The same broker through an address the certificate does name (an IP SAN) is fine.
  conn_.reset();
  o.endpoint.host = "127.0.0.1";
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kConnected; }, std::chrono::seconds(10)))
      << rec_.last_reason;
}

// libmosquitto reports a TLS handshake step that failed on the socket as one that waits for more,
// so a refused or closed TLS connection used to poll readable in a busy loop until the CONNACK
// deadline. With that deadline at a minute, each failure must still surface at once.
TEST_F(UpstreamConnectionTest, RefusedTlsConnectFailsAtOnce) {
  const uint16_t port = pickFreePort();  // nothing listens there
  startSlowFailingTlsConnection(port);
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(5)))
      << "still " << up::connectionStateName(conn_->state());
  EXPECT_EQ(conn_->stats().connects, 0u);
  EXPECT_NE(rec_.last_reason.find("TLS connect: "), std::string::npos) << rec_.last_reason;
}

TEST_F(UpstreamConnectionTest, TlsPeerClosingDuringTheHandshakeFailsAtOnce) {
  // A listener that reads the ClientHello and closes without an answer: an orderly close (FIN),
  // not a reset, which would come as a poll error instead.
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  startSlowFailingTlsConnection(ntohs(addr.sin_port));
  int accepted = -1;
  size_t hello_bytes = 0;
  const bool failed = runner_->runUntil(
      [&] {
        if (accepted < 0) {
          accepted = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
        } else if (hello_bytes == 0) {
          char buf[4096];
          const ssize_t n = ::read(accepted, buf, sizeof buf);
          if (n > 0) {
            hello_bytes = static_cast<size_t>(n);
            ::close(accepted);
          }
        }
        return conn_->state() == ConnectionState::kBackoff;
      },
      std::chrono::seconds(5));
  if (accepted >= 0 && hello_bytes == 0) ::close(accepted);
  ::close(lfd);
  ASSERT_TRUE(failed) << "still " << up::connectionStateName(conn_->state());
  EXPECT_GT(hello_bytes, 0u);  // the ClientHello came, and went unanswered
  EXPECT_EQ(conn_->stats().connects, 0u);
  EXPECT_NE(rec_.last_reason.find("TLS connect: "), std::string::npos) << rec_.last_reason;
}

TEST_F(UpstreamConnectionTest, MissingCaFileIsAConfigurationError) {
  auto o = connectionOptions(8883);
  o.endpoint.scheme = up::UpstreamScheme::kMqtts;
  o.ca_file = dir_.path() + "/no-such-ca.pem";
  const auto id = core::Identity::module("dev1", "m1");
  auto c = up::UpstreamConnection::create(*loop_, time_, o, up::UpstreamCredentials{id, keyFor(id)}, rec_);
  ASSERT_FALSE(c.isOk());
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition) << c.status().toString();
  EXPECT_NE(c.status().message().find("no-such-ca.pem"), std::string_view::npos) << c.status().toString();
}

TEST_F(UpstreamConnectionTest, TlsWithUntrustedCaFailsAsNetworkError) {
  const auto id = core::Identity::module("dev1", "m1");
  auto certs = transports::tls::ensureDevCertificates(dir_.path() + "/data", {});
  ASSERT_TRUE(certs.isOk());
  auto other = transports::tls::ensureDevCertificates(dir_.path() + "/other", {});
  ASSERT_TRUE(other.isOk());
  ASSERT_TRUE(startBroker({id}, TlsFiles{certs->server_cert_chain_path, certs->server_key_path}));
  auto o = connectionOptions(broker_->port());
  o.endpoint.scheme = up::UpstreamScheme::kMqtts;
  o.endpoint.host = "localhost";
  o.ca_file = other->ca_path;
  makeConnection(o, id);
  conn_->start();
  ASSERT_TRUE(runner_->runUntil([&] { return conn_->state() == ConnectionState::kBackoff; }, std::chrono::seconds(10)));
  EXPECT_EQ(conn_->stats().connects, 0u);
}

}  // namespace
}  // namespace edgehub::testing::upstream
