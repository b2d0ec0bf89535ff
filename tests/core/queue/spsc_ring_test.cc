#include "core/queue/spsc_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace edgehub::core {
namespace {

TEST(SpscRingTest, FifoFullAndEmpty) {
  SpscRing<int> r(3);
  EXPECT_EQ(r.capacity(), 4u);
  int out = 0;
  EXPECT_FALSE(r.tryPop(out));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(r.tryPush(int{i}));
  EXPECT_FALSE(r.tryPush(4));
  EXPECT_EQ(r.approxSize(), 4u);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(r.tryPop(out));
    EXPECT_EQ(out, i);
  }
  EXPECT_FALSE(r.tryPop(out));
}

TEST(SpscRingTest, MoveOnlyElementsAndFailedPushKeepsValue) {
  SpscRing<std::unique_ptr<int>> r(2);
  ASSERT_TRUE(r.tryPush(std::make_unique<int>(1)));
  ASSERT_TRUE(r.tryPush(std::make_unique<int>(2)));
  auto extra = std::make_unique<int>(3);
  EXPECT_FALSE(r.tryPush(std::move(extra)));
  ASSERT_NE(extra, nullptr);
  std::unique_ptr<int> out;
  ASSERT_TRUE(r.tryPop(out));
  EXPECT_EQ(*out, 1);
}

TEST(SpscRingTest, PopBatchRespectsMaxAndOrderAcrossWrap) {
  SpscRing<int> r(8);
  std::vector<int> got;
  int next = 0;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(r.tryPush(int{next++}));
    EXPECT_EQ(r.popBatch([&](int&& v) { got.push_back(v); }, 3), 3u);
    EXPECT_EQ(r.popBatch([&](int&& v) { got.push_back(v); }, 100), 2u);
    EXPECT_EQ(r.popBatch([&](int&& v) { got.push_back(v); }, 100), 0u);
  }
  ASSERT_EQ(got.size(), 500u);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(got[i], i);
}

TEST(SpscRingTest, DestructorDestroysRemainingElements) {
  auto shared = std::make_shared<int>(0);
  {
    SpscRing<std::shared_ptr<int>> r(4);
    ASSERT_TRUE(r.tryPush(std::shared_ptr<int>(shared)));
    ASSERT_TRUE(r.tryPush(std::shared_ptr<int>(shared)));
    EXPECT_EQ(shared.use_count(), 3);
  }
  EXPECT_EQ(shared.use_count(), 1);
}

// One producer thread, one consumer thread, small ring: strict order, nothing lost or doubled.
// The payload has a plain (non-atomic) heap part so TSan checks the publication ordering.
TEST(SpscRingTest, CrossThreadOrder) {
  constexpr uint64_t kItems = 200'000;
  SpscRing<std::unique_ptr<uint64_t>> r(64);
  std::thread producer([&] {
    for (uint64_t i = 0; i < kItems; ++i) {
      auto item = std::make_unique<uint64_t>(i);
      while (!r.tryPush(std::move(item))) std::this_thread::yield();
    }
  });
  uint64_t expected = 0;
  bool in_order = true;
  while (expected < kItems) {
    std::size_t n = r.popBatch(
        [&](std::unique_ptr<uint64_t>&& v) {
          if (*v != expected) in_order = false;
          ++expected;
        },
        16);
    if (n == 0) {
      std::unique_ptr<uint64_t> one;
      if (r.tryPop(one)) {
        if (*one != expected) in_order = false;
        ++expected;
      } else {
        std::this_thread::yield();
      }
    }
  }
  producer.join();
  EXPECT_TRUE(in_order);
  std::unique_ptr<uint64_t> out;
  EXPECT_FALSE(r.tryPop(out));
}

}  // namespace
}  // namespace edgehub::core
