// Integration tests of the load generator: --broker mode against a real mosquitto started here,
// and clean failures of hub mode (today's hub accepts MQTT connections and closes them).
#include "bench/loadgen/loadgen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench/loadgen/bench_setup.h"
#include "tests/support/subprocess.h"

namespace edgehub::bench {
namespace {

using namespace std::chrono_literals;

uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}


class MosquittoBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access("/usr/sbin/mosquitto", X_OK), 0) << "mosquitto is missing: ./test.sh installs it";
    auto dir = TempDir::create();
    ASSERT_TRUE(dir.isOk());
    dir_ = std::make_unique<TempDir>(std::move(dir).value());
    port_ = freePort();
    std::string conf = dir_->path() + "/mosquitto.conf";
    ASSERT_TRUE(writeTextFile(conf, makeMosquittoConfig(port_)).isOk());
    broker_ = std::make_unique<testing::Subprocess>(std::vector<std::string>{"/usr/sbin/mosquitto", "-c", conf});
    ASSERT_TRUE(broker_->started());
    // Ready when it accepts; the deadline only bounds a broken setup.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!tcpConnects(port_)) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "mosquitto did not start: " << broker_->stderrText();
      ASSERT_FALSE(broker_->wait(10ms).has_value()) << "mosquitto exited: " << broker_->stderrText();
    }
  }
  void TearDown() override {
    if (broker_) {
      broker_->sendSignal(SIGTERM);
      EXPECT_TRUE(broker_->wait(10s).has_value());
    }
  }

  LoadgenOptions options(uint8_t qos) {
    LoadgenOptions o;
    o.broker = core::SocketAddress{"127.0.0.1", port_};
    o.publishers = 2;
    o.receivers = 2;
    o.qos = qos;
    o.messages = 3000;
    o.size = 64;
    o.window = 100;
    o.timeout_s = 60;
    return o;
  }

  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  std::unique_ptr<testing::Subprocess> broker_;
};

void expectExactRun(const LoadgenOptions& o, const LoadgenReport& report) {
  ASSERT_EQ(report.targets.size(), 1u);
  const TargetReport& t = report.targets[0];
  EXPECT_TRUE(t.error.empty()) << t.error;
  EXPECT_TRUE(t.check_ok);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(t.published, o.publishers * o.messages);
  EXPECT_EQ(t.expected, o.publishers * o.messages * o.receivers);
  EXPECT_EQ(t.delivered, t.expected);
  EXPECT_EQ(t.missing, 0u);
  EXPECT_EQ(t.duplicates, 0u);
  EXPECT_GT(t.msgs_per_sec, 0);
  EXPECT_GT(t.max_ns, 0u);
  EXPECT_LE(t.p50_ns, t.p99_ns);
  EXPECT_LE(t.p99_ns, t.max_ns);
  EXPECT_FALSE(t.cpu_seconds.has_value());  // no pid for --broker
  std::string text = formatReportText(o, report);
  EXPECT_NE(text.find("check: ok (every message once, in order)"), std::string::npos) << text;
  std::string json = formatReportJson(o, report);
  EXPECT_NE(json.find("\"ok\":true"), std::string::npos) << json;
}

TEST_F(MosquittoBrokerTest, Qos1TwoByTwoDeliversEveryMessageOnceInOrder) {
  LoadgenOptions o = options(1);
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk()) << report.status().message();
  expectExactRun(o, report.value());
}

TEST_F(MosquittoBrokerTest, Qos0TwoByTwoDeliversEveryMessageOnceInOrder) {
  LoadgenOptions o = options(0);
  o.threads = 2;
  o.rate = 20000;  // paced, so a QoS 0 run on a loaded machine drops nothing
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk()) << report.status().message();
  expectExactRun(o, report.value());
}

TEST_F(MosquittoBrokerTest, DurationModeCountsWhatWasSent) {
  LoadgenOptions o = options(1);
  o.duration_s = 0.5;
  o.rate = 2000;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk());
  const TargetReport& t = report->targets[0];
  EXPECT_TRUE(t.ok()) << t.error;
  EXPECT_GT(t.published, 0u);
  EXPECT_EQ(t.delivered, t.published * 2);
}

TEST(LoadgenFailureTest, ConnectionRefusedIsAClearError) {
  LoadgenOptions o;
  o.broker = core::SocketAddress{"127.0.0.1", freePort()};
  o.messages = 10;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk());
  ASSERT_EQ(report->targets.size(), 1u);
  EXPECT_FALSE(report->ok());
  EXPECT_NE(report->targets[0].error.find("cannot connect"), std::string::npos) << report->targets[0].error;
}

// A server that accepts and immediately closes, like today's hub listener.
TEST(LoadgenFailureTest, ExternalHubThatClosesConnectionsFailsBeforeConnack) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::atomic<bool> stop{false};
  std::thread server([fd, &stop] {
    while (!stop.load()) {
      int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) return;  // shut down below
      ::close(c);
    }
  });

  auto dir = TempDir::create();
  ASSERT_TRUE(dir.isOk());
  auto ids = makeBenchIdentities({"pub0", "recv0"});
  ASSERT_TRUE(ids.isOk());
  std::string ids_path = dir->path() + "/identities.json";
  ASSERT_TRUE(core::writeIdentityFile(ids_path, ids.value()).isOk());
  LoadgenOptions o;
  o.hub = core::SocketAddress{"127.0.0.1", ntohs(addr.sin_port)};
  o.identities_path = ids_path;
  o.messages = 10;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);

  stop.store(true);
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
  server.join();
  ASSERT_TRUE(report.isOk());
  EXPECT_FALSE(report->ok());
  EXPECT_NE(report->targets[0].error.find("before CONNACK"), std::string::npos) << report->targets[0].error;
}

// Hub mode end to end: the load generator starts the edgehub binary of this build on a generated
// manifest, drives 2 publishers through routes to 2 receivers, checks every delivery, reports
// the hub's CPU and RSS, and leaves no process behind.
TEST(LoadgenHubTest, SpawnedHubDeliversEveryMessageOnceInOrder) {
  for (int qos : {0, 1}) {
    SCOPED_TRACE("QoS " + std::to_string(qos));
    LoadgenOptions o;
    o.edgehub_path = std::string(HUB_BINARY_DIR) + "/edgehub";
    o.publishers = 2;
    o.receivers = 2;
    o.qos = static_cast<uint8_t>(qos);
    o.messages = 3000;
    o.timeout_s = 60;
    std::ostringstream progress;
    auto report = runLoadgen(o, progress);
    ASSERT_TRUE(report.isOk()) << report.status().toString();
    ASSERT_EQ(report->targets.size(), 1u);
    const TargetReport& t = report->targets[0];
    EXPECT_TRUE(t.ok()) << t.error << formatReportText(o, report.value());
    EXPECT_EQ(t.published, 6000u);
    EXPECT_EQ(t.delivered, 12000u);
    EXPECT_EQ(t.missing, 0u);
    ASSERT_TRUE(t.cpu_seconds.has_value());
    ASSERT_TRUE(t.peak_rss_bytes.has_value());
    EXPECT_GT(*t.peak_rss_bytes, 0u);
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "the hub was reaped";
  }
}

TEST(LoadgenHubTest, IdleModulesReportTheHubsMemory) {
  LoadgenOptions o;
  o.edgehub_path = std::string(HUB_BINARY_DIR) + "/edgehub";
  o.idle = 10;
  o.duration_s = 0.2;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  const TargetReport& t = report->targets[0];
  EXPECT_TRUE(t.error.empty()) << t.error;
  ASSERT_TRUE(t.rss_bytes.has_value());
  EXPECT_GT(*t.rss_bytes, 1'000'000u);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
}

// Backlog mode against a hub with a store: everything is published while the receiver is
// offline, the hub restarts, and the receiver then drains every message once, in order. The
// report carries both phases, the restart times and the store's write figures.
TEST(LoadgenHubTest, BacklogAcrossARestartDrainsEveryMessage) {
  LoadgenOptions o;
  o.edgehub_path = std::string(HUB_BINARY_DIR) + "/edgehub";
  o.publishers = 2;
  o.receivers = 1;
  o.messages = 5000;
  o.backlog = true;
  o.backlog_restart = true;
  o.hub_durability = "async";
  o.timeout_s = 60;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  const TargetReport& t = report->targets[0];
  EXPECT_TRUE(t.ok()) << t.error << formatReportText(o, report.value());
  EXPECT_EQ(t.delivered, 10000u);
  EXPECT_EQ(t.duplicates, 0u);
  ASSERT_TRUE(t.backlog.has_value());
  const BacklogReport& b = *t.backlog;
  EXPECT_EQ(b.queued, 10000u);
  EXPECT_GT(b.ingest_per_sec, 0);
  EXPECT_GT(b.ingest_first_per_sec, 0);
  EXPECT_GT(b.ingest_last_per_sec, 0);
  EXPECT_GT(b.drain_per_sec, 0);
  ASSERT_TRUE(b.stop_ms.has_value());
  ASSERT_TRUE(b.ready_ms.has_value());
  EXPECT_GT(*b.ready_ms, 0);
  ASSERT_TRUE(t.store_writes.has_value()) << "the hub's stop line was not read";
  EXPECT_GT(t.store_writes->appended, 10000u * o.size);  // each message once, with its envelope
  EXPECT_GT(t.store_writes->wal, 0u);
  EXPECT_GT(t.store_writes->amplification, 0.5);
  const std::string text = formatReportText(o, report.value());
  EXPECT_NE(text.find("drain:"), std::string::npos) << text;
  EXPECT_NE(formatReportJson(o, report.value()).find("\"drain_per_sec\""), std::string::npos);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "every hub was reaped";
}

TEST(LoadgenOptionsTest, RejectsBadCombinations) {
  LoadgenOptions o;
  o.size = 10;
  EXPECT_FALSE(validateOptions(o).isOk());
  o = LoadgenOptions();
  o.idle = 5;
  EXPECT_FALSE(validateOptions(o).isOk());  // needs a duration
  o.duration_s = 1;
  EXPECT_TRUE(validateOptions(o).isOk());
  o = LoadgenOptions();
  o.hub = core::SocketAddress{"127.0.0.1", 1};
  EXPECT_FALSE(validateOptions(o).isOk());  // needs --identities
  o.broker = core::SocketAddress{"127.0.0.1", 2};
  o.identities_path = "x";
  EXPECT_FALSE(validateOptions(o).isOk());  // two targets
  o = LoadgenOptions();
  o.backlog = true;
  EXPECT_TRUE(validateOptions(o).isOk());
  o.compare_mosquitto = true;
  EXPECT_FALSE(validateOptions(o).isOk());  // a broker keeps no backlog for offline receivers
  o.compare_mosquitto = false;
  o.qos = 0;
  EXPECT_FALSE(validateOptions(o).isOk());
  o = LoadgenOptions();
  o.backlog_restart = true;
  EXPECT_FALSE(validateOptions(o).isOk());  // needs --backlog
  o = LoadgenOptions();
  o.upstream = true;
  EXPECT_FALSE(validateOptions(o).isOk());  // an upstream drain is a backlog run
  o.backlog = true;
  o.compare_mosquitto = true;
  EXPECT_TRUE(validateOptions(o).isOk());  // the ceiling: mosquitto's own pub -> sub
  o.backlog_restart = true;
  EXPECT_TRUE(validateOptions(o).isOk());  // the hub restarts offline, then the upstream comes back
  o.hub = core::SocketAddress{"127.0.0.1", 1883};
  o.identities_path = "ids.json";
  o.compare_mosquitto = false;
  EXPECT_FALSE(validateOptions(o).isOk());  // only a hub it started
  o = LoadgenOptions();
  o.upstream_tls = true;
  EXPECT_FALSE(validateOptions(o).isOk());  // needs --upstream-drain
  o.upstream = o.backlog = true;
  EXPECT_TRUE(validateOptions(o).isOk());
}

// Upstream drain: every message is queued for an upstream that is down, then mosquitto starts
// on its port and the receiver there gets each message once, in order, through the hub's
// per-identity connections; mosquitto's own pub -> sub run comes first as the ceiling.
TEST(LoadgenHubTest, UpstreamDrainDeliversEveryMessageThroughTheUpstream) {
  LoadgenOptions o;
  o.edgehub_path = std::string(HUB_BINARY_DIR) + "/edgehub";
  o.publishers = 3;
  o.receivers = 1;
  o.messages = 2000;
  o.backlog = true;
  o.upstream = true;
  o.compare_mosquitto = true;
  o.hub_durability = "async";
  o.timeout_s = 60;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  ASSERT_EQ(report->targets.size(), 2u);
  const TargetReport& plain = report->targets[0];
  EXPECT_TRUE(plain.ok()) << plain.error;
  EXPECT_FALSE(plain.backlog.has_value());
  const TargetReport& t = report->targets[1];
  EXPECT_TRUE(t.ok()) << t.error << formatReportText(o, report.value());
  EXPECT_EQ(t.delivered, 6000u);
  EXPECT_EQ(t.duplicates, 0u);
  ASSERT_TRUE(t.backlog.has_value());
  EXPECT_GT(t.backlog->drain_per_sec, 0);
  // Every publisher's backlog was through at some point of the drain, the last at its end.
  EXPECT_GT(t.backlog->first_done_seconds, 0);
  EXPECT_LE(t.backlog->first_done_seconds, t.backlog->last_done_seconds);
  EXPECT_NEAR(t.backlog->last_done_seconds, t.backlog->drain_seconds, 1e-6);
  const std::string text = formatReportText(o, report.value());
  EXPECT_NE(text.find("upstream drain / mosquitto pub -> sub: "), std::string::npos) << text;
  EXPECT_NE(text.find("fairness: the first publisher's backlog was through after "), std::string::npos) << text;
  // The CPU budget of both runs: the drain's names the upstream broker between hub and receiver.
  ASSERT_TRUE(t.relay_cpu_seconds.has_value());
  EXPECT_GT(*t.relay_cpu_seconds, 0);  // mosquitto passed 6,000 messages on
  ASSERT_TRUE(t.clients_cpu_seconds.has_value());
  EXPECT_FALSE(plain.relay_cpu_seconds.has_value());
  EXPECT_TRUE(plain.clients_cpu_seconds.has_value());
  EXPECT_NE(text.find("CPU per message: hub "), std::string::npos) << text;
  EXPECT_NE(text.find(", upstream broker "), std::string::npos) << text;
  EXPECT_NE(text.find("CPU per message: mosquitto "), std::string::npos) << text;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "the hub and both brokers were reaped";
}

// A small upstream drain: 3 publishers, 1,000 messages each, one receiver.
LoadgenOptions smallUpstreamDrain() {
  LoadgenOptions o;
  o.edgehub_path = std::string(HUB_BINARY_DIR) + "/edgehub";
  o.publishers = 3;
  o.receivers = 1;
  o.messages = 1000;
  o.backlog = o.upstream = true;
  o.hub_durability = "async";
  o.timeout_s = 60;
  return o;
}

// The one target of a smallUpstreamDrain() run delivered all 3,000 messages once.
const TargetReport& expectEveryMessageOnce(const LoadgenOptions& o, const LoadgenReport& report) {
  static const TargetReport kNone = [] {
    TargetReport none;
    none.target = "none";
    none.error = "the run reported no target";
    return none;
  }();
  EXPECT_EQ(report.targets.size(), 1u);
  const TargetReport& t = report.targets.empty() ? kNone : report.targets.back();
  EXPECT_TRUE(t.ok()) << t.error << formatReportText(o, report);
  EXPECT_EQ(t.delivered, 3000u);
  EXPECT_EQ(t.duplicates, 0u);
  return t;
}

// A hub restarted while its upstream is down drains what it kept once the upstream is back.
TEST(LoadgenHubTest, UpstreamDrainAfterAHubRestartDeliversEveryMessage) {
  LoadgenOptions o = smallUpstreamDrain();
  o.backlog_restart = true;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  const TargetReport& t = expectEveryMessageOnce(o, report.value());
  ASSERT_TRUE(t.backlog.has_value());
  EXPECT_TRUE(t.backlog->stop_ms.has_value());
  EXPECT_TRUE(t.backlog->ready_ms.has_value());
  EXPECT_NE(formatReportText(o, report.value()).find("  restart: stop "), std::string::npos);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "the hub (both runs) and the broker were reaped";
}

// Over TLS, as the hub always reaches IoT Hub: the hub verifies mosquitto's certificate against
// the run's development CA; the receiver reads mosquitto's plain listener.
TEST(LoadgenHubTest, UpstreamDrainOverTlsDeliversEveryMessage) {
  LoadgenOptions o = smallUpstreamDrain();
  o.upstream_tls = true;
  std::ostringstream progress;
  auto report = runLoadgen(o, progress);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  expectEveryMessageOnce(o, report.value());
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "the hub and the broker were reaped";
}

TEST(LoadgenOptionsTest, ParsesHostPort) {
  auto a = parseHostPort("127.0.0.1:1883");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 1883);
  auto b = parseHostPort("[::1]:8883");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->host, "::1");
  EXPECT_FALSE(parseHostPort("nohost").isOk());
  EXPECT_FALSE(parseHostPort("1.2.3.4:99999").isOk());
}

}  // namespace
}  // namespace edgehub::bench
