#include "store/tools/store_tools.h"

#include <gtest/gtest.h>

#include <sstream>

#include "core/loop/loop_thread.h"
#include "store/rocks_store.h"
#include "tests/store/store_test_util.h"

namespace edgehub::store {
namespace {

using testing::makeMessage;

class StoreToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.start().isOk());
    RocksStore::Options o;
    o.path = dir_.sub("store");
    core::RealTimeSource time;
    auto store = RocksStore::open(o, time);
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    std::vector<core::EndpointInfo> eps{testing::upstreamEndpoint(),
                                        testing::moduleEndpoint("filter", "input1")};
    ASSERT_TRUE(store.value()->setEndpoints(eps).isOk());
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            time.systemTime().time_since_epoch())
                            .count();
    auto add = [&](const core::MessageRef& m, std::vector<core::StoredDestination> d) {
      store.value()->append(m, d, *loop_.loop(), completion_, m->sequence());
    };
    add(makeMessage(1, "{\"temp\":21}", now - 60'000), {{0, 0, core::kNoExpiry}, {1, 10, core::kNoExpiry}});
    add(makeMessage(2, std::string("\xff\x00\x01", 3), now - 30'000), {{1, 10, core::kNoExpiry}});
    add(makeMessage(3, "urgent", now - 10'000), {{1, 2, core::kNoExpiry}});
    ASSERT_TRUE(completion_.waitFor(3));
    store.value()->stop();
  }
  void TearDown() override { loop_.stop(); }

  testing::TempDir dir_;
  testing::RecordingCompletion completion_;
  core::LoopThread loop_{"tools-test"};
};

TEST_F(StoreToolsTest, StatsListsQueuesWithCountBytesAndAge) {
  std::ostringstream out, err;
  ASSERT_EQ(runStoreStats(dir_.path(), out, err), 0) << err.str();
  const std::string text = out.str();
  EXPECT_NE(text.find("3 messages"), std::string::npos) << text;
  EXPECT_NE(text.find("$upstream"), std::string::npos) << text;
  EXPECT_NE(text.find("BrokeredEndpoint(\"/modules/filter/inputs/input1\")"), std::string::npos);
  // The module queue's default class holds two messages, the oldest a minute old.
  std::istringstream lines(text);
  std::string line;
  bool found = false;
  while (std::getline(lines, line)) {
    if (line.find("filter") != std::string::npos && line.find(" 10 ") != std::string::npos) {
      std::istringstream fields(line);
      std::string name;
      int prio;
      uint64_t count, bytes;
      double age;
      fields >> name >> prio >> count >> bytes >> age;
      EXPECT_EQ(prio, 10);
      EXPECT_EQ(count, 2u);
      EXPECT_GT(bytes, 0u);
      EXPECT_GE(age, 59.0);
      EXPECT_LT(age, 600.0);
      found = true;
    }
  }
  EXPECT_TRUE(found) << text;
  EXPECT_NE(text.find("ttl_expiry=0 store_full=0"), std::string::npos);
}

TEST_F(StoreToolsTest, PeekPrintsDecodedMessagesHighestPriorityFirst) {
  std::ostringstream out, err;
  ASSERT_EQ(runStorePeek(dir_.path(), "BrokeredEndpoint(\"/modules/filter/inputs/input1\")", 10,
                         out, err),
            0)
      << err.str();
  const std::string text = out.str();
  const size_t s3 = text.find("sequence 3 (priority class 2)");
  const size_t s1 = text.find("sequence 1 (priority class 10)");
  const size_t s2 = text.find("sequence 2 (priority class 10)");
  ASSERT_NE(s3, std::string::npos) << text;
  ASSERT_NE(s1, std::string::npos) << text;
  ASSERT_NE(s2, std::string::npos) << text;
  EXPECT_LT(s3, s1);
  EXPECT_LT(s1, s2);
  EXPECT_NE(text.find("origin: edge-device/sensor"), std::string::npos) << text;
  EXPECT_NE(text.find("messageId = \"msg-1\""), std::string::npos) << text;
  EXPECT_NE(text.find("contentType = \"application/json\""), std::string::npos);
  EXPECT_NE(text.find("alert = \"true\""), std::string::npos);
  EXPECT_NE(text.find("nothing = (null)"), std::string::npos);
  EXPECT_NE(text.find("body (11 bytes, text): {\"temp\":21}"), std::string::npos) << text;
  EXPECT_NE(text.find("body (3 bytes, base64): /wAB"), std::string::npos) << text;
  EXPECT_NE(text.find("3 message(s) shown"), std::string::npos);

  std::ostringstream out1, err1;
  ASSERT_EQ(runStorePeek(dir_.path(), "BrokeredEndpoint(\"/modules/filter/inputs/input1\")", 1,
                         out1, err1),
            0);
  EXPECT_NE(out1.str().find("sequence 3"), std::string::npos);
  EXPECT_EQ(out1.str().find("sequence 1"), std::string::npos);
}

TEST_F(StoreToolsTest, ErrorsAreClear) {
  std::ostringstream out, err;
  EXPECT_EQ(runStorePeek(dir_.path(), "nope", 10, out, err), 1);
  EXPECT_NE(err.str().find("no queue for endpoint 'nope'"), std::string::npos) << err.str();
  std::ostringstream out2, err2;
  EXPECT_EQ(runStoreStats(dir_.sub("missing"), out2, err2), 1);
  EXPECT_NE(err2.str().find("no store at"), std::string::npos) << err2.str();
}

}  // namespace
}  // namespace edgehub::store
