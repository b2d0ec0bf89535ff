// Direct methods through the hub (issue 06), in process: the operator identity ($edgeHub) calls a
// method of a connected module, the module's answer comes back; a module that is not connected
// is 404 at once, one that does not answer is 504 after the timeout; only $edgeHub may call; and
// `edgehub method invoke` prints the module's answer.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include "hub/cli/commands.h"
#include "hub/hub.h"
#include "tests/hub/support/in_process_hub.h"

namespace edgehub {
namespace {

using testing::MqttTestClient;
using testing::ReceivedPacket;
using transports::mqtt::PacketType;

class MethodHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "edgehub-method-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ids_ = testing::testIdentities({"a", "b", "$edgeHub"});
    auto o = testing::inProcessHubOptions(R"({"schemaVersion": "1.1", "routes": {},
        "storeAndForwardConfiguration": {"timeToLiveSecs": 60}})",
                                          ids_, dir_ + "/data", "memory");
    ASSERT_TRUE(o.isOk()) << o.status().toString();
    auto hub = Hub::create(std::move(o).value());
    ASSERT_TRUE(hub.isOk()) << hub.status().toString();
    hub_ = std::move(hub).value();
    ASSERT_TRUE(hub_->start().isOk());
  }
  void TearDown() override {
    if (hub_) hub_->stop();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<MqttTestClient> connect(const std::string& m, const std::string& filter) {
    auto c = testing::connectModule(hub_->mqttAddress(), ids_, m);
    EXPECT_NE(c, nullptr) << m;
    if (c) {
      EXPECT_EQ(c->subscribe(filter, 0), 0);
    }
    return c;
  }
  static std::optional<ReceivedPacket> nextPublish(MqttTestClient& c) {
    for (;;) {
      auto p = c.next(std::chrono::seconds(10));
      if (!p) return std::nullopt;
      if (p->type == PacketType::kPublish) return p;
    }
  }
  // The module answers the next call it receives; returns the call's topic and payload.
  static std::pair<std::string, std::string> answerNextCall(MqttTestClient& module, int status,
                                                            const std::string& body) {
    auto call = nextPublish(module);
    if (!call) return {"no call", ""};
    const std::string rid = call->topic.substr(call->topic.find("?$rid=") + 6);
    EXPECT_TRUE(module.publish("$iothub/methods/res/" + std::to_string(status) + "/?$rid=" + rid, body, 0));
    return {call->topic, call->payload};
  }

  std::string dir_;
  core::IdentityConfig ids_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(MethodHubTest, CallReachesTheModuleAndItsAnswerComesBack) {
  auto a = connect("a", "$iothub/methods/POST/#");
  auto op = connect("$edgeHub", "$edgehub/methods/res/#");
  ASSERT_TRUE(a && op);
  ASSERT_TRUE(op->publish("$edgehub/methods/invoke/a/reboot/?$rid=call-7", R"({"delay":1})", 0));
  auto [topic, payload] = answerNextCall(*a, 200, R"({"rebooting":true})");
  EXPECT_EQ(topic.rfind("$iothub/methods/POST/reboot/?$rid=", 0), 0u) << topic;
  EXPECT_EQ(payload, R"({"delay":1})");
  auto result = nextPublish(*op);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->topic, "$edgehub/methods/res/200/?$rid=call-7");
  EXPECT_EQ(result->payload, R"({"rebooting":true})");
}

TEST_F(MethodHubTest, NotConnectedIs404AtOnceAndSilenceIs504AfterTheTimeout) {
  auto op = connect("$edgeHub", "$edgehub/methods/res/#");
  ASSERT_NE(op, nullptr);
  ASSERT_TRUE(op->publish("$edgehub/methods/invoke/b/reboot/?$rid=1", "{}", 0));
  auto r1 = nextPublish(*op);
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->topic, "$edgehub/methods/res/404/?$rid=1");
  auto a = connect("a", "$iothub/methods/POST/#");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(op->publish("$edgehub/methods/invoke/a/slow/?$rid=2&$timeout=1", "{}", 0));
  auto call = nextPublish(*a);
  ASSERT_TRUE(call.has_value());  // received, never answered
  auto r2 = nextPublish(*op);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->topic, "$edgehub/methods/res/504/?$rid=2");
  // A late answer to the expired call goes nowhere and harms nothing.
  const std::string rid = call->topic.substr(call->topic.find("?$rid=") + 6);
  EXPECT_TRUE(a->publish("$iothub/methods/res/200/?$rid=" + rid, "{}", 0));
  ASSERT_TRUE(op->publish("$edgehub/methods/invoke/a/quick/?$rid=3", "{}", 0));
  answerNextCall(*a, 201, "{}");
  auto r3 = nextPublish(*op);
  ASSERT_TRUE(r3.has_value());
  EXPECT_EQ(r3->topic, "$edgehub/methods/res/201/?$rid=3");
}

TEST_F(MethodHubTest, OnlyTheHubsOwnIdentityMayCall) {
  auto a = connect("a", "$iothub/methods/POST/#");
  auto b = connect("b", "$iothub/methods/POST/#");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(b->subscribe("$edgehub/methods/res/#", 0, 2), 0x80);
  ASSERT_TRUE(b->publish("$edgehub/methods/invoke/a/reboot/?$rid=1", "{}", 0));
  EXPECT_TRUE(b->waitClosed());
  EXPECT_EQ(hub_->counter("publish_forbidden"), 1u);
  EXPECT_FALSE(a->next(std::chrono::milliseconds(200)).has_value()) << "a received no call";
}

TEST_F(MethodHubTest, TheCliPrintsTheModulesAnswer) {
  ASSERT_TRUE(core::writeIdentityFile(dir_ + "/ids.json", ids_).isOk());
  auto a = connect("a", "$iothub/methods/POST/#");
  ASSERT_NE(a, nullptr);
  std::ostringstream out, err;
  int rc = -1;
  std::thread cli([&] {
    rc = cli::runCli({"method", "invoke", "a", "reboot", "--payload", R"({"delay":5})", "--hub", hub_->mqttAddress(),
                      "--identities", dir_ + "/ids.json", "--timeout", "20"},
                     out, err);
  });
  auto [topic, payload] = answerNextCall(*a, 200, R"({"rebooting":true})");
  cli.join();
  EXPECT_EQ(payload, R"({"delay":5})");
  EXPECT_EQ(rc, 0) << err.str();
  EXPECT_EQ(out.str(), "{\"status\": 200, \"payload\": {\"rebooting\":true}}\n");
  std::ostringstream out2, err2;
  EXPECT_EQ(cli::runCli({"method", "invoke", "b", "reboot", "--hub", hub_->mqttAddress(), "--identities",
                         dir_ + "/ids.json"},
                        out2, err2),
            1);
  EXPECT_NE(out2.str().find("\"status\": 404"), std::string::npos) << out2.str() << err2.str();
  EXPECT_EQ(cli::runCli({"method", "invoke", "a", "reboot", "--payload", "{not json", "--identities",
                         dir_ + "/ids.json"},
                        out2, err2),
            2);
  EXPECT_EQ(cli::runCli({"method", "invoke", "a", "re/boot", "--identities", dir_ + "/ids.json"}, out2, err2), 2);
}

}  // namespace
}  // namespace edgehub
