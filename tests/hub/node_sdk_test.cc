// The Azure IoT Node SDK (azure-iot-device + azure-iot-device-mqtt from npm, installed into the
// build tree by this test on first use) against the real `edgehub` binary over TLS with the
// hub's development CA: what real modules run.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/hub/support/hub_process.h"
#include "tests/hub/support/mqtt_test_client.h"

namespace edgehub {
namespace {

using namespace std::chrono_literals;
using testing::HubProcess;
using testing::Subprocess;

const std::string kNodeDir = std::string(HUB_BINARY_DIR) + "/tests/node";

// npm install of tests/hub/node/package.json into <build>/tests/node, once per build tree.
bool ensureSdkInstalled(std::string* log) {
  if (std::filesystem::exists(kNodeDir + "/node_modules/azure-iot-device-mqtt/package.json")) return true;
  std::filesystem::create_directories(kNodeDir);
  std::filesystem::copy_file(std::string(HUB_SOURCE_DIR) + "/tests/hub/node/package.json", kNodeDir + "/package.json",
                             std::filesystem::copy_options::overwrite_existing);
  Subprocess npm({"/usr/bin/npm", "install", "--prefix", kNodeDir, "--no-audit", "--no-fund", "--loglevel=error"});
  auto code = npm.wait(600s);
  *log = npm.stdoutText() + npm.stderrText();
  return code == std::optional<int>(0);
}

// Node and the SDK packages installed, and a fresh temp dir for one test; "" (with the test's
// failure recorded) if either is missing.
std::string nodeTestDir(const std::string& name) {
  if (::access("/usr/bin/node", X_OK) != 0 || ::access("/usr/bin/npm", X_OK) != 0) {
    ADD_FAILURE() << "node and npm are required (./test.sh installs them)";
    return "";
  }
  std::string npm_log;
  if (!ensureSdkInstalled(&npm_log)) {
    ADD_FAILURE() << "npm install failed:\n" << npm_log;
    return "";
  }
  std::string tmpl = ::testing::TempDir() + "edgehub-node-" + name + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return "";
  }
  return tmpl;
}

// A deployment with one module, no routes, and that module's desired properties.
std::string oneModuleManifest(const std::string& module, const std::string& desired_json) {
  return R"json({"modulesContent": {
        "$edgeAgent": {"properties.desired": {"modules": {")json" +
         module + R"json(": {}}}},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {},
                     "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}},
        ")json" +
         module + R"json(": {"properties.desired": )json" + desired_json + "}}}";
}

TEST(NodeSdkTest, ModuleClientOutputReachesAnotherModuleClientsInputOverTls) {
  const std::string dir = nodeTestDir("telemetry");
  ASSERT_FALSE(dir.empty());
  core::IdentityConfig ids = testing::testIdentities({"sender", "receiver"});
  {
    HubProcess hub(dir, ids,
                   R"json({"r": "FROM /messages/modules/sender/outputs/out1 WHERE alert = 'true' OR alert = 'false' INTO BrokeredEndpoint(\"/modules/receiver/inputs/telemetry\")"})json");
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    const std::string gateway = "localhost:" + std::to_string(hub.mqttsPort());
    Subprocess node({"/usr/bin/env", "NODE_PATH=" + kNodeDir + "/node_modules",
                     "SENDER_CS=" + core::edgeHubConnectionString(ids, "sender", gateway),
                     "RECEIVER_CS=" + core::edgeHubConnectionString(ids, "receiver", gateway),
                     "EdgeModuleCACertificateFile=" + hub.caPath(), "MESSAGE_COUNT=3", "/usr/bin/node",
                     std::string(HUB_SOURCE_DIR) + "/tests/hub/node/sdk_roundtrip.js"});
    auto done = node.waitForStdoutLine("DONE", 90s);
    auto code = node.wait(30s);
    ASSERT_TRUE(done.has_value()) << node.stdoutText() << node.stderrText() << "\nhub:\n" << hub.stderrText();
    EXPECT_EQ(code, std::optional<int>(0));
    const std::string& out = node.stdoutText();
    for (int i = 0; i < 3; ++i) {
      EXPECT_NE(out.find("\"body\":\"{\\\"n\\\":" + std::to_string(i)), std::string::npos) << out;
      EXPECT_NE(out.find("\"messageId\":\"msg-" + std::to_string(i) + "\""), std::string::npos) << out;
    }
    EXPECT_NE(out.find("\"input\":\"telemetry\""), std::string::npos) << out;
    EXPECT_NE(out.find("\"alert\":\"true\""), std::string::npos) << out;
    EXPECT_NE(out.find("\"contentType\":\"application/json\""), std::string::npos) << out;
    EXPECT_EQ(hub.stop(), 0);
  }
  std::filesystem::remove_all(dir);
}

// The module twin through the SDK: the manifest's desired properties, a reported update seen by a
// second read, and the desired-properties handler; then a direct method made with
// `edgehub method invoke`, answered by the SDK's onMethod handler.
TEST(NodeSdkTest, ModuleClientTwinAndDirectMethod) {
  const std::string dir = nodeTestDir("twin");
  ASSERT_FALSE(dir.empty());
  core::IdentityConfig ids = testing::testIdentities({"thermostat", "$edgeHub"});
  {
    HubProcess hub(dir, ids,
                   HubProcess::FullManifest{oneModuleManifest("thermostat", R"({"targetTemperature": 21.5, "unit": "C"})")},
                   {}, "async");
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    const std::string gateway = "localhost:" + std::to_string(hub.mqttsPort());
    Subprocess node({"/usr/bin/env", "NODE_PATH=" + kNodeDir + "/node_modules",
                     "MODULE_CS=" + core::edgeHubConnectionString(ids, "thermostat", gateway),
                     "EdgeModuleCACertificateFile=" + hub.caPath(), "/usr/bin/node",
                     std::string(HUB_SOURCE_DIR) + "/tests/hub/node/sdk_twin.js"});
    auto ready = node.waitForStdoutLine("READY", 90s);
    ASSERT_TRUE(ready.has_value()) << node.stdoutText() << node.stderrText() << "\nhub:\n" << hub.stderrText();
    // onMethod subscribes asynchronously: until the hub has the subscription the call is 404
    // (bounded retries, each a real call).
    std::string cli_out;
    for (int attempt = 0; attempt < 50; ++attempt) {
      Subprocess cli({std::string(HUB_BINARY_DIR) + "/edgehub", "method", "invoke", "thermostat", "reboot",
                      "--payload", R"({"delay":3})", "--hub", hub.mqttAddress(), "--identities",
                      dir + "/identities.json", "--timeout", "10"});
      auto rc = cli.wait(30s);
      cli_out = cli.stdoutText() + cli.stderrText();
      if (rc == std::optional<int>(0) || cli_out.find("\"status\": 404") == std::string::npos) break;
    }
    EXPECT_EQ(cli_out, "{\"status\": 200, \"payload\": {\"rebooting\":true,\"delay\":3}}\n");
    auto done = node.waitForStdoutLine("DONE", 30s);
    auto code = node.wait(30s);
    ASSERT_TRUE(done.has_value()) << node.stdoutText() << node.stderrText() << "\nhub:\n" << hub.stderrText();
    EXPECT_EQ(code, std::optional<int>(0));
    const std::string& out = node.stdoutText();
    EXPECT_NE(out.find(R"(METHOD {"delay":3})"), std::string::npos) << out;
    EXPECT_NE(out.find(R"(DESIRED {"targetTemperature":21.5,"unit":"C"})"), std::string::npos) << out;
    EXPECT_NE(out.find(R"("firmware":"2.0.1")"), std::string::npos) << out;
    EXPECT_NE(out.find(R"("battery":{"level":93})"), std::string::npos) << out;
    EXPECT_NE(out.find(R"(PATCH {)"), std::string::npos) << out;
    EXPECT_NE(out.find("targetTemperature"), out.rfind("targetTemperature")) << "the handler saw the desired properties";
    EXPECT_EQ(hub.stop(), 0);
  }
  std::filesystem::remove_all(dir);
}

// A generic MQTT client (mqtt.js) with the C SDK's topic forms on one connection against the real
// binary: what mosquitto's tools cannot do (tests/hub/twin_clients_test.cc says why). GET with the
// manifest's desired properties, a reported patch (204 with the new $version), a malformed patch
// (400), a second GET showing the patch, and a call made with `edgehub method invoke` answered on
// the same connection and printed by the CLI.
TEST(NodeSdkTest, GenericMqttClientWithTheCSdkTopicForms) {
  const std::string dir = nodeTestDir("mqtt");
  ASSERT_FALSE(dir.empty());
  core::IdentityConfig ids = testing::testIdentities({"a", "$edgeHub"});
  {
    HubProcess hub(dir, ids, HubProcess::FullManifest{oneModuleManifest("a", R"({"interval": 5})")}, {}, "sync");
    ASSERT_TRUE(hub.started()) << hub.stderrText();
    Subprocess node({"/usr/bin/env", "NODE_PATH=" + kNodeDir + "/node_modules", "HUB_URL=mqtt://" + hub.mqttAddress(),
                     "CLIENT_ID=" + ids.device_id + "/a", "USERNAME=" + testing::moduleUsername(ids, "a"),
                     "PASSWORD=" + testing::moduleSasToken(ids, "a"), "/usr/bin/node",
                     std::string(HUB_SOURCE_DIR) + "/tests/hub/node/mqtt_c_forms.js"});
    // READY comes after the SUBACK of the method subscription: the call below is delivered.
    auto ready = node.waitForStdoutLine("READY", 60s);
    ASSERT_TRUE(ready.has_value()) << node.stdoutText() << node.stderrText() << "\nhub:\n" << hub.stderrText();
    Subprocess cli({std::string(HUB_BINARY_DIR) + "/edgehub", "method", "invoke", "a", "reboot", "--payload",
                    R"({"delay":3})", "--hub", hub.mqttAddress(), "--identities", dir + "/identities.json",
                    "--timeout", "20"});
    EXPECT_EQ(cli.wait(30s), std::optional<int>(0)) << cli.stderrText();
    EXPECT_EQ(cli.stdoutText(), "{\"status\": 200, \"payload\": {\"rebooting\":true}}\n") << cli.stderrText();
    auto done = node.waitForStdoutLine("DONE", 30s);
    auto code = node.wait(30s);
    ASSERT_TRUE(done.has_value()) << node.stdoutText() << node.stderrText() << "\nhub:\n" << hub.stderrText();
    EXPECT_EQ(code, std::optional<int>(0));
    const std::string& out = node.stdoutText();
    EXPECT_NE(out.find(R"(GET $iothub/twin/res/200/?$rid=1 {"desired":{"interval":5,)"), std::string::npos) << out;
    // The reported section starts at $version 1 (nothing reported yet): the patch makes it 2.
    EXPECT_NE(out.find("PATCH $iothub/twin/res/204/?$rid=2&$version=2 \n"), std::string::npos) << out;
    EXPECT_NE(out.find(R"(BAD $iothub/twin/res/400/?$rid=3 {"message":)"), std::string::npos) << out;
    const size_t get2 = out.find("GET2 $iothub/twin/res/200/?$rid=4 ");
    ASSERT_NE(get2, std::string::npos) << out;
    const std::string second = out.substr(get2, out.find('\n', get2) - get2);
    EXPECT_NE(second.find(R"("fw":"2.0")"), std::string::npos) << second;
    EXPECT_NE(second.find(R"("battery":{"level":93})"), std::string::npos) << second;
    const size_t reported = second.find(R"("reported":)");
    ASSERT_NE(reported, std::string::npos) << second;
    EXPECT_NE(second.find(R"("$version":2)", reported), std::string::npos) << second;
    EXPECT_NE(out.find(R"(METHOD $iothub/methods/POST/reboot/?$rid=)"), std::string::npos) << out;
    EXPECT_NE(out.find(R"( {"delay":3})"), std::string::npos) << out;
    EXPECT_EQ(hub.stop(), 0);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgehub
