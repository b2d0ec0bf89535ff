// Module twins and direct methods (issue 06) against the real `edgehub` binary, with the C SDK's
// topic forms ($rid a decimal number, an empty GET payload) and real MQTT clients where they can
// take part: Debian's mosquitto_sub (desired-properties catch-up, a direct method call made with
// `edgehub method invoke`) and mosquitto_pub (SAS-token passwords, plain and TLS). Then twins
// surviving a SIGKILL and a SIGTERM of the hub, and `edgehub twin show` on the stopped hub's store.
//
// The twin request/response flows (GET, reported patch) use the project's raw MQTT client on one
// connection (and a generic third-party client, mqtt.js, in node_sdk_test.cc
// GenericMqttClientWithTheCSdkTopicForms): mosquitto's tools cannot make them. A twin response goes only to the requesting
// connection and only if it subscribed to exactly `$iothub/twin/res/#` (dialect 3.4); a second
// connection with the same identity takes the session over (dialect 1), so a mosquitto_sub /
// mosquitto_pub pair never sees an answer; and mosquitto_rr, the one tool that subscribes and
// publishes on one connection, refuses a wildcard response topic. A method answer likewise counts
// only from the connection the call went to (as in edgeHub).
//
// No sleeps: every wait is for output (a response, a SUBACK printed by mosquitto_sub -d, with
// stdout line-buffered by stdbuf) or for a process to exit, with a deadline that only bounds a
// broken test.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/hub/support/hub_process.h"
#include "tests/hub/support/in_process_hub.h"
#include "tests/hub/support/mqtt_test_client.h"

namespace edgehub {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::HubProcess;
using testing::Subprocess;

constexpr const char* kPub = "/usr/bin/mosquitto_pub";
constexpr const char* kSub = "/usr/bin/mosquitto_sub";

// Module a has desired properties in the deployment; b has none.
constexpr const char* kManifest = R"json({"modulesContent": {
    "$edgeAgent": {"properties.desired": {"modules": {"a": {}, "b": {}}}},
    "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {},
                 "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}},
    "a": {"properties.desired": {"interval": 5, "mode": "fast"}}}})json";

// One line printed by mosquitto_sub -v: "topic payload".
struct Received {
  std::string topic;
  std::string payload;
};
std::optional<Received> parseVerboseLine(const std::optional<std::string>& line) {
  if (!line) return std::nullopt;
  const size_t space = line->find(' ');
  Received r;
  r.topic = line->substr(0, space);
  if (space != std::string::npos) r.payload = line->substr(space + 1);
  return r;
}

// The value after `key=` in a topic's query ("" if absent).
std::string queryValue(const std::string& topic, const std::string& key) {
  const size_t q = topic.find('?');
  if (q == std::string::npos) return "";
  const std::string needle = key + "=";
  size_t at = topic.find(needle, q);
  if (at == std::string::npos) return "";
  at += needle.size();
  return topic.substr(at, topic.find('&', at) - at);
}

class TwinClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {kPub, kSub}) {
      if (::access(tool, X_OK) != 0) FAIL() << tool << " is missing: ./test.sh installs mosquitto-clients";
    }
    std::string tmpl = ::testing::TempDir() + "edgehub-twincli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ids_ = testing::testIdentities({"a", "b", "$edgeHub"});
  }
  void TearDown() override {
    if (hub_) {
      const int rc = hub_->stop();  // -1: already stopped or killed by the test
      if (rc != -1) {
        EXPECT_EQ(rc, 0) << hub_->stderrText();
      }
      hub_.reset();
    }
    std::filesystem::remove_all(dir_);
  }
  // Starts (or restarts, on the same data directory) the hub with `sync` durability: a 204 means
  // the twin is on disk.
  void startHub() {
    hub_ = std::make_unique<HubProcess>(dir_, ids_, HubProcess::FullManifest{kManifest}, std::vector<std::string>{},
                                        "sync");
    ASSERT_TRUE(hub_->started()) << hub_->stderrText();
  }

  // argv of a mosquitto tool connecting as module `m` (with `client_module`'s client id and username
  // when given), its stdout line-buffered so that the test sees each line as it is printed.
  std::vector<std::string> client(const std::string& tool, const std::string& m, bool tls = false,
                                  const std::string& client_module = "") {
    std::vector<std::string> argv = {"/usr/bin/stdbuf", "-oL", tool};
    if (tls) {
      argv.insert(argv.end(), {"-h", "localhost", "-p", std::to_string(hub_->mqttsPort()), "--cafile", hub_->caPath()});
    } else {
      const std::string& a = hub_->mqttAddress();
      argv.insert(argv.end(), {"-h", "127.0.0.1", "-p", a.substr(a.rfind(':') + 1)});
    }
    const std::string as = client_module.empty() ? m : client_module;
    argv.insert(argv.end(), {"-V", "mqttv311", "-i", ids_.device_id + "/" + as, "-u", testing::moduleUsername(ids_, as),
                             "-P", testing::moduleSasToken(ids_, m)});
    return argv;
  }

  // One twin request on one connection, as an SDK makes it: subscribe to `$iothub/twin/res/#`,
  // publish the request (QoS 0; an empty payload, as the C SDK sends its GET), read the answer.
  // (The project's raw MQTT client: mosquitto's tools cannot do this, see the file comment.)
  std::optional<Received> request(const std::string& m, const std::string& topic, const std::string& payload) {
    auto c = testing::connectModule(hub_->mqttAddress(), ids_, m);
    EXPECT_NE(c, nullptr) << hub_->stderrText();
    if (!c) return std::nullopt;
    EXPECT_EQ(c->subscribe("$iothub/twin/res/#", 0), 0);
    EXPECT_TRUE(c->publish(topic, payload, 0));
    for (;;) {
      auto p = c->next(std::chrono::seconds(20));
      if (!p) {
        ADD_FAILURE() << "no twin response to " << topic << "\nhub:\n" << hub_->stderrText();
        return std::nullopt;
      }
      if (p->type == transports::mqtt::PacketType::kPublish) {
        c->disconnect();
        return Received{p->topic, p->payload};
      }
    }
  }
  // GET with a decimal $rid; the parsed twin document (null on failure).
  json get(const std::string& m, int rid) {
    const std::string r = std::to_string(rid);
    auto got = request(m, "$iothub/twin/GET/?$rid=" + r, "");
    if (!got) return json();
    EXPECT_EQ(got->topic, "$iothub/twin/res/200/?$rid=" + r);
    json doc = json::parse(got->payload, nullptr, false);
    EXPECT_TRUE(doc.is_object()) << got->payload;
    return doc.is_object() ? doc : json();
  }
  // A reported patch with a decimal $rid; the response topic.
  std::string patch(const std::string& m, int rid, const std::string& body) {
    auto got = request(m, "$iothub/twin/PATCH/properties/reported/?$rid=" + std::to_string(rid), body);
    return got ? got->topic : "no response";
  }
  // `edgehub twin show MODULE` on the (stopped) hub's data directory.
  json twinShow(const std::string& m) {
    Subprocess show({testing::edgehubBinary(), "twin", "show", m, "--data", hub_->dataDir(), "--identities",
                     dir_ + "/identities.json"});
    auto code = show.wait(30s);
    EXPECT_EQ(code, std::optional<int>(0)) << show.stdoutText() << show.stderrText();
    json doc = json::parse(show.stdoutText(), nullptr, false);
    EXPECT_TRUE(doc.is_object()) << show.stdoutText();
    return doc.is_object() ? doc : json();
  }

  std::string dir_;
  core::IdentityConfig ids_;
  std::unique_ptr<HubProcess> hub_;
};

// GET (the manifest's desired properties), a reported patch answered 204 with the new version,
// and a second GET showing it; null deletes.
TEST_F(TwinClientsTest, GetPatchAndGetAgainWithDecimalRids) {
  startHub();
  json before = get("a", 1);
  ASSERT_TRUE(before.is_object());
  EXPECT_EQ(before["desired"]["interval"], 5) << before.dump();
  EXPECT_EQ(before["desired"]["mode"], "fast") << before.dump();
  ASSERT_TRUE(before["desired"]["$version"].is_number_integer()) << before.dump();
  ASSERT_TRUE(before["reported"]["$version"].is_number_integer()) << before.dump();
  const int64_t reported_version = before["reported"]["$version"].get<int64_t>();

  const std::string answer = patch("a", 2, R"({"fw":"1.2.3","temp":{"max":40}})");
  EXPECT_EQ(answer, "$iothub/twin/res/204/?$rid=2&$version=" + std::to_string(reported_version + 1));

  json after = get("a", 3);
  ASSERT_TRUE(after.is_object());
  EXPECT_EQ(after["reported"]["fw"], "1.2.3") << after.dump();
  EXPECT_EQ(after["reported"]["temp"]["max"], 40) << after.dump();
  EXPECT_EQ(after["reported"]["$version"], reported_version + 1) << after.dump();
  EXPECT_EQ(after["desired"], before["desired"]);

  // null deletes; $rid up to the C SDK's uint16 range is echoed verbatim.
  EXPECT_EQ(patch("a", 65535, R"({"fw":null})"),
            "$iothub/twin/res/204/?$rid=65535&$version=" + std::to_string(reported_version + 2));
  json last = get("a", 4);
  EXPECT_FALSE(last["reported"].contains("fw")) << last.dump();
  EXPECT_EQ(last["reported"]["temp"]["max"], 40) << last.dump();
}

// A malformed or non-object patch gets 400 with a reason and changes nothing.
TEST_F(TwinClientsTest, MalformedPatchGets400AndChangesNothing) {
  startHub();
  ASSERT_EQ(patch("a", 1, R"({"ok":true})").rfind("$iothub/twin/res/204/?$rid=1&$version=", 0), 0u);
  json before = get("a", 2);
  int rid = 10;
  for (const std::string bad : {"{not json", "[1,2]", R"({"bad name":1})"}) {
    auto got = request("a", "$iothub/twin/PATCH/properties/reported/?$rid=" + std::to_string(rid), bad);
    ASSERT_TRUE(got.has_value()) << bad;
    EXPECT_EQ(got->topic, "$iothub/twin/res/400/?$rid=" + std::to_string(rid)) << bad;
    json reason = json::parse(got->payload, nullptr, false);
    EXPECT_TRUE(reason.is_object() && reason.contains("message")) << got->payload;
    ++rid;
  }
  EXPECT_EQ(get("a", 3), before);
}

// The twin topics name no identity: a connection only ever reads and patches its own twin, and a
// module cannot connect as another one to read its twin.
TEST_F(TwinClientsTest, AModuleCannotReadAnotherModulesTwin) {
  startHub();
  ASSERT_EQ(patch("a", 1, R"({"secret":"of-a"})").rfind("$iothub/twin/res/204/", 0), 0u);
  json b_doc = get("b", 1);
  ASSERT_TRUE(b_doc.is_object());
  EXPECT_FALSE(b_doc["reported"].contains("secret")) << b_doc.dump();
  EXPECT_FALSE(b_doc["desired"].contains("interval")) << b_doc.dump();  // a's desired properties

  // b's key with a's client id and username: refused at CONNECT (CONNACK 5), nothing read.
  for (bool tls : {false, true}) {
    std::vector<std::string> argv = client(kPub, "b", tls, "a");
    argv.insert(argv.end(), {"-q", "1", "-t", "$iothub/twin/GET/?$rid=9", "-n"});
    Subprocess pub(argv);
    auto code = pub.wait(30s);
    EXPECT_NE(code.value_or(0), 0);
    EXPECT_NE(pub.stderrText().find("not authori"), std::string::npos) << pub.stderrText();
  }
}

// Subscribing to desired patches (here over TLS) when the module has not seen the current desired
// version (here: a fresh hub) sends the whole desired section at once: the catch-up is this
// version's desired-properties notification (docs/twins.md; live changes come with issue 07). It
// is sent right after the SUBACK on the same connection, so there is no race with the subscription.
TEST_F(TwinClientsTest, DesiredPropertiesArriveWhenTheModuleSubscribes) {
  startHub();
  std::vector<std::string> argv = client(kSub, "a", /*tls=*/true);
  argv.insert(argv.end(), {"-t", "$iothub/twin/PATCH/properties/desired/#", "-v", "-C", "1", "-W", "20"});
  Subprocess sub(argv);
  auto got = parseVerboseLine(sub.waitForStdoutLine("$iothub/twin/PATCH/properties/desired/", 30s));
  ASSERT_TRUE(got.has_value()) << sub.stdoutText() << sub.stderrText() << "\nhub:\n" << hub_->stderrText();
  EXPECT_EQ(sub.wait(30s), std::optional<int>(0));
  EXPECT_EQ(got->topic.rfind("$iothub/twin/PATCH/properties/desired/?$version=", 0), 0u) << got->topic;
  json patch_doc = json::parse(got->payload, nullptr, false);
  ASSERT_TRUE(patch_doc.is_object()) << got->payload;
  EXPECT_EQ(patch_doc["interval"], 5) << got->payload;
  EXPECT_EQ(patch_doc["mode"], "fast") << got->payload;
  json doc = get("a", 1);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(queryValue(got->topic, "$version"), doc["desired"]["$version"].dump()) << got->topic;
  EXPECT_EQ(patch_doc["$version"], doc["desired"]["$version"]) << got->payload;
}

// The operator's `edgehub method invoke` reaches a module subscribed with mosquitto_sub, in the C
// SDK's form (a decimal $rid). mosquitto_sub cannot answer on its own connection, and the hub only
// takes the answer from the connection the call went to (as edgeHub, whose pending calls belong
// to the connection's handler): mosquitto_sub leaving is "the module disconnected before
// answering" (404), and the same answer published afterwards by mosquitto_pub, a second
// connection, changes nothing. (A module answering on its own connection: the next test,
// method_test.cc and the Node SDK tests.)
TEST_F(TwinClientsTest, MethodCallReachesMosquittoSubWithADecimalRid) {
  startHub();
  std::vector<std::string> argv = client(kSub, "a");
  // -d prints "Subscribed (mid: N): 0" when the SUBACK arrives; the hub switched method requests on
  // before sending it, so a call made after that line is delivered.
  argv.insert(argv.end(), {"-t", "$iothub/methods/POST/#", "-d", "-v", "-C", "1", "-W", "30"});
  Subprocess sub(argv);
  ASSERT_TRUE(sub.waitForStdoutLine("Subscribed (mid:", 30s).has_value()) << sub.stdoutText() << sub.stderrText();
  Subprocess cli({testing::edgehubBinary(), "method", "invoke", "a", "reboot", "--payload", R"({"delay":3})",
                  "--timeout", "20", "--hub", hub_->mqttAddress(), "--identities", dir_ + "/identities.json"});
  // The -v line ("topic payload"), not -d's "received PUBLISH" line before it.
  auto got = parseVerboseLine(sub.waitForStdoutLine(R"( {"delay":3})", 30s));
  if (!got) cli.wait(30s);
  ASSERT_TRUE(got.has_value()) << sub.stdoutText() << sub.stderrText() << "\ncli:\n"
                               << cli.stdoutText() << cli.stderrText() << "\nhub:\n"
                               << hub_->stderrText();
  EXPECT_EQ(sub.wait(30s), std::optional<int>(0));
  EXPECT_EQ(got->topic.rfind("$iothub/methods/POST/reboot/?$rid=", 0), 0u) << got->topic;
  const std::string rid = queryValue(got->topic, "$rid");
  EXPECT_FALSE(rid.empty());
  EXPECT_EQ(rid.find_first_not_of("0123456789"), std::string::npos) << "the C SDK parses $rid with atol: " << rid;
  EXPECT_EQ(got->payload, R"({"delay":3})");

  auto cli_code = cli.wait(30s);
  EXPECT_EQ(cli_code, std::optional<int>(1));
  EXPECT_EQ(cli.stdoutText(),
            "{\"status\": 404, \"payload\": {\"message\":\"the module disconnected before answering\"}}\n")
      << cli.stderrText();

  std::vector<std::string> pub = client(kPub, "a");
  pub.insert(pub.end(), {"-q", "1", "-t", "$iothub/methods/res/200/?$rid=" + rid, "-m", R"({"rebooting":true})"});
  Subprocess late(pub);
  EXPECT_EQ(late.wait(30s), std::optional<int>(0)) << late.stderrText() << "\nhub:\n" << hub_->stderrText();
  // The hub is still serving: the late answer was ignored, not a reason to drop the connection.
  EXPECT_TRUE(get("a", 1).is_object());
}

// The same call answered on the module's own connection (the project's raw client, the C SDK's
// forms): `edgehub method invoke` prints the module's status and payload and exits 0.
TEST_F(TwinClientsTest, TheCliPrintsTheAnswerOfTheModulesConnection) {
  startHub();
  auto a = testing::connectModule(hub_->mqttAddress(), ids_, "a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->subscribe("$iothub/methods/POST/#", 0), 0);  // SUBACK received: the call is delivered
  Subprocess cli({testing::edgehubBinary(), "method", "invoke", "a", "reboot", "--payload", R"({"delay":3})",
                  "--timeout", "20", "--hub", hub_->mqttAddress(), "--identities", dir_ + "/identities.json"});
  std::optional<testing::ReceivedPacket> call;
  while (!call) {
    auto p = a->next(std::chrono::seconds(20));
    ASSERT_TRUE(p.has_value()) << "no call\nhub:\n" << hub_->stderrText();
    if (p->type == transports::mqtt::PacketType::kPublish) call = p;
  }
  EXPECT_EQ(call->topic.rfind("$iothub/methods/POST/reboot/?$rid=", 0), 0u) << call->topic;
  EXPECT_EQ(call->payload, R"({"delay":3})");
  const std::string rid = queryValue(call->topic, "$rid");
  ASSERT_FALSE(rid.empty());
  EXPECT_EQ(rid.find_first_not_of("0123456789"), std::string::npos) << rid;
  ASSERT_TRUE(a->publish("$iothub/methods/res/200/?$rid=" + rid, R"({"rebooting":true})", 0));
  EXPECT_EQ(cli.wait(30s), std::optional<int>(0)) << cli.stderrText();
  EXPECT_EQ(cli.stdoutText(), "{\"status\": 200, \"payload\": {\"rebooting\":true}}\n") << cli.stderrText();
}

// A reported patch acknowledged with 204 under `sync` durability survives a SIGKILL of the hub and
// a clean stop: `edgehub twin show` prints it from the stopped hub's store, and after each restart
// GET shows it with the same $version; after a restart the module gets the desired catch-up again
// at its first subscription.
TEST_F(TwinClientsTest, TwinsSurviveSigkillAndCleanRestart) {
  startHub();
  json initial = get("a", 1);
  ASSERT_TRUE(initial.is_object());
  const int64_t v0 = initial["reported"]["$version"].get<int64_t>();
  ASSERT_EQ(patch("a", 2, R"({"battery":87,"fw":"1.0"})"),
            "$iothub/twin/res/204/?$rid=2&$version=" + std::to_string(v0 + 1));

  hub_->kill();
  json stored = twinShow("a");
  EXPECT_EQ(stored["reported"]["battery"], 87) << stored.dump();
  EXPECT_EQ(stored["reported"]["$version"], v0 + 1) << stored.dump();
  EXPECT_EQ(stored["desired"]["interval"], 5) << stored.dump();

  startHub();
  {
    std::vector<std::string> argv = client(kSub, "a");
    argv.insert(argv.end(), {"-t", "$iothub/twin/PATCH/properties/desired/#", "-v", "-C", "1", "-W", "20"});
    Subprocess sub(argv);
    auto got = parseVerboseLine(sub.waitForStdoutLine("$iothub/twin/PATCH/properties/desired/", 30s));
    ASSERT_TRUE(got.has_value()) << sub.stdoutText() << sub.stderrText();
    EXPECT_NE(got->payload.find(R"("interval":5)"), std::string::npos) << got->payload;
    EXPECT_EQ(sub.wait(30s), std::optional<int>(0));
  }
  json after_kill = get("a", 3);
  ASSERT_TRUE(after_kill.is_object());
  EXPECT_EQ(after_kill["reported"]["battery"], 87) << after_kill.dump();
  EXPECT_EQ(after_kill["reported"]["fw"], "1.0") << after_kill.dump();
  EXPECT_EQ(after_kill["reported"]["$version"], v0 + 1) << after_kill.dump();
  EXPECT_EQ(after_kill["desired"], initial["desired"]);

  ASSERT_EQ(patch("a", 4, R"({"battery":80})"), "$iothub/twin/res/204/?$rid=4&$version=" + std::to_string(v0 + 2));
  EXPECT_EQ(hub_->stop(), 0) << hub_->stderrText();
  json stopped = twinShow("a");
  EXPECT_EQ(stopped["reported"]["battery"], 80) << stopped.dump();
  EXPECT_EQ(stopped["reported"]["$version"], v0 + 2) << stopped.dump();

  startHub();
  json after_stop = get("a", 5);
  ASSERT_TRUE(after_stop.is_object());
  EXPECT_EQ(after_stop["reported"]["battery"], 80) << after_stop.dump();
  EXPECT_EQ(after_stop["reported"]["fw"], "1.0") << after_stop.dump();
  EXPECT_EQ(after_stop["reported"]["$version"], v0 + 2) << after_stop.dump();
  // A module without a stored twin: twin show says so (exit 1) on the stopped hub.
  EXPECT_EQ(hub_->stop(), 0);
  Subprocess none({testing::edgehubBinary(), "twin", "show", "nobody", "--data", hub_->dataDir(), "--identities",
                   dir_ + "/identities.json"});
  EXPECT_EQ(none.wait(30s), std::optional<int>(1)) << none.stdoutText() << none.stderrText();
  hub_.reset();
}

}  // namespace
}  // namespace edgehub
