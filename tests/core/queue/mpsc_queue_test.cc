#include "core/queue/mpsc_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace edgehub::core {
namespace {

TEST(MpscQueueTest, CapacityIsRoundedUpToPowerOfTwo) {
  EXPECT_EQ(MpscQueue<int>(1).capacity(), 2u);
  EXPECT_EQ(MpscQueue<int>(5).capacity(), 8u);
  EXPECT_EQ(MpscQueue<int>(64).capacity(), 64u);
}

TEST(MpscQueueTest, FifoAndEmpty) {
  MpscQueue<int> q(8);
  int out = -1;
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.tryPop(out));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.tryPush(int{i}));
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.approxSize(), 5u);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(q.tryPop(out));
    EXPECT_EQ(out, i);
  }
  EXPECT_FALSE(q.tryPop(out));
  EXPECT_TRUE(q.empty());
}

TEST(MpscQueueTest, FullPushFailsAndLeavesValueUntouched) {
  MpscQueue<std::unique_ptr<int>> q(4);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.tryPush(std::make_unique<int>(i)));
  auto extra = std::make_unique<int>(99);
  EXPECT_FALSE(q.tryPush(std::move(extra)));
  ASSERT_NE(extra, nullptr) << "a failed push must not consume its argument";
  EXPECT_EQ(*extra, 99);
  std::unique_ptr<int> out;
  ASSERT_TRUE(q.tryPop(out));
  EXPECT_EQ(*out, 0);
  EXPECT_TRUE(q.tryPush(std::move(extra)));  // One slot was freed.
  EXPECT_EQ(extra, nullptr);
}

TEST(MpscQueueTest, WrapsAroundManyLaps) {
  MpscQueue<uint64_t> q(4);
  uint64_t out = 0;
  for (uint64_t i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(q.tryPush(uint64_t{i}));
    ASSERT_TRUE(q.tryPush(uint64_t{i + 1'000'000}));
    ASSERT_TRUE(q.tryPop(out));
    ASSERT_EQ(out, i);
    ASSERT_TRUE(q.tryPop(out));
    ASSERT_EQ(out, i + 1'000'000);
  }
}

struct Counted {
  static inline int live = 0;
  int value = 0;
  Counted() { ++live; }
  explicit Counted(int v) : value(v) { ++live; }
  Counted(Counted&& o) noexcept : value(o.value) { ++live; }
  Counted& operator=(Counted&& o) noexcept {
    value = o.value;
    return *this;
  }
  ~Counted() { --live; }
};

TEST(MpscQueueTest, DestructorDestroysRemainingElements) {
  Counted::live = 0;
  {
    MpscQueue<Counted> q(8);
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(q.tryEmplace(i));
    Counted out;
    ASSERT_TRUE(q.tryPop(out));
    EXPECT_EQ(out.value, 0);
    EXPECT_EQ(Counted::live, 6);  // 5 queued + out.
  }
  EXPECT_EQ(Counted::live, 0);
}

// Several producers, one consumer: every item arrives exactly once and each producer's items
// arrive in the order it pushed them. Meaningful under TSan: the element payload is a plain
// (non-atomic) struct, so a missing release/acquire pair shows up as a data race.
TEST(MpscQueueTest, ConcurrentProducersExactlyOnceInPerProducerOrder) {
  constexpr int kProducers = 4;
  constexpr uint32_t kPerProducer = 50'000;
  struct Item {
    uint32_t producer;
    uint32_t seq;
    uint64_t check;  // Derived from the other two; a torn read would not match.
  };
  MpscQueue<Item> q(256);  // Small, so producers hit "full" often.
  std::atomic<bool> go{false};
  std::atomic<uint64_t> full_hits{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        Item item{static_cast<uint32_t>(p), i, (uint64_t{static_cast<uint32_t>(p)} << 32) | i};
        while (!q.tryPush(Item(item))) {
          full_hits.fetch_add(1, std::memory_order_relaxed);
          std::this_thread::yield();
        }
      }
    });
  }
  std::vector<uint32_t> next(kProducers, 0);
  uint64_t received = 0;
  go.store(true, std::memory_order_release);
  Item item{};
  while (received < uint64_t{kProducers} * kPerProducer) {
    if (!q.tryPop(item)) {
      std::this_thread::yield();
      continue;
    }
    ASSERT_LT(item.producer, static_cast<uint32_t>(kProducers));
    ASSERT_EQ(item.check, (uint64_t{item.producer} << 32) | item.seq);
    ASSERT_EQ(item.seq, next[item.producer]) << "producer " << item.producer << " out of order";
    ++next[item.producer];
    ++received;
  }
  for (auto& t : producers) t.join();
  EXPECT_FALSE(q.tryPop(item)) << "nothing may arrive twice";
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kPerProducer);
}

}  // namespace
}  // namespace edgehub::core
