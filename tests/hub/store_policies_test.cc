// The store's policies seen from the outside, in process: a real Hub with the RocksDB store on
// 127.0.0.1:0 and raw MQTT clients. TTL: expired messages are never delivered and leave the disk
// within seconds, and a route's TTL overrides the global one. Drop-oldest: a full store keeps
// the newest messages, and consumers see exactly what the store kept.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "hub/hub.h"
#include "tests/hub/support/in_process_hub.h"

namespace edgehub {
namespace {

using testing::MqttTestClient;
using transports::mqtt::PacketType;

// a's messages expire after one second (route TTL), c's live for the global hour.
constexpr const char* kRoutes = R"json({
  "short": {"route": "FROM /messages/modules/a/outputs/* INTO BrokeredEndpoint(\"/modules/b/inputs/short\")",
            "timeToLiveSecs": 1},
  "long": "FROM /messages/modules/c/outputs/* INTO BrokeredEndpoint(\"/modules/b/inputs/long\")"
})json";

class StorePoliciesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "edgehub-policies-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ids_ = testing::testIdentities({"a", "b", "c"});
  }
  void TearDown() override {
    if (hub_) hub_->stop();
    std::filesystem::remove_all(dir_);
  }

  void startHub(const std::function<void(HubOptions&)>& tweak) {
    auto options = testing::inProcessHubOptions(std::string(R"({"schemaVersion": "1.1", "routes": )") + kRoutes +
                                                    R"(, "storeAndForwardConfiguration": {"timeToLiveSecs": 3600}})",
                                                ids_, dir_ + "/data");
    ASSERT_TRUE(options.isOk()) << options.status().toString();
    HubOptions o = std::move(options).value();
    tweak(o);
    auto hub = Hub::create(std::move(o));
    ASSERT_TRUE(hub.isOk()) << hub.status().toString();
    hub_ = std::move(hub).value();
    ASSERT_TRUE(hub_->start().isOk());
  }

  std::unique_ptr<MqttTestClient> module(const std::string& m) {
    auto c = testing::connectModule(hub_->mqttAddress(), ids_, m);
    EXPECT_NE(c, nullptr) << m;
    return c;
  }
  std::string telemetry(const std::string& m) {
    return "devices/" + ids_.device_id + "/modules/" + m + "/messages/events/%24.on=out/";
  }

  // Polls a hub counter until it reaches `want` (the store's expiry pass runs every second).
  bool waitForCounter(const std::string& name, uint64_t want, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (hub_->counter(name) < want) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  std::string dir_;
  core::IdentityConfig ids_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(StorePoliciesTest, RouteTtlOverridesTheGlobalOneAndExpiredMessagesLeaveTheDiskUndelivered) {
  constexpr int kEach = 50;
  startHub([](HubOptions&) {});
  {
    auto a = module("a");
    ASSERT_TRUE(a->publishPipelined(telemetry("a"), 0, kEach));
    ASSERT_EQ(a->awaitPubacks(kEach), kEach);
    auto c = module("c");
    ASSERT_TRUE(c->publishPipelined(telemetry("c"), 1000, kEach));
    ASSERT_EQ(c->awaitPubacks(kEach), kEach);
  }
  // b is offline. a's copies expire after a second and are removed from disk by the store's
  // expiry pass (and from memory by the engine's sweep); c's stay.
  ASSERT_TRUE(waitForCounter("store_dropped_ttl_expiry", kEach)) << hub_->counter("store_dropped_ttl_expiry");
  EXPECT_EQ(hub_->counter("store_dropped_ttl_expiry"), static_cast<uint64_t>(kEach)) << "only the route-TTL copies";
  EXPECT_EQ(hub_->counter("store_messages"), static_cast<uint64_t>(kEach)) << "the expired bodies are gone";
  ASSERT_TRUE(waitForCounter("dropped_ttl_expiry", kEach));

  auto b = module("b");
  ASSERT_EQ(b->subscribe("devices/" + ids_.device_id + "/modules/b/inputs/#"), 1);
  int got = 0;
  while (got < kEach) {
    auto p = b->next();
    ASSERT_TRUE(p.has_value()) << "delivery stopped after " << got;
    if (p->type != PacketType::kPublish) continue;
    EXPECT_NE(p->topic.find("/inputs/long/"), std::string::npos) << "an expired message was delivered: " << p->topic;
    EXPECT_EQ(p->payload, std::to_string(1000 + got));
    ASSERT_TRUE(b->puback(p->packet_id));
    ++got;
  }
  auto extra = b->next(std::chrono::milliseconds(300));
  EXPECT_FALSE(extra.has_value() && extra->type == PacketType::kPublish) << "nothing expired arrives late";
}

TEST_F(StorePoliciesTest, DropOldestKeepsTheNewestAndConsumersSeeOnlyThose) {
  constexpr int kMessages = 40;
  const std::string body(1000, 'x');
  startHub([](HubOptions& o) {
    o.max_store_bytes = 8000;  // room for a handful of 1 KB messages (with their envelopes)
    o.store_full_policy = "drop-oldest";
  });
  {
    auto c = module("c");
    // One at a time, so that store order is publish order.
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_TRUE(c->publish(telemetry("c"), std::to_string(i) + ":" + body, 1, static_cast<uint16_t>(i + 1)))
          << "drop-oldest accepts every message (message " << i << ")";
    }
  }
  const uint64_t dropped = hub_->counter("store_dropped_store_full");
  EXPECT_GT(dropped, 0u);
  EXPECT_LT(dropped, static_cast<uint64_t>(kMessages));
  const uint64_t kept = hub_->counter("store_messages");
  EXPECT_EQ(kept + dropped, static_cast<uint64_t>(kMessages)) << "every message is either kept or counted";

  auto b = module("b");
  ASSERT_EQ(b->subscribe("devices/" + ids_.device_id + "/modules/b/inputs/#"), 1);
  std::vector<int> got;
  while (got.size() < kept) {
    auto p = b->next();
    ASSERT_TRUE(p.has_value()) << "delivery stopped after " << got.size();
    if (p->type != PacketType::kPublish) continue;
    got.push_back(std::stoi(p->payload.substr(0, p->payload.find(':'))));
    ASSERT_TRUE(b->puback(p->packet_id));
  }
  auto extra = b->next(std::chrono::milliseconds(300));
  EXPECT_FALSE(extra.has_value() && extra->type == PacketType::kPublish) << "a dropped message was delivered";
  // The newest ones, in order.
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], static_cast<int>(kMessages - kept + i));
  }
  EXPECT_EQ(hub_->counter("dropped_store_full"), dropped) << "the engine dropped the same copies from memory";
}

}  // namespace
}  // namespace edgehub
