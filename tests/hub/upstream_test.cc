// The hub's upstream, end to end (issue 05): modules publish to a real Hub over MQTT, a route
// sends their telemetry INTO $upstream, and the Debian mosquitto broker stands in for IoT Hub
// with one user per identity (its SAS token as password) and an ACL that lets each identity
// publish only to its own telemetry topic. An observer with a persistent session reads what
// arrives, so nothing that reaches the broker while the observer is away is missed.
//
// The hub runs on a clock whose wall time is pinned (monotonic time is real), so the SAS tokens
// it signs, and therefore the broker's passwords, are known in advance.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "hub/hub.h"
#include "tests/hub/support/in_process_hub.h"
#include "tests/transports/upstream/broker_fixture.h"
#include "transports/upstream/upstream_identity.h"

namespace edgehub {
namespace {

namespace up = transports::upstream;
using testing::MqttTestClient;
using testing::upstream::BrokerUser;
using testing::upstream::MosquittoBroker;
using transports::mqtt::PacketType;

constexpr const char* kObserver = "observer";
constexpr const char* kObserverPassword = "observer-secret";
constexpr const char* kCloud = "cloud";
constexpr const char* kCloudPassword = "cloud-secret";
constexpr uint32_t kWindow = 64;  // the upstream connections' QoS 1 window (ConnectionOptions)

class PinnedWallClock final : public core::TimeSource {
 public:
  PinnedWallClock()
      : wall_(std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now())) {}
  core::MonotonicTime monotonicTime() const override { return real_.monotonicTime(); }
  core::SystemTime systemTime() const override { return wall_; }
  int64_t unixSeconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(wall_.time_since_epoch()).count();
  }

 private:
  core::RealTimeSource real_;
  core::SystemTime wall_;
};

// Each module publishes payloads base(m) + i, so a payload names its sender whatever the topic.
int base(const std::string& m) { return (m[0] - 'a' + 1) * 1'000'000; }

// What the observer saw: per sender (from the topic), the payload numbers (minus the sender's
// base) in arrival order.
struct Seen {
  std::map<std::string, std::vector<int>> by_sender;
  std::vector<std::string> topics;
  size_t total = 0;
  bool misaddressed = false;  // a payload of one sender on another's topic
};

class UpstreamHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::upstream::haveMosquitto()) << "mosquitto is missing: ./test.sh installs it";
    std::string tmpl = ::testing::TempDir() + "edgehub-hub-upstream-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/broker");
    ids_ = testing::testIdentities({"a", "b", "c", "d"});
  }
  void TearDown() override {
    observer_.reset();
    if (hub_) hub_->stop();
    hub_.reset();
    broker_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The broker knows every identity but those in `wrong_password` with its real token. Those in
  // `twin_users` may also use the twin and method topics (`$iothub/#`), as IoT Hub lets every
  // identity; a "cloud" user plays IoT Hub's side of those exchanges.
  void makeBroker(const std::set<std::string>& wrong_password = {}, const std::set<std::string>& twin_users = {}) {
    std::vector<BrokerUser> users;
    for (const core::IdentityEntry& e : ids_.identities) {
      std::string password = up::makeUpstreamPassword(ids_.hub_host_name, up::UpstreamCredentials{e.identity, e.primary_key},
                                                      clock_.unixSeconds() + 3600);
      if (wrong_password.count(e.identity.moduleId()) != 0) password = "not-" + password;
      std::string topic;
      up::appendTelemetryTopic(topic, e.identity, std::string_view());
      std::vector<std::string> acl = {"topic write " + topic + "#"};
      if (twin_users.count(e.identity.moduleId()) != 0) acl.push_back("topic readwrite $iothub/#");
      users.push_back({up::upstreamUsername(ids_.hub_host_name, e.identity), password, acl});
    }
    users.push_back({kObserver, kObserverPassword, {"topic read #"}});
    users.push_back({kCloud, kCloudPassword, {"topic readwrite $iothub/#"}});
    broker_ = std::make_unique<MosquittoBroker>(dir_ + "/broker", users);
    ASSERT_EQ(broker_->setupError(), "");
    broker_->enablePersistence();
  }

  void startHub(bool with_upstream = true, const std::function<void(HubOptions&)>& tweak = {}) {
    auto options = testing::inProcessHubOptions(R"({"schemaVersion": "1.1",
        "routes": {"up": "FROM /messages/* INTO $upstream"},
        "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})",
                                                ids_, dir_ + "/data");
    ASSERT_TRUE(options.isOk()) << options.status().toString();
    HubOptions o = std::move(options).value();
    o.time_source = &clock_;
    if (with_upstream) o.upstream = "mqtt://127.0.0.1:" + std::to_string(broker_->port());
    if (tweak) tweak(o);
    auto hub = Hub::create(std::move(o));
    ASSERT_TRUE(hub.isOk()) << hub.status().toString();
    hub_ = std::move(hub).value();
    ASSERT_TRUE(hub_->start().isOk());
  }

  std::unique_ptr<MqttTestClient> module(const std::string& m) {
    auto c = testing::connectModule(hub_->mqttAddress(), ids_, m);
    EXPECT_NE(c, nullptr) << m;
    return c;
  }
  std::string telemetry(const std::string& m) {
    return "devices/" + ids_.device_id + "/modules/" + m + "/messages/events/site=north&%24.ct=application%2Fjson";
  }
  // Publishes payloads first..first+n-1 from module m and waits for every PUBACK.
  void publish(const std::string& m, int first, int n) {
    auto c = module(m);
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->publishPipelined(telemetry(m), base(m) + first, n));
    ASSERT_EQ(c->awaitPubacks(n), n);
    c->disconnect();
  }

  // Connects the observer with a persistent session. The first time it subscribes; later the
  // session has the subscription, and the broker sends what it queued right after the CONNACK.
  void connectObserver() {
    observer_ = MqttTestClient::open("127.0.0.1:" + std::to_string(broker_->port()));
    ASSERT_NE(observer_, nullptr);
    bool session_present = false;
    ASSERT_EQ(observer_->connect(kObserver, std::string(kObserver), std::string(kObserverPassword), false, 60,
                                 &session_present),
              0);
    if (!session_present) {
      ASSERT_EQ(observer_->subscribe("devices/#", 1), 1);
    }
  }
  // Reads until `done(seen)` or the deadline; false on timeout or a closed connection.
  bool observe(Seen& seen, const std::function<bool(const Seen&)>& done,
               std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done(seen)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      auto p = observer_->next(std::chrono::milliseconds(500));
      if (!p) {
        if (observer_->closed()) return false;
        continue;
      }
      if (p->type != PacketType::kPublish) continue;
      if (p->qos == 1) observer_->puback(p->packet_id);
      record(seen, *p);
    }
    return true;
  }
  void record(Seen& seen, const testing::ReceivedPacket& p) {
    const std::string prefix = "devices/" + ids_.device_id + "/modules/";
    std::string sender;
    if (p.topic.rfind(prefix, 0) == 0) sender = p.topic.substr(prefix.size(), p.topic.find('/', prefix.size()) - prefix.size());
    const int value = std::stoi(p.payload);
    if (sender.size() != 1 || value / 1'000'000 != base(sender) / 1'000'000) seen.misaddressed = true;
    seen.by_sender[sender].push_back(value % 1'000'000);
    if (seen.topics.size() < 4) seen.topics.push_back(p.topic);
    ++seen.total;
  }
  bool waitForCounter(const std::string& name, uint64_t want, std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (hub_->counter(name) < want) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  std::string upstreamEndpoint(const std::string& m) { return "$upstream/" + ids_.device_id + "/" + m; }

  std::string dir_;
  core::IdentityConfig ids_;
  PinnedWallClock clock_;
  std::unique_ptr<MosquittoBroker> broker_;
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<MqttTestClient> observer_;
};

// Every payload 0..n-1 at least once, first arrivals in order; returns the duplicates.
size_t checkComplete(const std::vector<int>& got, int n, const std::string& who) {
  std::set<int> distinct;
  int next_new = 0;
  for (int v : got) {
    if (distinct.insert(v).second) {
      EXPECT_EQ(v, next_new) << who << ": out of order";
      next_new = v + 1;
    }
  }
  EXPECT_EQ(static_cast<int>(distinct.size()), n) << who;
  return got.size() - distinct.size();
}

TEST_F(UpstreamHubTest, ThreeModulesArriveOnTheirOwnTopicsWithTheirProperties) {
  makeBroker();
  ASSERT_TRUE(broker_->start()) << broker_->lastError();
  connectObserver();
  startHub();
  constexpr int kEach = 300;
  for (const char* m : {"a", "b", "c"}) publish(m, 0, kEach);
  Seen seen;
  ASSERT_TRUE(observe(seen, [](const Seen& s) { return s.total >= 3 * kEach; })) << seen.total;
  EXPECT_FALSE(seen.misaddressed);
  for (const char* m : {"a", "b", "c"}) {
    ASSERT_EQ(seen.by_sender[m].size(), static_cast<size_t>(kEach)) << m;
    EXPECT_EQ(checkComplete(seen.by_sender[m], kEach, m), 0u) << m;
  }
  EXPECT_EQ(seen.by_sender.size(), 3u);  // nothing on any other topic
  // The topic carries the message's properties (application first, then system), never a
  // connection id: the connection is the sender.
  ASSERT_FALSE(seen.topics.empty());
  for (const std::string& t : seen.topics) {
    EXPECT_NE(t.find("/messages/events/site=north&"), std::string::npos) << t;
    EXPECT_NE(t.find("%24.ct=application%2Fjson"), std::string::npos) << t;
    EXPECT_EQ(t.find("cdid"), std::string::npos) << t;
  }
  ASSERT_TRUE(waitForCounter("upstream_acknowledged", 3 * kEach));
  EXPECT_EQ(hub_->counter("upstream_published"), static_cast<uint64_t>(3 * kEach));
  EXPECT_EQ(hub_->counter("upstream_resent"), 0u);
  EXPECT_TRUE(waitForCounter("upstream_connects", 3));
  for (const char* m : {"a", "b", "c"}) EXPECT_EQ(hub_->queuedMessages(upstreamEndpoint(m)), 0u) << m;
}

TEST_F(UpstreamHubTest, RefusedIdentityWaitsWhileTheOthersFlow) {
  makeBroker({"d"});
  ASSERT_TRUE(broker_->start()) << broker_->lastError();
  connectObserver();
  startHub();
  constexpr int kEach = 100;
  publish("d", 0, kEach);
  publish("a", 0, kEach);
  Seen seen;
  ASSERT_TRUE(observe(seen, [](const Seen& s) { return s.total >= kEach; }));
  ASSERT_TRUE(waitForCounter("upstream_refusals", 1));
  EXPECT_EQ(checkComplete(seen.by_sender["a"], kEach, "a"), 0u);
  EXPECT_EQ(seen.by_sender.count("d"), 0u);
  // d's messages were accepted and wait for d's credentials to be accepted (or their TTL).
  EXPECT_EQ(hub_->queuedMessages(upstreamEndpoint("d")), static_cast<uint64_t>(kEach));
  EXPECT_EQ(hub_->counter("upstream_published"), static_cast<uint64_t>(kEach));
}

TEST_F(UpstreamHubTest, BrokerStopAndStartUnderLoadDeliversEverything) {
  makeBroker();
  ASSERT_TRUE(broker_->start()) << broker_->lastError();
  connectObserver();
  startHub();
  constexpr int kEach = 3000;
  constexpr int kChunk = 100;
  std::atomic<int> published_chunks{0};
  std::atomic<bool> failed{false};
  std::thread load([&] {
    std::vector<std::unique_ptr<MqttTestClient>> pubs;
    for (const char* m : {"a", "b"}) pubs.push_back(module(m));
    for (int first = 0; first < kEach && !failed; first += kChunk) {
      for (size_t i = 0; i < pubs.size(); ++i) {
        const std::string m = i == 0 ? "a" : "b";
        if (!pubs[i] || !pubs[i]->publishPipelined(telemetry(m), base(m) + first, kChunk) ||
            pubs[i]->awaitPubacks(kChunk) != kChunk) {
          failed = true;
        }
      }
      ++published_chunks;
    }
  });
  Seen seen;
  const bool some = observe(seen, [](const Seen& s) { return s.total >= 1000; });
  broker_->stop();  // SIGTERM: the broker saves the observer's session and goes away
  // Both links lost (a and b): no PUBACK can come any more, so the count is final.
  const bool noticed = waitForCounter("upstream_disconnects", 2);
  const uint64_t acked_at_stop = hub_->counter("upstream_acknowledged");
  // The load keeps going into the store while the upstream is away.
  const int chunks_at_stop = published_chunks.load();
  while (published_chunks.load() < chunks_at_stop + 3 && published_chunks.load() < kEach / kChunk && !failed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // No ASSERT until the load thread is joined: returning with it joinable would abort the test
  // process and leave its broker running.
  const bool restarted = broker_->start(/*same_port=*/true);
  const auto back = std::chrono::steady_clock::now();
  const bool resumed =
      restarted && waitForCounter("upstream_acknowledged", acked_at_stop + 1, std::chrono::seconds(30));
  const auto resume_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back).count();
  if (!restarted) failed = true;  // the publishers stop at their next chunk
  load.join();
  ASSERT_TRUE(restarted) << broker_->lastError();
  ASSERT_TRUE(some);
  ASSERT_TRUE(noticed);
  ASSERT_FALSE(failed);
  ASSERT_TRUE(resumed);
  std::printf("upstream resumed %lld ms after the broker accepted again\n", static_cast<long long>(resume_ms));
  // The probe retries one connection every 500 ms while all are backed off, and its success
  // retries the rest: resuming takes well under the 30 s the backoff alone could reach.
  EXPECT_LT(resume_ms, 5000);
  connectObserver();
  ASSERT_TRUE(observe(seen, [](const Seen& s) {
    auto a = s.by_sender.find("a");
    auto b = s.by_sender.find("b");
    auto distinct = [](const std::vector<int>& v) { return std::set<int>(v.begin(), v.end()).size(); };
    return a != s.by_sender.end() && b != s.by_sender.end() && distinct(a->second) == kEach &&
           distinct(b->second) == kEach;
  }, std::chrono::seconds(60))) << seen.total;
  EXPECT_FALSE(seen.misaddressed);
  size_t dups = 0;
  for (const char* m : {"a", "b"}) dups += checkComplete(seen.by_sender[m], kEach, m);
  // What the hub sent twice is what it had in flight when the link dropped: at most one window
  // per identity. (The observer sees more duplicates than that: the broker re-sends what it had
  // in flight to the observer, and its saved state at SIGTERM can lag the observer's PUBACKs.)
  const uint64_t resent = hub_->counter("upstream_resent");
  std::printf("hub re-sent %llu, observer saw %zu duplicates\n", static_cast<unsigned long long>(resent), dups);
  EXPECT_LE(resent, 2u * kWindow);
  ASSERT_TRUE(waitForCounter("upstream_acknowledged", 2 * kEach));
}

TEST_F(UpstreamHubTest, HubRestartWhileOfflineThenEverythingQueuedArrives) {
  makeBroker();
  // Register the observer's persistent session, then take the broker down.
  ASSERT_TRUE(broker_->start()) << broker_->lastError();
  connectObserver();
  observer_.reset();
  broker_->stop();
  startHub();
  constexpr int kEach = 400;
  publish("a", 0, kEach);
  publish("b", 0, kEach);
  EXPECT_EQ(hub_->counter("upstream_published"), 0u);
  hub_->stop();
  hub_.reset();
  startHub();
  ASSERT_TRUE(broker_->start(/*same_port=*/true)) << broker_->lastError();
  connectObserver();
  Seen seen;
  ASSERT_TRUE(observe(seen, [](const Seen& s) { return s.total >= 2 * kEach; })) << seen.total;
  for (const char* m : {"a", "b"}) EXPECT_EQ(checkComplete(seen.by_sender[m], kEach, m), 0u) << m;
  ASSERT_TRUE(waitForCounter("upstream_acknowledged", 2 * kEach));
}

TEST_F(UpstreamHubTest, WithoutAnUpstreamMessagesStayQueuedPerIdentity) {
  makeBroker();
  startHub(/*with_upstream=*/false);
  publish("a", 0, 20);
  publish("b", 0, 30);
  EXPECT_EQ(hub_->queuedMessages(upstreamEndpoint("a")), 20u);
  EXPECT_EQ(hub_->queuedMessages(upstreamEndpoint("b")), 30u);
  EXPECT_EQ(hub_->queuedMessages("$upstream"), 0u);  // the plain endpoint is never used
  EXPECT_EQ(hub_->counter("dropped_no_route"), 0u);
  EXPECT_EQ(hub_->counter("upstream_published"), 0u);
}

// IoT Hub's 256 KiB limit (body plus properties): a larger copy for $upstream is dropped at
// routing and counted as such, not as "no route"; the publisher still gets its PUBACK and a
// message within the limit from the same module still goes up.
TEST_F(UpstreamHubTest, OversizedUpstreamCopiesAreDroppedAndCounted) {
  makeBroker();
  startHub(/*with_upstream=*/false, [](HubOptions& o) { o.max_message_bytes = 512 * 1024; });
  auto a = module("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->publish(telemetry("a"), std::string(300 * 1024, 'x')));  // PUBACK awaited
  ASSERT_TRUE(a->publish(telemetry("a"), "small"));
  EXPECT_EQ(hub_->counter("upstream_dropped"), 1u);
  EXPECT_EQ(hub_->counter("dropped_no_route"), 0u);
  EXPECT_EQ(hub_->queuedMessages(upstreamEndpoint("a")), 1u);
}

TEST_F(UpstreamHubTest, BadUpstreamOptionsAreRefusedWithTheReason) {
  makeBroker();
  auto manifest = core::parseManifest(R"({"schemaVersion": "1.1", "routes": {"up": "FROM /* INTO $upstream"},
      "storeAndForwardConfiguration": {"timeToLiveSecs": 60}})");
  ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
  const std::pair<std::string, std::string> cases[] = {
      {"ftp://127.0.0.1:1", ""}, {"mqtt://", ""}, {"mqtt://127.0.0.1:99999", ""}, {"mqtt://127.0.0.1:1883", "ca.pem"}};
  for (const auto& [url, ca] : cases) {
    HubOptions o;
    o.manifest = manifest.value();
    o.identities = ids_;
    o.data_dir = dir_ + "/bad";
    o.upstream = url;
    o.upstream_ca = ca;
    auto hub = Hub::create(std::move(o));
    ASSERT_FALSE(hub.isOk()) << url;
    EXPECT_NE(hub.status().message().find("upstream"), std::string::npos) << hub.status().toString();
  }
}

// ---- twins and methods through the upstream (issue 06 item 5 and 6) ----

// The next PUBLISH on `c` within the deadline (other packets skipped; QoS 1 acknowledged).
std::optional<testing::ReceivedPacket> nextPublishOn(MqttTestClient& c, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto p = c.next(std::chrono::milliseconds(200));
    if (!p) {
      if (c.closed()) return std::nullopt;
      continue;
    }
    if (p->type != PacketType::kPublish) continue;
    if (p->qos == 1) c.puback(p->packet_id);
    return p;
  }
  return std::nullopt;
}

// The next PUBLISH whose topic starts with `prefix` (others skipped), or nullopt.
std::optional<testing::ReceivedPacket> nextWithPrefix(MqttTestClient& c, const std::string& prefix,
                                                      std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto p = nextPublishOn(c, std::chrono::seconds(1));
    if (p && p->topic.rfind(prefix, 0) == 0) return p;
    if (!p && c.closed()) return std::nullopt;
  }
  return std::nullopt;
}

std::string queryOf(const std::string& topic, const std::string& name) {
  const size_t at = topic.find(name + "=");
  if (at == std::string::npos) return "";
  const size_t start = at + name.size() + 1;
  return topic.substr(start, topic.find('&', start) - start);
}

class UpstreamTwinTest : public UpstreamHubTest {
 protected:
  // IoT Hub's side: a client that sees the hub's twin requests and method answers.
  void connectCloud() {
    cloud_ = MqttTestClient::open("127.0.0.1:" + std::to_string(broker_->port()));
    ASSERT_NE(cloud_, nullptr);
    ASSERT_EQ(cloud_->connect(kCloud, std::string(kCloud), std::string(kCloudPassword)), 0);
    ASSERT_EQ(cloud_->subscribe("$iothub/twin/GET/#", 0, 1), 0);
    ASSERT_EQ(cloud_->subscribe("$iothub/twin/PATCH/properties/reported/#", 0, 2), 0);
    ASSERT_EQ(cloud_->subscribe("$iothub/methods/res/#", 0, 3), 0);
  }
  // Module a on the hub, subscribed to twin responses, desired patches and method requests.
  void connectModuleA() {
    a_ = module("a");
    ASSERT_NE(a_, nullptr);
    ASSERT_EQ(a_->subscribe("$iothub/twin/res/#", 0, 1), 0);
    ASSERT_EQ(a_->subscribe("$iothub/methods/POST/#", 0, 2), 0);
    // Last: a twin whose desired section is newer than the module has seen sends the catch-up
    // patch right after this SUBACK.
    ASSERT_EQ(a_->subscribe("$iothub/twin/PATCH/properties/desired/#", 0, 3), 0);
  }
  void patchReported(const std::string& rid, const std::string& body) {
    ASSERT_TRUE(a_->publish("$iothub/twin/PATCH/properties/reported/?$rid=" + rid, body, 0));
    auto p = nextWithPrefix(*a_, "$iothub/twin/res/", std::chrono::seconds(10));
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->topic.rfind("$iothub/twin/res/204/?$rid=" + rid + "&$version=", 0), 0u) << p->topic;
  }
  // Answers the hub's twin GET (which it sends on every connect) with a cloud twin.
  void answerGet(const std::string& desired_json) {
    auto get = nextWithPrefix(*cloud_, "$iothub/twin/GET/");
    ASSERT_TRUE(get.has_value()) << "no twin GET from the hub";
    const std::string rid = queryOf(get->topic, "$rid");
    ASSERT_FALSE(rid.empty()) << get->topic;
    ASSERT_TRUE(cloud_->publish("$iothub/twin/res/200/?$rid=" + rid,
                                R"({"desired":)" + desired_json + R"(,"reported":{"$version":1}})", 0));
  }

  std::unique_ptr<MqttTestClient> cloud_;
  std::unique_ptr<MqttTestClient> a_;
};

// Reported patches made while the upstream is down go up as ONE patch once it is back (the
// difference from what the cloud last acknowledged: a property added and deleted offline is
// never sent), a later patch sends only what changed since the acknowledgement, the cloud's
// twin (GET on connect) and its desired patches reach the module with the cloud's $version,
// and the module's GET shows them.
TEST_F(UpstreamTwinTest, OfflineReportedPatchesGoUpCollapsedAndCloudDesiredReachesTheModule) {
  makeBroker({}, {"a"});
  startHub();  // the broker is not running yet: upstream offline
  connectModuleA();
  patchReported("1", R"({"x": 1, "y": 1})");
  patchReported("2", R"({"y": 2})");
  patchReported("3", R"({"x": null, "z": {"w": 1}})");
  EXPECT_EQ(hub_->counter("upstream_twin_patches"), 0u);

  ASSERT_TRUE(broker_->start(/*same_port=*/true)) << broker_->lastError();
  connectCloud();
  // If the hub connected before the cloud client subscribed, its first GET and PATCH were lost
  // (QoS 0, as with IoT Hub); it asks again after UpstreamBridge::kTwinRequestTimeout, which the waits allow.
  auto patch = nextWithPrefix(*cloud_, "$iothub/twin/PATCH/properties/reported/");
  ASSERT_TRUE(patch.has_value()) << "no reported patch upstream";
  EXPECT_EQ(nlohmann::json::parse(patch->payload), nlohmann::json::parse(R"({"y": 2, "z": {"w": 1}})"))
      << patch->payload;
  const uint64_t patches_sent = hub_->counter("upstream_twin_patches");
  ASSERT_TRUE(cloud_->publish("$iothub/twin/res/204/?$rid=" + queryOf(patch->topic, "$rid") + "&$version=4", "", 0));

  // A newer change goes up alone: the baseline moved with the 204.
  patchReported("4", R"({"y": 3})");
  auto next = nextWithPrefix(*cloud_, "$iothub/twin/PATCH/properties/reported/");
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(nlohmann::json::parse(next->payload), nlohmann::json::parse(R"({"y": 3})")) << next->payload;
  EXPECT_EQ(hub_->counter("upstream_twin_patches"), patches_sent + 1);
  ASSERT_TRUE(cloud_->publish("$iothub/twin/res/204/?$rid=" + queryOf(next->topic, "$rid"), "", 0));

  // The cloud pushes a desired patch: the module gets it with the cloud's version.
  ASSERT_TRUE(cloud_->publish("$iothub/twin/PATCH/properties/desired/?$version=8",
                              R"({"mode": "turbo", "$version": 8})", 0));
  auto desired = nextWithPrefix(*a_, "$iothub/twin/PATCH/properties/desired/");
  ASSERT_TRUE(desired.has_value());
  EXPECT_EQ(desired->topic, "$iothub/twin/PATCH/properties/desired/?$version=8");
  EXPECT_EQ(nlohmann::json::parse(desired->payload), nlohmann::json::parse(R"({"mode": "turbo", "$version": 8})"));
  ASSERT_TRUE(a_->publish("$iothub/twin/GET/?$rid=g1", "", 0));
  auto twin = nextWithPrefix(*a_, "$iothub/twin/res/200/?$rid=g1");
  ASSERT_TRUE(twin.has_value());
  const auto doc = nlohmann::json::parse(twin->payload);
  EXPECT_EQ(doc["desired"]["mode"], "turbo");
  EXPECT_EQ(doc["desired"]["$version"], 8);
  EXPECT_EQ(doc["reported"]["y"], 3);
  EXPECT_FALSE(doc["reported"].contains("x"));
}

// After a reconnect the hub asks the cloud for the twin; desired properties changed meanwhile
// reach the module as a difference at the cloud's version, and survive a hub restart (the
// manifest's copy no longer overrides them). Reported properties the cloud acknowledged are not
// sent again after the restart.
TEST_F(UpstreamTwinTest, DesiredChangedWhileAwayArrivesOnReconnectAndTheCloudOwnsItAfterARestart) {
  makeBroker({}, {"a"});
  ASSERT_TRUE(broker_->start()) << broker_->lastError();
  connectCloud();
  // The deployment's copy of module a's desired properties (what the hub serves while offline).
  const auto with_manifest_desired = [](HubOptions& o) {
    o.manifest.modules.push_back(core::ModuleSpec{"a", R"({"mode":"manifest"})"});
  };
  startHub(true, with_manifest_desired);
  connectModuleA();
  auto first = nextWithPrefix(*a_, "$iothub/twin/PATCH/properties/desired/");  // the catch-up
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
  answerGet(R"({"mode": "eco", "level": 2, "$version": 7, "$metadata": {"$lastUpdated": "2026-12-01T00:00:00Z"}})");
  auto desired = nextWithPrefix(*a_, "$iothub/twin/PATCH/properties/desired/");
  ASSERT_TRUE(desired.has_value());
  EXPECT_EQ(desired->topic, "$iothub/twin/PATCH/properties/desired/?$version=7");
  EXPECT_EQ(nlohmann::json::parse(desired->payload),
            nlohmann::json::parse(R"({"mode": "eco", "level": 2, "$version": 7})"));
  patchReported("1", R"({"fw": "1.0"})");
  auto patch = nextWithPrefix(*cloud_, "$iothub/twin/PATCH/properties/reported/");
  ASSERT_TRUE(patch.has_value());
  ASSERT_TRUE(cloud_->publish("$iothub/twin/res/204/?$rid=" + queryOf(patch->topic, "$rid"), "", 0));
  // The 204 is processed before anything the cloud sends after it (one connection, in order):
  // a desired patch marks the point.
  ASSERT_TRUE(cloud_->publish("$iothub/twin/PATCH/properties/desired/?$version=8", R"({"level": 3})", 0));
  ASSERT_TRUE(nextWithPrefix(*a_, "$iothub/twin/PATCH/properties/desired/?$version=8").has_value());

  a_.reset();
  hub_->stop();
  hub_.reset();
  startHub(true, with_manifest_desired);
  connectModuleA();
  // A reconnecting module always catches up on the desired section: the cloud's, at its version.
  auto catch_up = nextWithPrefix(*a_, "$iothub/twin/PATCH/properties/desired/");
  ASSERT_TRUE(catch_up.has_value());
  EXPECT_EQ(catch_up->topic, "$iothub/twin/PATCH/properties/desired/?$version=8");
  EXPECT_EQ(nlohmann::json::parse(catch_up->payload),
            nlohmann::json::parse(R"({"mode": "eco", "level": 3, "$version": 8})"));
  // The GET after the restart finds the cloud where we left it: nothing for the module, and no
  // reported patch (the counter moves before the PATCH would be published, right after the GET).
  answerGet(R"({"mode": "eco", "level": 3, "$version": 8})");
  ASSERT_TRUE(a_->publish("$iothub/twin/GET/?$rid=g2", "", 0));
  auto twin = nextWithPrefix(*a_, "$iothub/twin/res/200/?$rid=g2");
  ASSERT_TRUE(twin.has_value());
  const auto doc = nlohmann::json::parse(twin->payload);
  EXPECT_EQ(doc["desired"]["$version"], 8);
  EXPECT_EQ(doc["desired"]["level"], 3);
  EXPECT_EQ(doc["reported"]["fw"], "1.0");
  EXPECT_EQ(hub_->counter("upstream_twin_patches"), 0u);
}

// A method call from the cloud reaches the connected module, and its answer goes back to the
// cloud with the cloud's request id; a call for a module that is not subscribed gets 404 at once.
TEST_F(UpstreamTwinTest, CloudMethodCallsReachTheModuleAndTheAnswerGoesBack) {
  makeBroker({}, {"a"});
  ASSERT_TRUE(broker_->start()) << broker_->lastError();
  connectCloud();
  startHub();
  connectModuleA();
  answerGet(R"({"$version": 1})");
  ASSERT_TRUE(cloud_->publish("$iothub/methods/POST/reboot/?$rid=c42", R"({"delay": 1})", 0));
  auto call = nextWithPrefix(*a_, "$iothub/methods/POST/");
  ASSERT_TRUE(call.has_value());
  EXPECT_EQ(call->topic.rfind("$iothub/methods/POST/reboot/?$rid=", 0), 0u) << call->topic;
  EXPECT_EQ(call->payload, R"({"delay": 1})");
  ASSERT_TRUE(a_->publish("$iothub/methods/res/200/?$rid=" + queryOf(call->topic, "$rid"), R"({"rebooting": true})", 0));
  auto answer = nextWithPrefix(*cloud_, "$iothub/methods/res/");
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->topic, "$iothub/methods/res/200/?$rid=c42");
  EXPECT_EQ(answer->payload, R"({"rebooting": true})");
  EXPECT_EQ(hub_->counter("upstream_method_calls"), 1u);

  // Unsubscribed from method requests (a new clean session without that subscription): 404.
  a_.reset();
  auto plain = module("a");
  ASSERT_NE(plain, nullptr);
  ASSERT_TRUE(cloud_->publish("$iothub/methods/POST/reboot/?$rid=c43", "{}", 0));
  auto refused = nextWithPrefix(*cloud_, "$iothub/methods/res/");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->topic, "$iothub/methods/res/404/?$rid=c43");
}

}  // namespace
}  // namespace edgehub
