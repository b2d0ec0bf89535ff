#include "transports/upstream/upstream_pool.h"

#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/log/logger.h"
#include "core/loop/loop.h"
#include "core/time_source.h"
#include "tests/transports/upstream/broker_fixture.h"
#include "tests/transports/upstream/upstream_test_util.h"
#include "transports/mqtt/blocking_client.h"
#include "transports/tls/dev_certs.h"

namespace edgehub::testing::upstream {
namespace {

using up::ConnectionState;
using Clock = std::chrono::steady_clock;

class UpstreamPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = core::Loop::create();
    ASSERT_TRUE(loop.isOk());
    loop_ = std::move(loop).value();
    runner_ = std::make_unique<LoopRunner>(*loop_);
  }
  void TearDown() override {
    pool_.reset();
    runner_.reset();
    // Deferred deletions (closed connections) run in the next turns.
    for (int i = 0; i < 3; ++i) loop_->runNoWait();
    ASSERT_TRUE(loop_->close().isOk()) << "a handle leaked";
  }
  bool startBroker(const std::vector<core::Identity>& ids) {
    broker_ = startTestBroker(dir_.path(), ids, time_);
    return broker_ != nullptr;
  }
  up::PoolOptions poolOptions() {
    up::PoolOptions o;
    o.connection = connectionOptions(broker_->port());
    o.connection.max_message_bytes = 4096;
    return o;
  }
  void makePool(up::PoolOptions o) {
    auto p = up::UpstreamPool::create(*loop_, time_, std::move(o), source_);
    ASSERT_TRUE(p.isOk()) << p.status().toString();
    pool_ = std::move(p).value();
  }

  TempDir dir_;
  core::SimulatedTimeSource time_;
  core::LoopPtr loop_;
  std::unique_ptr<LoopRunner> runner_;
  std::unique_ptr<MosquittoBroker> broker_;
  FakeSource source_{100, 4096};
  up::UpstreamPoolPtr pool_;
};

const core::Identity kA = core::Identity::module("dev1", "m1");
const core::Identity kB = core::Identity::module("dev1", "m2");
const core::Identity kC = core::Identity::module("dev2", "m1");
const core::Identity kLate = core::Identity::module("dev9", "late");
const core::Identity kBad = core::Identity::module("dev3", "bad");

// (a) Three module identities publish; the observer sees each message on its own identity's
// topic with its properties, and nothing on another identity's topic (the broker's ACL, a
// third party, enforces the per-identity scope; the one cross-topic publish is dropped).
// Oversized messages are refused, counted and dropped; the rest flows.
TEST_F(UpstreamPoolTest, ThreeIdentitiesPublishOnTheirOwnTopics) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  ASSERT_TRUE(startBroker({kA, kB, kC}));
  // stdbuf: mosquitto_sub's stdout is a pipe here, so without line buffering the SUBACK line
  // (our readiness signal) would sit in its stdio buffer.
  Subprocess observer({"/usr/bin/stdbuf", "-oL", kMosquittoSub, "-h", "127.0.0.1", "-p", std::to_string(broker_->port()), "-u", kObserverUser,
                       "-P", kObserverPassword, "-t", "#", "-q", "1", "-v", "-d", "-i", "observer"});
  ASSERT_TRUE(observer.waitForStdoutLine("SUBACK", std::chrono::seconds(10))) << observer.stderrText();

  constexpr uint32_t kPerIdentity = 40;
  for (const auto& id : {kA, kB, kC}) source_.add(id, kPerIdentity);
  source_.queue(kA).cross_first = true;  // A's seq 0 goes to B's topic
  source_.queue(kA).cross_target = kB;
  source_.queue(kC).oversized = {7, 8};
  makePool(poolOptions());
  for (const auto& id : {kA, kB, kC}) pool_->notifyPending(id);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.allAcked(); }, std::chrono::seconds(20))) << broker_->logTail();

  // Every legit message reaches the observer, on its own topic, properties intact.
  const uint32_t expected = 3 * kPerIdentity - 1 /*cross*/ - 2 /*oversized*/;
  std::map<std::string, std::vector<int>> seen;  // client id -> seqs in arrival order
  for (uint32_t i = 0; i < expected; ++i) {
    auto line = observer.waitForStdoutLine("devices/", std::chrono::seconds(10));
    ASSERT_TRUE(line) << "only " << i << " of " << expected << " messages observed";
    const size_t space = line->find(' ');
    ASSERT_NE(space, std::string::npos) << *line;
    if (line->rfind("Client", 0) == 0) {  // a -d debug line, not a message
      --i;
      continue;
    }
    const std::string topic = line->substr(0, space);
    const std::string payload = line->substr(space + 1);
    ASSERT_EQ(payload.find("CROSS"), std::string::npos) << "the ACL let a cross-identity publish through: " << *line;
    const size_t hash = payload.find('#');
    ASSERT_NE(hash, std::string::npos) << *line;
    const std::string client = payload.substr(0, hash);
    const int seq = std::stoi(payload.substr(hash + 1));
    const auto id = core::Identity::parseClientId(client);
    ASSERT_TRUE(id.isOk()) << client;
    std::string want;
    const std::string seq_text = std::to_string(seq);
    const up::TelemetryProperty props[] = {{"$.ct", "application/json"}, {"seq", seq_text}};
    up::appendTelemetryTopic(want, id.value(), props);
    EXPECT_EQ(topic, want) << "payload of " << client << " seen on another topic";
    EXPECT_NE(topic.find("%24.ct=application%2Fjson&seq=" + seq_text), std::string::npos) << topic;
    seen[client].push_back(seq);
  }
  // Per-identity order kept.
  for (const auto& [client, seqs] : seen) {
    for (size_t i = 1; i < seqs.size(); ++i) EXPECT_LT(seqs[i - 1], seqs[i]) << client;
  }
  EXPECT_EQ(seen["dev1/m1"].size(), kPerIdentity - 1);
  EXPECT_EQ(seen["dev1/m2"].size(), kPerIdentity);
  EXPECT_EQ(seen["dev2/m1"].size(), kPerIdentity - 2);
  // The cross publish came before A's first legit message, so it would have been seen by now.
  EXPECT_EQ(observer.stdoutText().find("CROSS"), std::string::npos);

  const up::PoolCounters& c = pool_->counters();
  EXPECT_EQ(c.connects, 3u);
  EXPECT_EQ(c.published, 3 * kPerIdentity - 2);
  EXPECT_EQ(c.acked, 3 * kPerIdentity - 2);
  EXPECT_EQ(c.oversized, 2u);
  EXPECT_EQ(c.refusals, 0u);
  EXPECT_EQ(pool_->openConnections(), 3u);
  pool_->shutdown();
  EXPECT_EQ(pool_->openConnections(), 0u);
}

// (b) The broker dies under load and comes back on the same port. Every message is eventually
// acknowledged exactly once (re-sends of unacknowledged messages bounded by the window). The
// connections back off for ~5 s (well past the 1 s bound below); only the "any success retries
// every backed-off connection" rule lets them resume right after a late identity connects.
TEST_F(UpstreamPoolTest, BrokerRestartUnderLoadResumesWithinOneSecond) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  ASSERT_TRUE(startBroker({kA, kB, kC, kLate}));
  constexpr uint32_t kPerIdentity = 6000;
  for (const auto& id : {kA, kB, kC}) source_.add(id, kPerIdentity);
  source_.add(kLate, 10);
  auto o = poolOptions();
  o.connection.max_in_flight = 64;
  o.connection.network_backoff = {std::chrono::milliseconds(5000), std::chrono::milliseconds(60'000), 0.2};
  makePool(o);
  for (const auto& id : {kA, kB, kC}) pool_->notifyPending(id);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.totalAcked() >= 3000; }, std::chrono::seconds(30)));
  broker_->kill();
  ASSERT_TRUE(runner_->runUntil(
      [&] {
        for (const auto& id : {kA, kB, kC}) {
          const auto* conn = pool_->connection(id);
          if (conn == nullptr || conn->state() != ConnectionState::kBackoff) return false;
        }
        return true;
      },
      std::chrono::seconds(10)));
  const uint64_t acked_before = source_.totalAcked();
  ASSERT_LT(acked_before, 3u * kPerIdentity) << "the broker died too late to test anything";
  for (const auto& id : {kA, kB, kC}) EXPECT_GE(pool_->connection(id)->currentBackoff().count(), 4000);

  ASSERT_TRUE(broker_->start(/*same_port=*/true)) << broker_->lastError();
  const auto listening = Clock::now();
  source_.markForFirstAck();
  // "The network is back": a new identity connects at once (no backoff of its own yet)...
  pool_->notifyPending(kLate);
  // ...and its success makes the others retry now instead of in ~5 s.
  ASSERT_TRUE(runner_->runUntil(
      [&] {
        for (const auto& id : {kA, kB, kC}) {
          if (source_.queue(id).first_ack_after_mark == Clock::time_point{}) return false;
        }
        return true;
      },
      std::chrono::seconds(10)));
  for (const auto& id : {kA, kB, kC}) {
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(source_.queue(id).first_ack_after_mark - listening);
    std::cout << id.clientId() << ": first ack " << took.count() << " ms after the broker listened again\n";
    EXPECT_LT(took.count(), 1000) << id.clientId() << " resumed " << took.count() << " ms after the broker listened";
  }
  EXPECT_GE(pool_->counters().retry_all, 1u);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.allAcked(); }, std::chrono::seconds(60)));

  for (const auto& id : {kA, kB, kC}) {
    const auto& q = source_.queue(id);
    uint64_t extra = 0;
    for (uint32_t s = 0; s < q.total; ++s) {
      ASSERT_EQ(q.acks[s], 1u) << id.clientId() << " seq " << s;
      ASSERT_GE(q.publishes[s], 1u);
      extra += q.publishes[s] - 1;
    }
    EXPECT_LE(extra, 64u) << id.clientId() << ": re-sends exceed the window";
    EXPECT_EQ(extra, q.not_acked) << id.clientId();
  }
  const up::PoolCounters& c = pool_->counters();
  EXPECT_EQ(c.disconnects, 3u);
  EXPECT_EQ(c.connects, 3u + 3u + 1u);
}

// (c) One identity with a wrong key is refused (CONNACK 5), counted, put on the slow backoff;
// the others keep flowing.
TEST_F(UpstreamPoolTest, WrongKeyIsRefusedAndOthersKeepFlowing) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  ASSERT_TRUE(startBroker({kA, kB, kBad}));
  for (const auto& id : {kA, kB, kBad}) source_.add(id, 500);
  source_.queue(kBad).wrong_key = true;
  makePool(poolOptions());
  for (const auto& id : {kA, kBad, kB}) pool_->notifyPending(id);
  ASSERT_TRUE(runner_->runUntil(
      [&] {
        return source_.queue(kA).acked == 500 && source_.queue(kB).acked == 500 &&
               pool_->connection(kBad)->state() == ConnectionState::kRefused;
      },
      std::chrono::seconds(20)));
  EXPECT_EQ(pool_->counters().refusals, 1u);
  EXPECT_EQ(source_.queue(kBad).acked, 0u);
  EXPECT_EQ(pool_->connection(kBad)->stats().published, 0u);
  EXPECT_GE(pool_->connection(kBad)->currentBackoff().count(), 48'000);
  // A success elsewhere does not shorten a refusal's backoff.
  EXPECT_EQ(pool_->connection(kBad)->stats().connect_attempts, 1u);
}

// (e) The cap closes the longest-idle connection to make room; idle connections close after
// idle_timeout (on the simulated clock).
TEST_F(UpstreamPoolTest, CapEvictsLongestIdleAndIdleConnectionsClose) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  ASSERT_TRUE(startBroker({kA, kB, kC}));
  auto o = poolOptions();
  o.max_connections = 2;
  o.idle_timeout = std::chrono::milliseconds(50);
  o.housekeeping_interval = std::chrono::milliseconds(3'600'000);  // driven by the test
  makePool(o);
  for (const auto& id : {kA, kB, kC}) source_.add(id, 20);

  pool_->notifyPending(kA);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.queue(kA).acked == 20; }, std::chrono::seconds(10)));
  time_.advance(std::chrono::milliseconds(5));  // A's last activity is now the oldest
  pool_->notifyPending(kB);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.queue(kB).acked == 20; }, std::chrono::seconds(10)));
  EXPECT_EQ(pool_->openConnections(), 2u);
  time_.advance(std::chrono::milliseconds(5));

  pool_->notifyPending(kC);  // at the cap: A (longest idle) is closed
  EXPECT_EQ(pool_->counters().evictions, 1u);
  EXPECT_EQ(pool_->connection(kA), nullptr);
  EXPECT_NE(pool_->connection(kB), nullptr);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.queue(kC).acked == 20; }, std::chrono::seconds(10)));
  EXPECT_EQ(pool_->openConnections(), 2u);

  // More for A while B and C are busy-free: A waits? No: B is idle, so B is evicted for A.
  source_.add(kA, 5);
  time_.advance(std::chrono::milliseconds(5));
  pool_->notifyPending(kA);
  EXPECT_EQ(pool_->counters().evictions, 2u);
  EXPECT_EQ(pool_->connection(kB), nullptr);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.queue(kA).acked == 25; }, std::chrono::seconds(10)));

  // Idle close: nothing pending, nothing in flight, idle_timeout passed.
  pool_->housekeepingForTest();
  EXPECT_EQ(pool_->openConnections(), 2u);  // not idle long enough yet
  time_.advance(std::chrono::milliseconds(60));
  pool_->housekeepingForTest();
  EXPECT_EQ(pool_->openConnections(), 0u);
  EXPECT_EQ(pool_->counters().idle_closes, 2u);
  EXPECT_EQ(pool_->counters().not_acked, 0u);
}

// At the cap with every connection busy, a new identity waits for a slot instead of evicting
// a connection with messages in flight.
TEST_F(UpstreamPoolTest, WaitsForASlotWhenEveryConnectionIsBusy) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  ASSERT_TRUE(startBroker({kA, kB}));
  auto o = poolOptions();
  o.max_connections = 1;
  o.housekeeping_interval = std::chrono::milliseconds(20);
  o.idle_timeout = std::chrono::milliseconds(1);
  makePool(o);
  source_.add(kA, 3000);
  source_.add(kB, 10);
  pool_->notifyPending(kA);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.queue(kA).acked >= 100; }, std::chrono::seconds(10)));
  pool_->notifyPending(kB);  // A has messages pending: B waits
  EXPECT_EQ(pool_->waitingForSlot(), 1u);
  EXPECT_EQ(pool_->counters().evictions, 0u);
  // Once A is drained, B gets the slot (housekeeping or A's last ack).
  ASSERT_TRUE(runner_->runUntil([&] { return source_.allAcked(); }, std::chrono::seconds(20)));
  EXPECT_EQ(pool_->counters().evictions, 1u);
  EXPECT_EQ(source_.queue(kA).acked, 3000u);
}

// A held identity is connected with nothing to send and never closed as idle; its connection
// subscribes on connect, messages on the subscriptions reach the source, and publishControl()
// sends QoS 0 requests outside the window. Released, it goes idle like any other.
TEST_F(UpstreamPoolTest, HeldIdentityStaysConnectedReceivesAndSendsControlMessages) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  auto users = brokerUsers({kA}, time_);
  users[0].acl.push_back("topic readwrite $iothub/#");
  users.push_back({"cloud", "cloud-secret", {"topic readwrite $iothub/#"}});
  broker_ = std::make_unique<MosquittoBroker>(dir_.path(), users);
  ASSERT_EQ(broker_->setupError(), "");
  ASSERT_TRUE(broker_->start()) << broker_->lastError();
  auto cloud = transports::mqtt::BlockingClient::open("127.0.0.1:" + std::to_string(broker_->port()));
  ASSERT_NE(cloud, nullptr);
  ASSERT_EQ(cloud->connect("cloud", std::string("cloud"), std::string("cloud-secret")), 0);
  ASSERT_EQ(cloud->subscribe("$iothub/twin/GET/#", 0), 0);

  auto o = poolOptions();
  o.connection.subscriptions = {"$iothub/methods/POST/#"};
  o.idle_timeout = std::chrono::milliseconds(50);
  o.housekeeping_interval = std::chrono::milliseconds(3'600'000);  // driven by the test
  makePool(o);
  source_.add(kA, 0);  // known to the source (credentials), nothing to send
  pool_->hold(kA, true);  // nothing pending: the hold alone opens the connection
  ASSERT_TRUE(runner_->runUntil([&] { return !source_.connected_.empty(); }, std::chrono::seconds(10)));
  EXPECT_EQ(source_.connected_.front(), kA);
  EXPECT_EQ(pool_->counters().published, 0u);

  // The broker may see the cloud's publish before the pool's SUBSCRIBE: publish until one lands.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (source_.inbound_.empty() && Clock::now() < deadline) {
    ASSERT_TRUE(cloud->publish("$iothub/methods/POST/reboot/?$rid=7", R"({"now":true})", 0));
    (void)runner_->runUntil([&] { return !source_.inbound_.empty(); }, std::chrono::milliseconds(200));
  }
  ASSERT_FALSE(source_.inbound_.empty());
  EXPECT_EQ(source_.inbound_.front().identity, kA);
  EXPECT_EQ(source_.inbound_.front().topic, "$iothub/methods/POST/reboot/?$rid=7");
  EXPECT_EQ(source_.inbound_.front().payload, R"({"now":true})");

  ASSERT_TRUE(pool_->publishControl(kA, "$iothub/twin/GET/?$rid=5", {}).isOk());
  EXPECT_EQ(pool_->publishControl(kB, "$iothub/twin/GET/?$rid=6", {}).code(), core::StatusCode::kUnavailable);
  runner_->runFor(std::chrono::milliseconds(20));  // the turn end uncorks the socket
  auto got = cloud->next(std::chrono::seconds(5));
  while (got && got->type != transports::mqtt::PacketType::kPublish) got = cloud->next(std::chrono::seconds(5));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->topic, "$iothub/twin/GET/?$rid=5");
  EXPECT_EQ(pool_->counters().control_published, 1u);

  time_.advance(std::chrono::milliseconds(100));
  pool_->housekeepingForTest();
  EXPECT_NE(pool_->connection(kA), nullptr) << "a held connection was closed as idle";
  pool_->hold(kA, false);
  pool_->housekeepingForTest();
  EXPECT_EQ(pool_->connection(kA), nullptr);
  EXPECT_EQ(pool_->counters().idle_closes, 1u);
}

// Over TLS every connection of a pool uses the pool's one TLS context: the CA store is loaded
// once, not once per identity (the OS trust store is about a megabyte each).
TEST_F(UpstreamPoolTest, TlsConnectionsShareThePoolsContext) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  auto certs = transports::tls::ensureDevCertificates(dir_.path() + "/data", {});
  ASSERT_TRUE(certs.isOk()) << certs.status().toString();
  broker_ = startTestBroker(dir_.path(), {kA, kB}, time_, TlsFiles{certs->server_cert_chain_path, certs->server_key_path});
  ASSERT_NE(broker_, nullptr);
  auto o = poolOptions();
  o.connection.endpoint.scheme = up::UpstreamScheme::kMqtts;
  o.connection.endpoint.host = "localhost";
  o.connection.ca_file = certs->ca_path;
  makePool(o);
  source_.add(kA, 20);
  source_.add(kB, 20);
  pool_->notifyPending(kA);
  pool_->notifyPending(kB);
  ASSERT_TRUE(runner_->runUntil([&] { return source_.allAcked(); }, std::chrono::seconds(20)));
  ASSERT_NE(pool_->tlsContext(), nullptr);
  ASSERT_NE(pool_->connection(kA), nullptr);
  ASSERT_NE(pool_->connection(kB), nullptr);
  EXPECT_EQ(pool_->connection(kA)->tlsContext(), pool_->tlsContext());
  EXPECT_EQ(pool_->connection(kB)->tlsContext(), pool_->tlsContext());
  // An unreadable CA file is a setup error of the identity, counted, and nothing is opened.
  auto bad = poolOptions();
  bad.connection.endpoint.scheme = up::UpstreamScheme::kMqtts;
  bad.connection.endpoint.host = "localhost";
  bad.connection.ca_file = dir_.path() + "/no-such-ca.pem";
  pool_.reset();
  makePool(bad);
  pool_->notifyPending(kA);
  EXPECT_EQ(pool_->openConnections(), 0u);
  EXPECT_EQ(pool_->counters().credential_errors, 1u);
  EXPECT_EQ(pool_->tlsContext(), nullptr);
}

// IoT Hub is always TLS. An upstream that is down refuses each TLS connect; each attempt must
// fail at once (libmosquitto alone took it for a handshake in progress and the loop spun until
// the CONNACK deadline, 10 s by default), so the probe keeps trying and the pool resumes within
// a second of the broker listening again.
TEST_F(UpstreamPoolTest, TlsUpstreamThatWasDownResumesWithinOneSecond) {
  ASSERT_TRUE(haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
  auto certs = transports::tls::ensureDevCertificates(dir_.path() + "/data", {});
  ASSERT_TRUE(certs.isOk()) << certs.status().toString();
  broker_ = startTestBroker(dir_.path(), {kA}, time_, TlsFiles{certs->server_cert_chain_path, certs->server_key_path});
  ASSERT_NE(broker_, nullptr);
  auto o = poolOptions();  // the broker's port, kept across its restart
  o.connection.endpoint.scheme = up::UpstreamScheme::kMqtts;
  o.connection.endpoint.host = "localhost";
  o.connection.ca_file = certs->ca_path;
  broker_->kill();
  makePool(o);
  source_.add(kA, 200);
  pool_->notifyPending(kA);
  // Two refused attempts: the first on demand, the second from the probe.
  ASSERT_TRUE(runner_->runUntil(
      [&] {
        const auto* conn = pool_->connection(kA);
        return conn != nullptr && conn->stats().connect_attempts >= 2 && conn->state() == ConnectionState::kBackoff;
      },
      std::chrono::seconds(5)))
      << "attempts that do not fail at once: " << (pool_->connection(kA) ? up::connectionStateName(pool_->connection(kA)->state()) : "none");
  EXPECT_EQ(source_.totalAcked(), 0u);
  ASSERT_TRUE(broker_->start(/*same_port=*/true)) << broker_->lastError();
  const auto listening = Clock::now();
  source_.markForFirstAck();
  ASSERT_TRUE(runner_->runUntil([&] { return source_.queue(kA).first_ack_after_mark != Clock::time_point{}; },
                                std::chrono::seconds(15)));
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(source_.queue(kA).first_ack_after_mark - listening);
  EXPECT_LT(took.count(), 1000) << "resumed " << took.count() << " ms after the broker listened";
  ASSERT_TRUE(runner_->runUntil([&] { return source_.allAcked(); }, std::chrono::seconds(20)));
}

}  // namespace
}  // namespace edgehub::testing::upstream
