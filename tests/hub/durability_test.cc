// Durability end to end: the real binary with the RocksDB store, killed with SIGKILL while a
// module publishes; after a restart on the same data directory every message the hub had
// acknowledged reaches its receiver, in order, and the restart reads only metadata.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>

#include "tests/hub/support/hub_process.h"
#include "tests/hub/support/mqtt_test_client.h"

namespace edgehub {
namespace {

using namespace std::chrono_literals;
using testing::HubProcess;
using testing::MqttTestClient;
using transports::mqtt::PacketType;

constexpr const char* kRoutes =
    R"json({"a_to_b": "FROM /messages/modules/a/outputs/* INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")"})json";

class DurabilityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "edgehub-dur-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ids_ = testing::testIdentities({"a", "b"});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<MqttTestClient> module(HubProcess& hub, const std::string& m, bool clean) {
    auto c = MqttTestClient::open(hub.mqttAddress());
    if (!c) return c;
    EXPECT_EQ(c->connect("dev1/" + m, testing::moduleUsername(ids_, m), testing::moduleSasToken(ids_, m), clean), 0);
    return c;
  }

  std::string dir_;
  core::IdentityConfig ids_;
};

TEST_P(DurabilityTest, EveryAcknowledgedMessageSurvivesRepeatedSigkills) {
  constexpr int kRounds = 3;
  constexpr int kPerRound = 2000;
  // "Random" kill points, reproducible: a fixed seed picks how many PUBACKs each round waits for.
  std::mt19937 rng(20261202);
  std::set<int> acked;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    HubProcess hub(dir_, ids_, kRoutes, {}, GetParam());
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    auto a = module(hub, "a", true);
    const int first = round * kPerRound;
    ASSERT_TRUE(a->publishPipelined("devices/dev1/modules/a/messages/events/%24.on=o/", first, kPerRound));
    const size_t wait_for = std::uniform_int_distribution<size_t>(kPerRound / 10, kPerRound - 1)(rng);
    size_t round_acks = 0;
    while (round_acks < wait_for) {
      auto p = a->next();
      ASSERT_TRUE(p.has_value()) << hub.stderrText();
      if (p->type != PacketType::kPuback) continue;
      acked.insert(first + p->packet_id - 1);
      ++round_acks;
    }
    hub.kill();  // mid-stream: more publishes and acknowledgements were in flight
  }
  HubProcess again(dir_, ids_, kRoutes, {}, GetParam());
  ASSERT_TRUE(again.started()) << again.stderrText();
  auto b = module(again, "b", false);
  ASSERT_EQ(b->subscribe("devices/dev1/modules/b/inputs/#"), 1);
  std::vector<int> got;
  std::set<int> received;
  size_t duplicates = 0;
  auto missing = [&] {
    for (int i : acked) {
      if (!received.count(i)) return true;
    }
    return false;
  };
  while (missing()) {
    auto p = b->next(std::chrono::seconds(20));
    if (!p) break;  // the deadline bounds a broken test; the checks below report what is missing
    if (p->type != PacketType::kPublish) continue;
    EXPECT_TRUE(b->puback(p->packet_id));
    got.push_back(std::stoi(p->payload));
    if (!received.insert(got.back()).second) ++duplicates;
  }
  for (int i : acked) EXPECT_TRUE(received.count(i)) << "acknowledged message " << i << " was lost";
  for (size_t i = 1; i < got.size(); ++i) EXPECT_LT(got[i - 1], got[i]) << "order kept across the restarts";
  EXPECT_EQ(duplicates, 0u) << "publishers never resent here, so nothing may arrive twice";
  RecordProperty("acknowledged", static_cast<int>(acked.size()));
  RecordProperty("received", static_cast<int>(got.size()));
  EXPECT_EQ(again.stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, DurabilityTest, ::testing::Values("sync", "async"));

TEST_F(DurabilityTest, OfflineConsumerGetsEveryMessageOnceInOrderAcrossAHubRestart) {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer slows the hub about tenfold; the ordering and exactly-once checks are the
  // same with fewer messages (the Release and ASan runs use the issue's 100,000).
  constexpr int kMessages = 10'000;
#else
  constexpr int kMessages = 100'000;
#endif
  {
    HubProcess hub(dir_, ids_, kRoutes, {}, "sync");
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    auto a = module(hub, "a", true);
    ASSERT_TRUE(a->publishPipelined("devices/dev1/modules/a/messages/events/%24.on=o/", 0, kMessages));
    ASSERT_EQ(a->awaitPubacks(kMessages), kMessages);
    EXPECT_EQ(hub.stop(), 0);
  }
  HubProcess again(dir_, ids_, kRoutes, {}, "sync");
  ASSERT_TRUE(again.started()) << again.stderrText();
  auto b = module(again, "b", false);
  ASSERT_EQ(b->subscribe("devices/dev1/modules/b/inputs/#"), 1);
  int next = 0;
  while (next < kMessages) {
    auto p = b->next();
    ASSERT_TRUE(p.has_value()) << "delivery stopped at " << next;
    if (p->type != PacketType::kPublish) continue;
    ASSERT_EQ(p->payload, std::to_string(next)) << "once each, in order";
    ASSERT_TRUE(b->puback(p->packet_id));
    ++next;
  }
  EXPECT_FALSE(b->next(std::chrono::milliseconds(300)).has_value()) << "nothing twice";
  EXPECT_EQ(again.stop(), 0);
}

TEST_F(DurabilityTest, CleanSessionZeroSubscriptionsSurviveAHubRestart) {
  {
    HubProcess hub(dir_, ids_, kRoutes, {}, "sync");
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    auto b = module(hub, "b", false);
    ASSERT_EQ(b->subscribe("devices/dev1/modules/b/inputs/#"), 1);
    b->disconnect();
    ASSERT_TRUE(b->waitClosed());
    EXPECT_EQ(hub.stop(), 0);
  }
  HubProcess again(dir_, ids_, kRoutes, {}, "sync");
  ASSERT_TRUE(again.started()) << again.stderrText();
  auto a = module(again, "a", true);
  ASSERT_TRUE(a->publish("devices/dev1/modules/a/messages/events/%24.on=o/", "after-restart"));
  auto b = MqttTestClient::open(again.mqttAddress());
  bool present = false;
  ASSERT_EQ(b->connect("dev1/b", testing::moduleUsername(ids_, "b"), testing::moduleSasToken(ids_, "b"), false, 60,
                       &present),
            0);
  EXPECT_TRUE(present) << "the stored session is restored";
  // No SUBSCRIBE: the restored subscription delivers.
  auto p = b->next();
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->type, PacketType::kPublish);
  EXPECT_EQ(p->payload, "after-restart");
  // A clean-session-1 connect deletes the stored session, also across restarts.
  b.reset();
  auto clean = module(again, "b", true);
  clean.reset();
  EXPECT_EQ(again.stop(), 0);
  HubProcess third(dir_, ids_, kRoutes, {}, "sync");
  ASSERT_TRUE(third.started());
  auto b3 = MqttTestClient::open(third.mqttAddress());
  ASSERT_EQ(b3->connect("dev1/b", testing::moduleUsername(ids_, "b"), testing::moduleSasToken(ids_, "b"), false, 60,
                        &present),
            0);
  EXPECT_FALSE(present);
}

TEST_F(DurabilityTest, BacklogDrainsPriorityZeroThenFiveThenDefaultFifoWithinEach) {
  const std::string routes = R"json({
    "p0": {"route": "FROM /messages/modules/a/outputs/o0 INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")", "priority": 0},
    "p5": {"route": "FROM /messages/modules/a/outputs/o5 INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")", "priority": 5},
    "pd": "FROM /messages/modules/a/outputs/od INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")"
  })json";
  {
    HubProcess hub(dir_, ids_, routes, {}, "async");
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    auto a = module(hub, "a", true);
    for (int i = 0; i < 30; ++i) {
      const char* output = i % 3 == 0 ? "od" : i % 3 == 1 ? "o5" : "o0";
      ASSERT_TRUE(a->publish(std::string("devices/dev1/modules/a/messages/events/%24.on=") + output + "/",
                             std::string(output) + ":" + std::to_string(i), 1, static_cast<uint16_t>(i + 1)));
    }
    EXPECT_EQ(hub.stop(), 0);
  }
  HubProcess again(dir_, ids_, routes, {"--delivery-window", "1"}, "async");
  ASSERT_TRUE(again.started()) << again.stderrText();
  auto b = module(again, "b", false);
  ASSERT_EQ(b->subscribe("devices/dev1/modules/b/inputs/#"), 1);
  std::vector<std::string> got;
  while (got.size() < 30) {
    auto p = b->next();
    ASSERT_TRUE(p.has_value()) << "delivery stopped at " << got.size();
    if (p->type != PacketType::kPublish) continue;
    got.push_back(p->payload);
    ASSERT_TRUE(b->puback(p->packet_id));
  }
  std::vector<std::string> expected;
  for (const char* output : {"o0", "o5", "od"}) {
    for (int i = 0; i < 30; ++i) {
      const char* o = i % 3 == 0 ? "od" : i % 3 == 1 ? "o5" : "o0";
      if (std::string(o) == output) expected.push_back(std::string(o) + ":" + std::to_string(i));
    }
  }
  EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace edgehub
