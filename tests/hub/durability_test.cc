// Durability end to end: the real binary with the RocksDB store, killed with SIGKILL while a
// module publishes; after a restart on the same data directory every message the hub had
// acknowledged reaches its receiver, in order, and the restart reads only metadata.
#include <gtest/gtest.h>

#include <filesystem>
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

TEST_P(DurabilityTest, EveryAcknowledgedMessageSurvivesSigkill) {
  constexpr int kMessages = 2000;
  std::set<int> acked;
  {
    HubProcess hub(dir_, ids_, kRoutes, {}, GetParam());
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    auto a = module(hub, "a", true);
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(a->publish("devices/dev1/modules/a/messages/events/%24.on=o/", std::to_string(i), 1,
                             static_cast<uint16_t>(i + 1), false));
    }
    // Collect PUBACKs for a while, then pull the plug in the middle of the stream.
    while (acked.size() < kMessages / 2) {
      auto p = a->next();
      ASSERT_TRUE(p.has_value()) << hub.stderrText();
      if (p->type == PacketType::kPuback) acked.insert(p->packet_id - 1);
    }
    hub.kill();
  }
  HubProcess again(dir_, ids_, kRoutes, {}, GetParam());
  ASSERT_TRUE(again.started()) << again.stderrText();
  auto b = module(again, "b", false);
  ASSERT_EQ(b->subscribe("devices/dev1/modules/b/inputs/#"), 1);
  std::vector<int> got;
  std::set<int> received;
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
    received.insert(got.back());
  }
  for (int i : acked) EXPECT_TRUE(received.count(i)) << "acknowledged message " << i << " was lost";
  for (size_t i = 1; i < got.size(); ++i) EXPECT_LT(got[i - 1], got[i]) << "order kept across the restart";
  EXPECT_EQ(again.stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, DurabilityTest, ::testing::Values("sync", "async"));

}  // namespace
}  // namespace edgehub
