#include "hub/hub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace edgehub {
namespace {

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "edgehub-hub-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  HubOptions options(std::string routes_json = R"({"r1": "FROM /messages/modules/sensor/* INTO $upstream"})") {
    auto manifest = core::parseManifest(
        R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {"sensor": {}, "filter": {}}}},
            "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": )" +
        routes_json + R"(, "storeAndForwardConfiguration": {"timeToLiveSecs": 60}}}}})");
    EXPECT_TRUE(manifest.isOk()) << manifest.status().toString();
    HubOptions o;
    o.manifest = std::move(manifest).value();
    o.data_dir = dir_ + "/data";
    o.io_threads = 2;
    o.mqtt_listen = "127.0.0.1:0";
    o.mqtts_listen = "";
    return o;
  }

  std::string dir_;
};

bool canConnect(const std::string& address) {
  int port = std::stoi(address.substr(address.rfind(':') + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

TEST_F(HubTest, StartListenStopAndStopAgain) {
  auto hub = Hub::create(options());
  ASSERT_TRUE(hub.isOk()) << hub.status().toString();
  EXPECT_FALSE(hub.value()->running());
  ASSERT_TRUE(hub.value()->start().isOk());
  EXPECT_TRUE(hub.value()->running());
  auto addresses = hub.value()->listeningAddresses();
  ASSERT_EQ(addresses.size(), 1u);
  EXPECT_EQ(addresses[0].rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE(addresses[0], "127.0.0.1:0");
  EXPECT_TRUE(canConnect(addresses[0]));
  hub.value()->stop();
  EXPECT_FALSE(hub.value()->running());
  EXPECT_FALSE(canConnect(addresses[0]));  // the listener is gone
  hub.value()->stop();                      // idempotent
}

TEST_F(HubTest, StartTwiceIsRefused) {
  auto hub = Hub::create(options());
  ASSERT_TRUE(hub.isOk());
  ASSERT_TRUE(hub.value()->start().isOk());
  EXPECT_EQ(hub.value()->start().code(), core::StatusCode::kFailedPrecondition);
}

TEST_F(HubTest, DestroyWithoutStartOrStopIsSafe) {
  {
    auto hub = Hub::create(options());
    ASSERT_TRUE(hub.isOk());
  }
  {
    auto hub = Hub::create(options());
    ASSERT_TRUE(hub.isOk());
    ASSERT_TRUE(hub.value()->start().isOk());
    // Destroyed while running: the destructor stops it.
  }
}

TEST_F(HubTest, GeneratesIdentitiesForManifestModules) {
  auto hub = Hub::create(options());
  ASSERT_TRUE(hub.isOk());
  const core::IdentityConfig& ids = hub.value()->identities();
  EXPECT_NE(ids.findModule("sensor"), nullptr);
  EXPECT_NE(ids.findModule("filter"), nullptr);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/data/identities.json"));
}

TEST_F(HubTest, BadRouteRejectsTheWholeManifest) {
  auto hub = Hub::create(options(R"({"good": "FROM /messages/* INTO $upstream",
                                      "hot": "FROM /messages/* WHERE temp > 30 INTO $upstream"})"));
  ASSERT_FALSE(hub.isOk());
  EXPECT_EQ(hub.status().code(), core::StatusCode::kInvalidArgument);
  std::string message(hub.status().message());
  EXPECT_NE(message.find("'hot'"), std::string::npos) << message;
  EXPECT_NE(message.find("as_number(temp)"), std::string::npos) << message;
  EXPECT_EQ(message.find("'good'"), std::string::npos) << message;
  // Nothing was prepared on disk for a rejected configuration.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/data"));
}

TEST_F(HubTest, InvalidOptionsAreRejected) {
  HubOptions bad_listen = options();
  bad_listen.mqtt_listen = "nonsense";
  EXPECT_EQ(Hub::create(std::move(bad_listen)).status().code(), core::StatusCode::kInvalidArgument);
  HubOptions bad_port = options();
  bad_port.mqtt_listen = "127.0.0.1:70000";
  EXPECT_EQ(Hub::create(std::move(bad_port)).status().code(), core::StatusCode::kInvalidArgument);
  HubOptions bad_dir = options();
  bad_dir.data_dir = "/proc/edgehub-cannot-create";
  EXPECT_EQ(Hub::create(std::move(bad_dir)).status().code(), core::StatusCode::kIoError);
}

TEST_F(HubTest, ListenerCanBeDisabled) {
  HubOptions o = options();
  o.mqtt_listen.clear();
  auto hub = Hub::create(std::move(o));
  ASSERT_TRUE(hub.isOk());
  ASSERT_TRUE(hub.value()->start().isOk());
  EXPECT_TRUE(hub.value()->listeningAddresses().empty());
}

}  // namespace
}  // namespace edgehub

namespace edgehub {
namespace {

// The store cannot open (its path is a file): start() fails with the reason and nothing runs;
// the hub never falls back to memory durability.
TEST(HubStoreTest, StartRefusesWhenTheStoreCannotOpen) {
  std::string tmpl = ::testing::TempDir() + "edgehub-hubstore-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  auto manifest = core::parseManifest(
      R"({"schemaVersion": "1.1", "routes": {"r": "FROM /messages/* INTO $upstream"},
          "storeAndForwardConfiguration": {"timeToLiveSecs": 60}})");
  ASSERT_TRUE(manifest.isOk());
  HubOptions o;
  o.manifest = std::move(manifest).value();
  o.data_dir = dir + "/data";
  o.mqtt_listen = "127.0.0.1:0";
  o.mqtts_listen = "";
  o.durability = "sync";
  std::filesystem::create_directories(o.data_dir);
  { std::ofstream(o.data_dir + "/store") << "not a directory"; }
  auto hub = Hub::create(o);
  ASSERT_TRUE(hub.isOk()) << hub.status().toString();
  core::Status s = hub.value()->start();
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.toString().find("cannot open the message store"), std::string::npos) << s.toString();
  EXPECT_FALSE(hub.value()->running());
  hub.value()->stop();
  std::filesystem::remove_all(dir);
}

TEST(HubStoreTest, UnknownDurabilityIsRejected) {
  HubOptions o;
  auto manifest = core::parseManifest(
      R"({"schemaVersion": "1.1", "routes": {}, "storeAndForwardConfiguration": {"timeToLiveSecs": 60}})");
  ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
  o.manifest = std::move(manifest).value();
  o.durability = "fast";
  auto hub = Hub::create(o);
  ASSERT_FALSE(hub.isOk());
  EXPECT_NE(hub.status().toString().find("durability must be sync, async or memory"), std::string::npos);
}

}  // namespace
}  // namespace edgehub
