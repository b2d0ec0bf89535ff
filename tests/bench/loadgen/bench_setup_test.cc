#include "bench/loadgen/bench_setup.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/config/manifest.h"

namespace edgehub::bench {
namespace {

TEST(BenchSetupTest, FanOutManifestHasModulesAndOneRoutePerReceiver) {
  auto manifest = core::parseManifest(makeFanOutManifest(2, 3));
  ASSERT_TRUE(manifest.isOk()) << manifest.status().message();
  ASSERT_EQ(manifest->modules.size(), 5u);
  EXPECT_EQ(manifest->modules[0].name, "pub0");
  EXPECT_EQ(manifest->modules[1].name, "pub1");
  EXPECT_EQ(manifest->modules[4].name, "recv2");
  ASSERT_EQ(manifest->routes.size(), 3u);
  for (int j = 0; j < 3; ++j) {
    std::string recv = "recv" + std::to_string(j);
    bool found = false;
    for (const core::RouteSpec& r : manifest->routes) {
      if (r.name != "to_" + recv) continue;
      found = true;
      EXPECT_EQ(r.text, "FROM /messages/modules/* INTO BrokeredEndpoint(\"/modules/" + recv + "/inputs/in\")");
    }
    EXPECT_TRUE(found) << recv;
  }
}

TEST(BenchSetupTest, IdleManifestParses) {
  auto manifest = core::parseManifest(makeIdleManifest(100));
  ASSERT_TRUE(manifest.isOk()) << manifest.status().message();
  EXPECT_EQ(manifest->modules.size(), 100u);
  ASSERT_EQ(manifest->routes.size(), 1u);
  EXPECT_NE(manifest->routes[0].text.find("/modules/idle1/inputs/in"), std::string::npos);
}

TEST(BenchSetupTest, IdentitiesRoundTripThroughTheFileFormat) {
  auto ids = makeBenchIdentities({"pub0", "recv0"});
  ASSERT_TRUE(ids.isOk()) << ids.status().message();
  auto dir = TempDir::create();
  ASSERT_TRUE(dir.isOk());
  std::string path = dir->path() + "/identities.json";
  ASSERT_TRUE(core::writeIdentityFile(path, ids.value()).isOk());
  auto loaded = core::loadIdentityFile(path);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_EQ(loaded->device_id, "bench-device");
  EXPECT_EQ(loaded->hub_host_name, "localhost");
  ASSERT_NE(loaded->findModule("pub0"), nullptr);
  ASSERT_NE(loaded->findModule("recv0"), nullptr);
  EXPECT_NE(loaded->findModule("pub0")->primary_key, loaded->findModule("recv0")->primary_key);
  EXPECT_NE(loaded->findByClientId("bench-device/recv0"), nullptr);
}

TEST(BenchSetupTest, MosquittoConfigListensOnLoopback) {
  std::string conf = makeMosquittoConfig(12345);
  EXPECT_NE(conf.find("listener 12345 127.0.0.1"), std::string::npos);
  EXPECT_NE(conf.find("allow_anonymous true"), std::string::npos);
  EXPECT_NE(conf.find("max_inflight_messages 0"), std::string::npos);
}

TEST(BenchSetupTest, MosquittoConfigPersistsSessionsOnlyWhenAsked) {
  EXPECT_NE(makeMosquittoConfig(12345).find("persistence false"), std::string::npos);
  std::string conf = makeMosquittoConfig(12345, "/tmp/sessions");
  EXPECT_NE(conf.find("persistence true"), std::string::npos);
  EXPECT_NE(conf.find("persistence_location /tmp/sessions/"), std::string::npos);
  // Saved at exit only, so persistence adds nothing per message.
  EXPECT_NE(conf.find("autosave_interval 0"), std::string::npos);
  // As root, mosquitto would otherwise drop to a user that cannot write the bench's directory.
  EXPECT_EQ(conf.find("user root") != std::string::npos, ::geteuid() == 0);
}

TEST(BenchSetupTest, MosquittoConfigWithTlsAddsAPlainListenerForTheBenchsClients) {
  const MosquittoTls tls{"/d/server.pem", "/d/server.key.pem", 23456};
  const std::string conf = makeMosquittoConfig(12345, "", &tls);
  const size_t tls_listener = conf.find("listener 12345 127.0.0.1\n");
  const size_t cert = conf.find("certfile /d/server.pem\n");
  const size_t key = conf.find("keyfile /d/server.key.pem\n");
  const size_t plain_listener = conf.find("listener 23456 127.0.0.1\n");
  ASSERT_NE(tls_listener, std::string::npos) << conf;
  ASSERT_NE(plain_listener, std::string::npos) << conf;
  // The certificate belongs to the first listener: it comes after that one and before the next.
  EXPECT_GT(cert, tls_listener);
  EXPECT_GT(key, tls_listener);
  EXPECT_LT(cert, plain_listener);
  EXPECT_LT(key, plain_listener);
  EXPECT_EQ(makeMosquittoConfig(12345).find("certfile"), std::string::npos);
}

TEST(BenchSetupTest, TempDirIsRemovedUnlessKept) {
  std::string removed, kept;
  {
    auto dir = TempDir::create();
    ASSERT_TRUE(dir.isOk()) << dir.status().message();
    removed = dir->path();
    ASSERT_TRUE(writeTextFile(removed + "/edgehub.log", "x").isOk());
  }
  EXPECT_FALSE(std::filesystem::exists(removed));
  {
    auto dir = TempDir::create();
    ASSERT_TRUE(dir.isOk()) << dir.status().message();
    kept = dir->path();
    ASSERT_TRUE(writeTextFile(kept + "/edgehub.log", "x").isOk());
    TempDir moved = std::move(dir).value();  // keep() survives a move too
    moved.keep();
  }
  EXPECT_TRUE(std::filesystem::exists(kept + "/edgehub.log")) << "--keep-dir leaves the logs behind";
  std::filesystem::remove_all(kept);
}

}  // namespace
}  // namespace edgehub::bench
