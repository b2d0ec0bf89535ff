// The MQTT server end to end, in process: a real Hub on 127.0.0.1:0 driven by raw MQTT clients
// (tests/hub/support/mqtt_test_client.h), checking the dialect, authentication, authorization,
// persistent sessions, redelivery, backpressure and the handling of malformed input.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "core/base64.h"
#include "hub/hub.h"
#include "transports/auth/sas_token.h"
#include "tests/hub/support/mqtt_test_client.h"
#include "transports/mqtt/encoder.h"

namespace edgehub {
namespace {

using testing::MqttTestClient;
using testing::ReceivedPacket;
using transports::mqtt::PacketType;

constexpr const char* kRoutes = R"json({
  "a_to_b": "FROM /messages/modules/a/outputs/* INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")",
  "c_to_b": {"route": "FROM /messages/modules/c/outputs/alerts INTO BrokeredEndpoint(\"/modules/b/inputs/alerts\")", "priority": 0},
  "leaf_to_b": "FROM /messages/* WHERE $connectionDeviceId = 'leaf1' INTO BrokeredEndpoint(\"/modules/b/inputs/fromleaf\")"
})json";

class MqttServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "edgehub-mqtt-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ids_ = testing::testIdentities({"a", "b", "c"});
    ids_.identities.push_back(core::IdentityEntry{core::Identity::device("leaf1"), core::base64Encode(std::string(32, 'L')), ""});
  }
  void TearDown() override {
    if (hub_) hub_->stop();
    std::filesystem::remove_all(dir_);
  }

  void startHub(const std::function<void(HubOptions&)>& tweak = nullptr) {
    auto manifest = core::parseManifest(std::string(R"({"schemaVersion": "1.1", "routes": )") + kRoutes +
                                        R"(, "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})");
    ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
    HubOptions o;
    o.manifest = std::move(manifest).value();
    o.identities = ids_;
    o.data_dir = dir_ + "/data";
    o.io_threads = 2;
    o.mqtt_listen = "127.0.0.1:0";
    o.mqtts_listen = "";
    if (tweak) tweak(o);
    auto hub = Hub::create(std::move(o));
    ASSERT_TRUE(hub.isOk()) << hub.status().toString();
    hub_ = std::move(hub).value();
    ASSERT_TRUE(hub_->start().isOk());
  }

  std::unique_ptr<MqttTestClient> open() {
    auto c = MqttTestClient::open(hub_->mqttAddress());
    EXPECT_NE(c, nullptr);
    return c;
  }

  // A connected module client (CONNACK 0 asserted).
  std::unique_ptr<MqttTestClient> module(const std::string& m, bool clean = true, bool* present = nullptr) {
    auto c = open();
    if (!c) return c;
    EXPECT_EQ(c->connect(ids_.device_id + "/" + m, testing::moduleUsername(ids_, m), testing::moduleSasToken(ids_, m),
                         clean, 60, present),
              0)
        << "module " << m;
    return c;
  }

  std::string telemetry(const std::string& m, const std::string& bag = "%24.on=out1") {
    return "devices/" + ids_.device_id + "/modules/" + m + "/messages/events/" + bag + "/";
  }
  std::string inputs(const std::string& m) { return "devices/" + ids_.device_id + "/modules/" + m + "/inputs/#"; }

  // Reads deliveries until `n` publishes arrived (acking each), or a deadline.
  std::vector<ReceivedPacket> receive(MqttTestClient& c, size_t n, bool ack = true) {
    std::vector<ReceivedPacket> got;
    while (got.size() < n) {
      auto p = c.next();
      if (!p) break;
      if (p->type != PacketType::kPublish) continue;
      if (ack && p->qos == 1) {
        EXPECT_TRUE(c.puback(p->packet_id));
      }
      got.push_back(std::move(*p));
    }
    return got;
  }

  // Proves the hub still routes for everyone after some client misbehaved.
  void expectHubServes() {
    auto b = module("b");
    ASSERT_EQ(b->subscribe(inputs("b")), 1);
    auto a = module("a");
    ASSERT_TRUE(a->publish(telemetry("a"), "still-alive"));
    // Messages queued for b earlier in the test come first.
    bool arrived = false;
    for (int i = 0; i < 100 && !arrived; ++i) {
      auto got = receive(*b, 1);
      ASSERT_EQ(got.size(), 1u) << "the hub stopped delivering";
      arrived = got[0].payload == "still-alive";
    }
    EXPECT_TRUE(arrived);
  }

  std::string dir_;
  core::IdentityConfig ids_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(MqttServerTest, ModuleOutputIsRoutedToAnotherModulesInputWithItsProperties) {
  startHub();
  auto b = module("b");
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  auto a = module("a");
  ASSERT_TRUE(a->publish(telemetry("a", "%24.on=out1&%24.mid=m-1&%24.ct=application%2Fjson&temp=21.5&x%20y=a%26b"),
                         R"({"t":21.5})"));
  auto got = receive(*b, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, R"({"t":21.5})");
  EXPECT_EQ(got[0].qos, 1);
  const std::string& t = got[0].topic;
  EXPECT_EQ(t.rfind("devices/dev1/modules/b/inputs/in1/", 0), 0u) << t;
  EXPECT_NE(t.find("temp=21.5"), std::string::npos) << t;
  EXPECT_NE(t.find("x%20y=a%26b"), std::string::npos) << t;
  EXPECT_NE(t.find("%24.mid=m-1"), std::string::npos) << t;
  EXPECT_NE(t.find("%24.ct=application%2Fjson"), std::string::npos) << t;
  EXPECT_NE(t.find("%24.cdid=dev1"), std::string::npos) << t;
  EXPECT_NE(t.find("%24.cmid=a"), std::string::npos) << t;
  EXPECT_EQ(t.find("%24.on"), std::string::npos) << "the output name does not travel to inputs: " << t;
  EXPECT_EQ(hub_->counter("messages_received"), 1u);
  EXPECT_EQ(hub_->counter("messages_delivered"), 1u);
}

TEST_F(MqttServerTest, CSdkStyleSubscriptionAndUnroutedMessagesCounted) {
  startHub();
  auto b = module("b");
  ASSERT_EQ(b->subscribe("devices/dev1/modules/b/#"), 1);
  auto a = module("a");
  // Device-level telemetry topic without a bag (no output name): no route matches.
  ASSERT_TRUE(a->publish("devices/dev1/modules/a/messages/events", "no-output"));
  ASSERT_TRUE(a->publish(telemetry("a"), "routed"));
  auto got = receive(*b, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "routed");
  EXPECT_EQ(hub_->counter("messages_received"), 2u);
}

TEST_F(MqttServerTest, RefusesBadCredentialsWithConnack5AndCountsThem) {
  startHub();
  const std::string user = testing::moduleUsername(ids_, "a");
  struct Case {
    const char* what;
    std::string client_id, username, password;
  } cases[] = {
      {"wrong key", "dev1/a", user, testing::moduleSasToken(ids_, "b")},
      {"expired token", "dev1/a", user, testing::moduleSasToken(ids_, "a", -3600)},
      {"unknown identity", "dev1/zzz", testing::moduleUsername(ids_, "zzz"), testing::moduleSasToken(ids_, "a")},
      {"client id mismatch", "dev1/b", user, testing::moduleSasToken(ids_, "a")},
      {"garbage token", "dev1/a", user, "SharedAccessSignature nonsense"},
      {"bad username", "dev1/a", "not-a-username", testing::moduleSasToken(ids_, "a")},
  };
  for (const Case& c : cases) {
    auto client = open();
    EXPECT_EQ(client->connect(c.client_id, c.username, c.password), 5) << c.what;
    EXPECT_TRUE(client->waitClosed()) << c.what;
  }
  auto no_password = open();
  EXPECT_EQ(no_password->connect("dev1/a", user, std::nullopt), 5);
  EXPECT_EQ(hub_->counter("connect_refused_auth"), std::size(cases) + 1);
  // The secondary key works too, and the refusals harmed nobody.
  auto secondary = open();
  EXPECT_EQ(secondary->connect("dev1/a", user, testing::moduleSasToken(ids_, "a", 3600, true)), 0);
  secondary.reset();
  expectHubServes();
}

TEST_F(MqttServerTest, PersistentSessionGetsEveryMessageQueuedWhileOfflineInOrder) {
  startHub();
  {
    auto b = module("b", /*clean=*/false);
    ASSERT_EQ(b->subscribe(inputs("b")), 1);
    b->disconnect();
    ASSERT_TRUE(b->waitClosed());
  }
  constexpr int kMessages = 10'000;
  auto a = module("a");
  // Pipelined: many publishes in flight, PUBACKs read afterwards.
  ASSERT_TRUE(a->publishPipelined(telemetry("a"), 0, kMessages));
  ASSERT_EQ(a->awaitPubacks(kMessages), kMessages);
  EXPECT_EQ(hub_->queuedMessages(R"ep(BrokeredEndpoint("/modules/b/inputs/in1"))ep"), static_cast<uint64_t>(kMessages));

  bool present = false;
  auto b = module("b", /*clean=*/false, &present);
  EXPECT_TRUE(present) << "clean session 0 restores the stored session";
  // No SUBSCRIBE: the stored subscription delivers at once.
  auto got = receive(*b, kMessages);
  ASSERT_EQ(got.size(), static_cast<size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(got[i].payload, std::to_string(i)) << "at " << i;
  EXPECT_FALSE(b->next(std::chrono::milliseconds(200)).has_value()) << "every message exactly once";
  EXPECT_EQ(hub_->counter("messages_acknowledged"), static_cast<uint64_t>(kMessages));
}

TEST_F(MqttServerTest, UnacknowledgedDeliveriesComeBackWithDupAfterReconnect) {
  startHub([](HubOptions& o) { o.delivery_window = 4; });
  auto b = module("b", false);
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  auto a = module("a");
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(a->publish(telemetry("a"), "m" + std::to_string(i)));
  // The window is 4: exactly four arrive while none is acknowledged.
  auto first = receive(*b, 4, /*ack=*/false);
  ASSERT_EQ(first.size(), 4u);
  EXPECT_FALSE(b->next(std::chrono::milliseconds(200)).has_value()) << "window of 4 respected";
  ASSERT_TRUE(b->puback(first[0].packet_id));  // m0 done
  auto fifth = receive(*b, 1, false);
  ASSERT_EQ(fifth.size(), 1u);
  EXPECT_EQ(fifth[0].payload, "m4");
  b.reset();  // connection lost with m1..m4 unacknowledged

  auto again = module("b", false);
  auto got = receive(*again, 5);
  ASSERT_EQ(got.size(), 5u);
  const char* expected[] = {"m1", "m2", "m3", "m4", "m5"};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].payload, expected[i]);
    EXPECT_EQ(got[i].dup, i < 4) << expected[i];
  }
  EXPECT_EQ(hub_->counter("messages_redelivered"), 4u);
}

TEST_F(MqttServerTest, PriorityZeroInputOvertakesDefaultPriorityBacklog) {
  startHub([](HubOptions& o) { o.delivery_window = 1; });
  auto a = module("a");
  auto c = module("c");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->publish(telemetry("a"), "normal" + std::to_string(i)));
  ASSERT_TRUE(c->publish(telemetry("c", "%24.on=alerts"), "alert"));
  auto b = module("b");
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  auto got = receive(*b, 4);
  ASSERT_EQ(got.size(), 4u);
  // Different endpoints (inputs) share the session round robin; within each, order holds.
  std::vector<std::string> normals;
  for (auto& p : got) {
    if (p.topic.find("/inputs/alerts/") != std::string::npos) {
      EXPECT_EQ(p.payload, "alert");
    } else {
      normals.push_back(p.payload);
    }
  }
  EXPECT_EQ(normals, (std::vector<std::string>{"normal0", "normal1", "normal2"}));
}

TEST_F(MqttServerTest, PublishingAsAnotherModuleClosesTheConnection) {
  startHub();
  auto a = module("a");
  a->publish(telemetry("b"), "spoofed", 1, 1, false);
  EXPECT_TRUE(a->waitClosed());
  EXPECT_EQ(hub_->counter("publish_forbidden"), 1u);
  auto a2 = module("a");
  a2->publish("devices/dev1/messages/events/", "as the device", 1, 1, false);
  EXPECT_TRUE(a2->waitClosed());
  EXPECT_EQ(hub_->counter("publish_forbidden"), 2u);
  expectHubServes();
}

TEST_F(MqttServerTest, SubscribingToAnotherModulesInputsGets0x80) {
  startHub();
  auto a = module("a");
  EXPECT_EQ(a->subscribe(inputs("b")), 0x80);
  EXPECT_EQ(a->subscribe("#"), 0x80);
  EXPECT_EQ(a->subscribe("$SYS/#"), 0x80);
  EXPECT_EQ(a->subscribe(inputs("a"), 2), 1) << "QoS 2 is granted as QoS 1";
  EXPECT_EQ(hub_->counter("subscribe_forbidden"), 3u);
  // The refused subscriber stays connected and b gets its own messages, not a.
  EXPECT_TRUE(a->publish(telemetry("a"), "x"));
  expectHubServes();
}

TEST_F(MqttServerTest, TwinAndMethodTopicsAreGrantedAndTwinRequestsAreAnswered) {
  startHub();
  auto a = module("a");
  EXPECT_EQ(a->subscribe("$iothub/twin/res/#", 0), 0);
  EXPECT_EQ(a->subscribe("$iothub/twin/PATCH/properties/desired/#", 0, 2), 0);
  EXPECT_EQ(a->subscribe("$iothub/methods/POST/#", 0, 3), 0);
  ASSERT_TRUE(a->publish("$iothub/twin/GET/?$rid=42", "", 0));
  auto p = a->next();
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->type, PacketType::kPublish);
  EXPECT_EQ(p->topic, "$iothub/twin/res/200/?$rid=42");  // tests/hub/twin_test.cc has the twin flows
  EXPECT_NE(p->payload.find(R"("reported")"), std::string::npos) << p->payload;
}

TEST_F(MqttServerTest, SecondConnectionOfTheSameIdentityTakesTheSessionOver) {
  startHub();
  auto b1 = module("b", false);
  ASSERT_EQ(b1->subscribe(inputs("b")), 1);
  auto b2 = module("b", false);
  EXPECT_TRUE(b1->waitClosed()) << "the old connection is closed";
  auto a = module("a");
  ASSERT_TRUE(a->publish(telemetry("a"), "to-the-new-one"));
  auto got = receive(*b2, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "to-the-new-one");
  EXPECT_EQ(hub_->counter("sessions_taken_over"), 1u);
}

TEST_F(MqttServerTest, MalformedInputClosesOnlyThatConnection) {
  startHub([](HubOptions& o) { o.max_message_bytes = 1024; });
  auto bystander = module("c");  // stays connected throughout
  auto bytes = [](std::initializer_list<int> v) {
    std::vector<uint8_t> out;
    for (int b : v) out.push_back(static_cast<uint8_t>(b));
    return out;
  };
  {
    SCOPED_TRACE("packet before CONNECT");
    auto c = open();
    c->sendBytes(bytes({0xC0, 0x00}));  // PINGREQ
    EXPECT_TRUE(c->waitClosed());
  }
  {
    SCOPED_TRACE("bad remaining length");
    auto c = module("a");
    c->sendBytes(bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
    EXPECT_TRUE(c->waitClosed());
  }
  {
    SCOPED_TRACE("truncated packet then EOF");
    auto c = module("a");
    c->sendBytes(bytes({0x32, 0x20, 0x00, 0x05, 'd', 'e'}));
    c->disconnect();
    EXPECT_TRUE(c->waitClosed());
  }
  {
    SCOPED_TRACE("invalid UTF-8 topic");
    auto c = module("a");
    c->sendBytes(bytes({0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 'x'}));
    EXPECT_TRUE(c->waitClosed());
  }
  {
    SCOPED_TRACE("oversized message");
    auto c = module("a");
    c->publish(telemetry("a"), std::string(2000, 'x'), 1, 1, false);
    EXPECT_TRUE(c->waitClosed());
    EXPECT_GE(hub_->counter("oversized_messages"), 1u);
  }
  {
    SCOPED_TRACE("QoS 2");
    auto c = module("a");
    c->publish(telemetry("a"), "q2", 2, 1, false);
    EXPECT_TRUE(c->waitClosed());
  }
  {
    SCOPED_TRACE("unknown topic");
    auto c = module("a");
    c->publish("some/plain/topic", "x", 1, 1, false);
    EXPECT_TRUE(c->waitClosed());
    EXPECT_EQ(hub_->counter("publish_invalid"), 1u);
  }
  {
    SCOPED_TRACE("malformed property bag");
    auto c = module("a");
    c->publish(telemetry("a", "a=b=c"), "x", 1, 1, false);
    EXPECT_TRUE(c->waitClosed());
  }
  EXPECT_FALSE(bystander->closed());
  EXPECT_TRUE(bystander->publish(telemetry("c", "%24.on=alerts"), "bystander-ok"));
  expectHubServes();
  EXPECT_GE(hub_->counter("protocol_errors"), 3u);
}

TEST_F(MqttServerTest, SlowlorisWithoutConnectIsClosedAtTheConnectDeadline) {
  startHub([](HubOptions& o) { o.connect_timeout_ms = 300; });
  auto c = open();
  // Half a CONNECT, then nothing.
  std::vector<uint8_t> partial = {0x10, 0x20, 0x00, 0x04, 'M', 'Q'};
  c->sendBytes(partial);
  EXPECT_TRUE(c->waitClosed(std::chrono::seconds(10)));
  EXPECT_EQ(hub_->counter("connect_refused_other"), 1u);
  expectHubServes();
}

TEST_F(MqttServerTest, SilentClientIsClosedAfterOneAndAHalfKeepAlives) {
  startHub();
  auto c = open();
  ASSERT_EQ(c->connect("dev1/a", testing::moduleUsername(ids_, "a"), testing::moduleSasToken(ids_, "a"), true,
                       /*keep_alive=*/1),
            0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c->waitClosed(std::chrono::seconds(10)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
  EXPECT_EQ(hub_->counter("keepalive_timeouts"), 1u);
}

TEST_F(MqttServerTest, PingKeepsTheConnectionAlive) {
  startHub();
  auto c = module("a");
  transports::mqtt::ByteBuffer ping;
  transports::mqtt::appendPingreq(ping);
  ASSERT_TRUE(c->sendBytes(ping));
  auto p = c->next();
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->type, PacketType::kPingresp);
}

TEST_F(MqttServerTest, FullEndpointQueuePausesThePublisherAndLosesNothing) {
  // Memory durability: the endpoint's memory budget is all there is, so the publisher waits.
  startHub([](HubOptions& o) {
    o.endpoint_max_messages = 100;
    o.durability = "memory";
  });
  constexpr int kMessages = 3000;
  auto a = module("a");
  // Each PUBLISH is written separately so the hub reads them over many turns.
  ASSERT_TRUE(a->publishPipelined(telemetry("a"), 0, kMessages));
  // The hub acknowledges until the queue is over budget, then stops reading from a.
  int acks = 0;
  while (auto p = a->next(std::chrono::milliseconds(500))) {
    if (p->type == PacketType::kPuback) ++acks;
  }
  EXPECT_LT(acks, kMessages) << "the publisher was paused";
  EXPECT_GE(hub_->counter("backpressure_pauses"), 1u);
  const uint64_t queued = hub_->queuedMessages(R"ep(BrokeredEndpoint("/modules/b/inputs/in1"))ep");
  EXPECT_GE(queued, 100u);
  EXPECT_LT(queued, static_cast<uint64_t>(kMessages)) << "memory stays bounded";

  // The consumer drains; the publisher resumes; every message arrives once, in order.
  auto b = module("b");
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  auto got = receive(*b, kMessages);
  ASSERT_EQ(got.size(), static_cast<size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(got[i].payload, std::to_string(i));
  EXPECT_EQ(a->awaitPubacks(kMessages - acks), kMessages - acks) << "every PUBACK comes once the consumer drained";
}

TEST_F(MqttServerTest, WithTheStoreAFullEndpointSpillsInsteadOfPausingAndLosesNothing) {
  startHub([](HubOptions& o) {
    o.endpoint_max_messages = 100;
    o.durability = "async";
  });
  constexpr int kMessages = 3000;
  auto a = module("a");
  ASSERT_TRUE(a->publishPipelined(telemetry("a"), 0, kMessages));
  ASSERT_EQ(a->awaitPubacks(kMessages), kMessages) << "no pause: the store takes what memory does not";
  EXPECT_GT(hub_->counter("spilled_to_store"), 0u);
  // The count includes copies still being handed to b's home loop (accounted at ingest, spilled
  // or kept when that loop receives them), and a PUBACK does not wait for that hand-off; under
  // ASan hundreds can be in flight. Without a consumer the count only falls as the hand-off
  // settles, so wait for that, then hold it to the bound: memory keeps about the budget.
  const std::string endpoint = R"ep(BrokeredEndpoint("/modules/b/inputs/in1"))ep";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (hub_->queuedMessages(endpoint) > 200u && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_LE(hub_->queuedMessages(endpoint), 200u) << "memory stays bounded";
  auto b = module("b");
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  auto got = receive(*b, kMessages);
  ASSERT_EQ(got.size(), static_cast<size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(got[i].payload, std::to_string(i));
}

TEST_F(MqttServerTest, FullStoreRejectsNewMessagesByClosingThePublisherAndKeepsWhatItAccepted) {
  startHub([](HubOptions& o) {
    o.durability = "async";
    o.max_store_bytes = 4000;
    o.store_full_policy = "reject";
  });
  const std::string body(1000, 'x');
  int accepted = 0;
  {
    auto a = module("a");
    // One at a time: each PUBACK means stored; the first refusal closes the connection instead.
    for (int i = 0; i < 20 && a->publish(telemetry("a"), body + std::to_string(i), 1, static_cast<uint16_t>(i + 1)); ++i) {
      ++accepted;
    }
    EXPECT_TRUE(a->waitClosed()) << "a full store closes the publisher (MQTT 3.1.1 has no negative PUBACK)";
  }
  EXPECT_GE(accepted, 1);
  EXPECT_LT(accepted, 20);
  EXPECT_GE(hub_->counter("store_rejected_store_full"), 1u);
  // Everything acknowledged is delivered; once it is released the store takes messages again.
  auto b = module("b");
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  auto got = receive(*b, static_cast<size_t>(accepted));
  ASSERT_EQ(got.size(), static_cast<size_t>(accepted));
  for (int i = 0; i < accepted; ++i) EXPECT_EQ(got[i].payload, body + std::to_string(i));
  auto again = module("a");
  bool stored = false;
  for (int attempt = 0; attempt < 200 && !stored; ++attempt) {
    // Releases are committed asynchronously: a refusal here closes the connection; retry.
    stored = again->publish(telemetry("a"), "after-drain", 1, 1);
    if (!stored) again = module("a");
  }
  EXPECT_TRUE(stored);
}

TEST_F(MqttServerTest, PlainMqttOnTheTlsPortIsAFailedHandshakeAndHarmsNobody) {
  startHub([](HubOptions& o) { o.mqtts_listen = "127.0.0.1:0"; });
  ASSERT_FALSE(hub_->mqttsAddress().empty());
  EXPECT_FALSE(hub_->tlsCaPath().empty()) << "a development CA was made";
  auto c = MqttTestClient::open(hub_->mqttsAddress());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->connect("dev1/a", testing::moduleUsername(ids_, "a"), testing::moduleSasToken(ids_, "a")), 0xff)
      << "no CONNACK in plaintext";
  EXPECT_TRUE(c->waitClosed());
  EXPECT_EQ(hub_->counter("tls_handshake_failures"), 1u);
  expectHubServes();
}

TEST_F(MqttServerTest, ConnectionLimitAnswersConnack3) {
  startHub([](HubOptions& o) { o.max_connections = 1; });
  auto a = module("a");
  auto b = open();
  EXPECT_EQ(b->connect("dev1/b", testing::moduleUsername(ids_, "b"), testing::moduleSasToken(ids_, "b")), 3);
}

TEST_F(MqttServerTest, WillIsPublishedOnAbnormalDisconnect) {
  startHub();
  auto b = module("b");
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  auto a = open();
  transports::mqtt::Connect c;
  c.protocol_name = "MQTT";
  c.client_id = "dev1/a";
  c.clean_session = true;
  c.keep_alive_seconds = 60;
  c.has_will = true;
  const std::string will_topic = telemetry("a", "%24.on=last");
  const std::string will_payload = "gone";
  c.will_topic = will_topic;
  c.will_payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(will_payload.data()), will_payload.size());
  const std::string user = testing::moduleUsername(ids_, "a");
  const std::string pass = testing::moduleSasToken(ids_, "a");
  c.username = user;
  c.password = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pass.data()), pass.size());
  ASSERT_TRUE(a->send(c));
  auto ack = a->next();
  ASSERT_TRUE(ack && ack->connack_code == 0);
  a.reset();  // no DISCONNECT
  auto got = receive(*b, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "gone");
}

TEST_F(MqttServerTest, LeafDeviceTelemetryIsRoutedAndTheDeviceCannotActAsAModule) {
  startHub();
  auto b = module("b");
  ASSERT_EQ(b->subscribe(inputs("b")), 1);
  const std::string token = transports::auth::makeSasToken(
      ids_.hub_host_name + "%2Fdevices%2Fleaf1", core::base64Encode(std::string(32, 'L')), ::time(nullptr) + 3600);
  auto leaf = open();
  ASSERT_EQ(leaf->connect("leaf1", ids_.hub_host_name + "/leaf1/?api-version=2021-04-12", token), 0);
  EXPECT_EQ(leaf->subscribe("devices/leaf1/messages/devicebound/#"), 1);
  EXPECT_EQ(leaf->subscribe(inputs("b")), 0x80);
  ASSERT_TRUE(leaf->publish("devices/leaf1/messages/events/kind=reading", "from-leaf"));
  auto got = receive(*b, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "from-leaf");
  EXPECT_EQ(got[0].topic.rfind("devices/dev1/modules/b/inputs/fromleaf/", 0), 0u) << got[0].topic;
  EXPECT_NE(got[0].topic.find("%24.cdid=leaf1"), std::string::npos) << got[0].topic;
  EXPECT_EQ(got[0].topic.find("%24.cmid"), std::string::npos) << "a device has no module id";
  // A device token does not open a module of the same name space.
  auto as_module = open();
  EXPECT_EQ(as_module->connect("leaf1/a", ids_.hub_host_name + "/leaf1/a/?api-version=2021-04-12", token), 5);
}

}  // namespace
}  // namespace edgehub
