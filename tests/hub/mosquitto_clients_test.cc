// Real MQTT clients (Debian's mosquitto_pub / mosquitto_sub) against the real `edgehub` binary:
// SAS-token passwords, plain MQTT and MQTT over TLS with the hub's development CA, and the
// refusals (wrong key, expired token, unknown identity).
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

constexpr const char* kPub = "/usr/bin/mosquitto_pub";
constexpr const char* kSub = "/usr/bin/mosquitto_sub";
constexpr const char* kRoutes =
    R"json({"a_to_b": "FROM /messages/modules/a/outputs/* INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")"})json";

class MosquittoClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kPub, X_OK) != 0 || ::access(kSub, X_OK) != 0) {
      FAIL() << "mosquitto-clients are missing: ./test.sh installs them";
    }
    std::string tmpl = ::testing::TempDir() + "edgehub-mosq-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ids_ = testing::testIdentities({"a", "b"});
    hub_ = std::make_unique<HubProcess>(dir_, ids_, kRoutes);
    ASSERT_TRUE(hub_->started()) << hub_->stderrText();
  }
  void TearDown() override {
    if (hub_) {
      EXPECT_EQ(hub_->stop(), 0);
    }
    std::filesystem::remove_all(dir_);
  }

  std::vector<std::string> credentials(const std::string& m, const std::string& password) {
    return {"-V", "mqttv311", "-i", "dev1/" + m, "-u", testing::moduleUsername(ids_, m), "-P", password};
  }
  std::vector<std::string> plain() {
    const std::string& a = hub_->mqttAddress();
    return {"-h", "127.0.0.1", "-p", a.substr(a.rfind(':') + 1)};
  }
  std::vector<std::string> tls() {
    return {"-h", "localhost", "-p", std::to_string(hub_->mqttsPort()), "--cafile", hub_->caPath()};
  }

  int publish(std::vector<std::string> where, const std::string& m, const std::string& password,
              const std::string& topic, const std::string& payload, std::string* err = nullptr) {
    std::vector<std::string> argv = {kPub};
    argv.insert(argv.end(), where.begin(), where.end());
    auto c = credentials(m, password);
    argv.insert(argv.end(), c.begin(), c.end());
    argv.insert(argv.end(), {"-q", "1", "-t", topic, "-m", payload});
    Subprocess p(argv);
    auto code = p.wait(30s);
    if (err) *err = p.stderrText();
    return code.value_or(-1);
  }

  std::string dir_;
  core::IdentityConfig ids_;
  std::unique_ptr<HubProcess> hub_;
};

TEST_F(MosquittoClientsTest, OutputReachesInputOverPlainAndTlsWithPropertiesIntact) {
  // Published before the receiver exists: the hub keeps it for b's input (store and forward).
  ASSERT_EQ(publish(plain(), "a", testing::moduleSasToken(ids_, "a"),
                    "devices/dev1/modules/a/messages/events/%24.on=out1&temp=21&site=north/", "over-plain"),
            0);
  ASSERT_EQ(publish(tls(), "a", testing::moduleSasToken(ids_, "a"),
                    "devices/dev1/modules/a/messages/events/%24.on=out1&temp=22/", "over-tls"),
            0);
  std::vector<std::string> argv = {kSub};
  auto t = tls();
  argv.insert(argv.end(), t.begin(), t.end());
  auto c = credentials("b", testing::moduleSasToken(ids_, "b"));
  argv.insert(argv.end(), c.begin(), c.end());
  argv.insert(argv.end(), {"-c", "-q", "1", "-t", "devices/dev1/modules/b/inputs/#", "-v", "-C", "2"});
  Subprocess sub(argv);
  auto first = sub.waitForStdoutLine("over-plain", 30s);
  ASSERT_TRUE(first.has_value()) << sub.stderrText();
  EXPECT_NE(first->find("devices/dev1/modules/b/inputs/in1/"), std::string::npos) << *first;
  EXPECT_NE(first->find("temp=21"), std::string::npos) << *first;
  EXPECT_NE(first->find("site=north"), std::string::npos) << *first;
  EXPECT_NE(first->find("%24.cmid=a"), std::string::npos) << *first;
  auto second = sub.waitForStdoutLine("over-tls", 30s);
  ASSERT_TRUE(second.has_value()) << sub.stderrText();
  EXPECT_EQ(sub.wait(30s), std::optional<int>(0));
}

TEST_F(MosquittoClientsTest, WrongKeyExpiredTokenAndUnknownIdentityAreRefused) {
  const std::string topic = "devices/dev1/modules/a/messages/events/";
  std::string err;
  EXPECT_NE(publish(plain(), "a", testing::moduleSasToken(ids_, "b"), topic, "x", &err), 0);
  EXPECT_NE(err.find("not authori"), std::string::npos) << err;
  EXPECT_NE(publish(tls(), "a", testing::moduleSasToken(ids_, "a", -3600), topic, "x", &err), 0);
  EXPECT_NE(err.find("not authori"), std::string::npos) << err;
  core::IdentityConfig other = testing::testIdentities({"a", "b", "ghost"});
  EXPECT_NE(publish(plain(), "ghost", testing::moduleSasToken(other, "ghost"),
                    "devices/dev1/modules/ghost/messages/events/", "x", &err),
            0);
  EXPECT_NE(err.find("not authori"), std::string::npos) << err;
  // The hub logged why, without the token.
  hub_->stop();
  const std::string log = hub_->stderrText();
  EXPECT_NE(log.find("token expired"), std::string::npos) << log;
  EXPECT_NE(log.find("unknown identity"), std::string::npos) << log;
  EXPECT_EQ(log.find("sig="), std::string::npos) << "a token leaked into the log";
  hub_.reset();
}

}  // namespace
}  // namespace edgehub
