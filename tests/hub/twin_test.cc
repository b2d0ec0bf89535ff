// Module twins through the hub (issue 06), in process: a real Hub with the RocksDB store on
// 127.0.0.1:0 and raw MQTT clients speaking the twin topics the SDKs use.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>

#include "hub/hub.h"
#include "store/tools/store_tools.h"
#include "tests/hub/support/in_process_hub.h"

namespace edgehub {
namespace {

using testing::MqttTestClient;
using testing::ReceivedPacket;
using transports::mqtt::PacketType;

// Module a's twin starts with the manifest's desired properties; its reported changes are routed
// to module b (all of them, and the firmware ones to a second input).
constexpr const char* kManifest = R"json({
  "modulesContent": {
    "$edgeAgent": {"properties.desired": {"modules": {"a": {}, "b": {}}}},
    "$edgeHub": {"properties.desired": {"schemaVersion": "1.1",
      "routes": {
        "all": "FROM /twinChangeNotifications INTO BrokeredEndpoint(\"/modules/b/inputs/twin\")",
        "fw": "FROM /twinChangeNotifications WHERE twin_change_includes(properties.reported.fw) INTO BrokeredEndpoint(\"/modules/b/inputs/fw\")"
      },
      "storeAndForwardConfiguration": {"timeToLiveSecs": 3600}}},
    "a": {"properties.desired": {"interval": 5, "mode": "fast"}}
  }})json";

class TwinHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "edgehub-twin-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ids_ = testing::testIdentities({"a", "b"});
  }
  void TearDown() override {
    if (hub_) hub_->stop();
    std::filesystem::remove_all(dir_);
  }
  void startHub(const std::string& manifest = kManifest) {
    auto o = testing::inProcessHubOptions(manifest, ids_, dir_ + "/data");
    ASSERT_TRUE(o.isOk()) << o.status().toString();
    auto hub = Hub::create(std::move(o).value());
    ASSERT_TRUE(hub.isOk()) << hub.status().toString();
    hub_ = std::move(hub).value();
    ASSERT_TRUE(hub_->start().isOk());
  }
  // A module connected and subscribed to twin responses.
  std::unique_ptr<MqttTestClient> module(const std::string& m) {
    auto c = testing::connectModule(hub_->mqttAddress(), ids_, m);
    EXPECT_NE(c, nullptr) << m;
    if (c) {
      EXPECT_EQ(c->subscribe("$iothub/twin/res/#", 0), 0);
    }
    return c;
  }
  // The next PUBLISH from the hub (other packets skipped).
  static std::optional<ReceivedPacket> nextPublish(MqttTestClient& c) {
    for (;;) {
      auto p = c.next(std::chrono::seconds(10));
      if (!p) return std::nullopt;
      if (p->type == PacketType::kPublish) {
        if (p->qos == 1) c.puback(p->packet_id);
        return p;
      }
    }
  }
  static std::string get(MqttTestClient& c, const std::string& rid) {
    EXPECT_TRUE(c.publish("$iothub/twin/GET/?$rid=" + rid, "", 0));
    auto p = nextPublish(c);
    if (!p) return "no response";
    EXPECT_EQ(p->topic, "$iothub/twin/res/200/?$rid=" + rid);
    return p->payload;
  }
  // Sends a reported patch; returns the response topic.
  static std::string patch(MqttTestClient& c, const std::string& rid, const std::string& body) {
    EXPECT_TRUE(c.publish("$iothub/twin/PATCH/properties/reported/?$rid=" + rid, body, 0));
    auto p = nextPublish(c);
    return p ? p->topic : "no response";
  }

  std::string dir_;
  core::IdentityConfig ids_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(TwinHubTest, GetReturnsTheManifestsDesiredPropertiesAndPatchesAreKeptAndRouted) {
  startHub();
  auto b = testing::connectModule(hub_->mqttAddress(), ids_, "b");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->subscribe("devices/" + ids_.device_id + "/modules/b/inputs/#", 1), 1);
  auto a = module("a");
  ASSERT_NE(a, nullptr);
  const std::string doc = get(*a, "1");
  EXPECT_NE(doc.find(R"("interval":5)"), std::string::npos) << doc;
  EXPECT_NE(doc.find(R"("mode":"fast")"), std::string::npos) << doc;
  EXPECT_NE(doc.find(R"("reported")"), std::string::npos) << doc;

  // The response echoes $rid verbatim (a UUID as Node sends, a number as the C SDK does) and
  // carries the new reported version.
  const std::string t1 = patch(*a, "8d3c6b6e-1f0a-4c1e-9a52-0f1e2d3c4b5a", R"({"fw":"1.2.3","temp":{"max":40}})");
  EXPECT_EQ(t1.rfind("$iothub/twin/res/204/?$rid=8d3c6b6e-1f0a-4c1e-9a52-0f1e2d3c4b5a&$version=", 0), 0u) << t1;
  const std::string t2 = patch(*a, "42", R"({"temp":{"min":-5},"fw":null})");
  EXPECT_EQ(t2.rfind("$iothub/twin/res/204/?$rid=42&$version=", 0), 0u) << t2;
  const std::string after = get(*a, "7");
  EXPECT_NE(after.find(R"("max":40)"), std::string::npos) << after;
  EXPECT_NE(after.find(R"("min":-5)"), std::string::npos) << after;
  EXPECT_EQ(after.find(R"("fw")"), std::string::npos) << after;  // null deleted it

  // Twin change notifications: both patches to b's "twin" input, only the first (it names fw) to "fw".
  std::vector<ReceivedPacket> got;
  while (got.size() < 3) {
    auto p = nextPublish(*b);
    ASSERT_TRUE(p.has_value()) << got.size();
    got.push_back(*p);
  }
  int twin_input = 0, fw_input = 0;
  for (const ReceivedPacket& p : got) {
    if (p.topic.find("/inputs/twin/") != std::string::npos) ++twin_input;
    if (p.topic.find("/inputs/fw/") != std::string::npos) {
      ++fw_input;
      EXPECT_NE(p.payload.find(R"("properties":{"reported":{"fw":"1.2.3")"), std::string::npos) << p.payload;
    }
    EXPECT_NE(p.topic.find("%24.ct=application%2Fjson"), std::string::npos) << p.topic;
  }
  EXPECT_EQ(twin_input, 2);
  EXPECT_EQ(fw_input, 1);
}

TEST_F(TwinHubTest, BadPatchesGet400AndChangeNothing) {
  startHub();
  auto a = module("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(patch(*a, "1", R"({"ok":true})").rfind("$iothub/twin/res/204/", 0), 0u);
  const std::string before = get(*a, "2");
  std::string deep = "1";
  for (int i = 0; i < 12; ++i) deep = "{\"d\":" + deep + "}";
  const std::string big = "{\"big\":\"" + std::string(40 * 1024, 'x') + "\"}";
  for (const std::string& bad : {std::string("{not json"), std::string("[1,2]"), std::string("\"text\""), deep, big}) {
    EXPECT_EQ(patch(*a, "bad", bad), "$iothub/twin/res/400/?$rid=bad") << bad.substr(0, 40);
  }
  EXPECT_EQ(get(*a, "3"), before);
}

TEST_F(TwinHubTest, EachModuleSeesOnlyItsOwnTwin) {
  startHub();
  auto a = module("a");
  auto b = module("b");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(patch(*a, "1", R"({"secret":"of-a"})").rfind("$iothub/twin/res/204/", 0), 0u);
  const std::string b_doc = get(*b, "1");
  EXPECT_EQ(b_doc.find("of-a"), std::string::npos) << b_doc;
  EXPECT_EQ(b_doc.find("interval"), std::string::npos) << b_doc;  // a's desired properties
}

TEST_F(TwinHubTest, SubscribingToDesiredPatchesCatchesUpOnWhatChanged) {
  startHub();
  auto a = testing::connectModule(hub_->mqttAddress(), ids_, "a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->subscribe("$iothub/twin/PATCH/properties/desired/#", 0), 0);
  auto p = nextPublish(*a);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->topic.rfind("$iothub/twin/PATCH/properties/desired/?$version=", 0), 0u) << p->topic;
  EXPECT_NE(p->payload.find(R"("interval":5)"), std::string::npos) << p->payload;
}

TEST_F(TwinHubTest, TwinsSurviveARestartAndTwinShowPrintsThem) {
  startHub();
  {
    auto a = module("a");
    ASSERT_NE(a, nullptr);
    ASSERT_EQ(patch(*a, "1", R"({"battery":87})").rfind("$iothub/twin/res/204/", 0), 0u);
  }
  hub_->stop();
  std::ostringstream out, err;
  ASSERT_EQ(store::runTwinShow(dir_ + "/data", ids_.device_id + "/a", out, err), 0) << err.str();
  EXPECT_NE(out.str().find(R"("battery":87)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find(R"("interval":5)"), std::string::npos) << out.str();
  EXPECT_EQ(store::runTwinShow(dir_ + "/data", ids_.device_id + "/nobody", out, err), 1);
  hub_.reset();
  startHub();
  auto a = module("a");
  ASSERT_NE(a, nullptr);
  const std::string doc = get(*a, "2");
  EXPECT_NE(doc.find(R"("battery":87)"), std::string::npos) << doc;
}

// A module with a persistent session (clean session 0) that resumes it does not subscribe again;
// desired properties that changed while it was away (here: a new manifest at the restart) still
// reach it, right after its CONNACK.
TEST_F(TwinHubTest, ResumedSessionGetsTheDesiredPropertiesThatChangedWhileAway) {
  startHub();
  {
    auto a = MqttTestClient::open(hub_->mqttAddress());
    ASSERT_NE(a, nullptr);
    ASSERT_EQ(a->connect(ids_.device_id + "/a", testing::moduleUsername(ids_, "a"), testing::moduleSasToken(ids_, "a"),
                         /*clean_session=*/false),
              0);
    ASSERT_EQ(a->subscribe("$iothub/twin/PATCH/properties/desired/#", 0), 0);
    auto first = nextPublish(*a);  // the catch-up of the manifest's desired properties
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
  }
  hub_->stop();
  hub_.reset();
  std::string changed = kManifest;
  const std::string from = R"("interval": 5)";
  changed.replace(changed.find(from), from.size(), R"("interval": 60)");
  startHub(changed);
  auto a = MqttTestClient::open(hub_->mqttAddress());
  ASSERT_NE(a, nullptr);
  bool session_present = false;
  ASSERT_EQ(a->connect(ids_.device_id + "/a", testing::moduleUsername(ids_, "a"), testing::moduleSasToken(ids_, "a"),
                       /*clean_session=*/false, 60, &session_present),
            0);
  ASSERT_TRUE(session_present);
  auto p = nextPublish(*a);  // no SUBSCRIBE this time
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->topic, "$iothub/twin/PATCH/properties/desired/?$version=3");
  EXPECT_NE(p->payload.find(R"("interval":60)"), std::string::npos) << p->payload;
}

}  // namespace
}  // namespace edgehub
