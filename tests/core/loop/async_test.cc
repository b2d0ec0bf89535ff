#include "core/loop/async.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using testing::makeLoop;

// Sends coalesce: the callback may run fewer times than send() was called, but at least once
// after the last send, which is what the flag protocol below relies on.
TEST(AsyncTest, SendsFromAnotherThreadWakeTheLoop) {
  LoopPtr loop = makeLoop();
  constexpr int kSends = 1000;
  std::atomic<int> produced{0};
  int wakeups = 0;
  {
    Async async(*loop, [&] {
      ++wakeups;
      if (produced.load(std::memory_order_acquire) == kSends) loop->stop();
    });
    std::thread sender([&] {
      for (int i = 0; i < kSends; ++i) {
        produced.fetch_add(1, std::memory_order_release);
        async.send();
      }
    });
    loop->run();
    sender.join();
  }
  EXPECT_GE(wakeups, 1);
  EXPECT_LE(wakeups, kSends);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(AsyncTest, DestroyWithSendPendingDoesNotCallBack) {
  LoopPtr loop = makeLoop();
  bool called = false;
  auto async = std::make_unique<Async>(*loop, [&] { called = true; });
  async->send();
  async.reset();
  loop->runNoWait();
  EXPECT_FALSE(called);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core
