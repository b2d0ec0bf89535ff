#include "core/loop/loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "core/loop/timer.h"
#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using testing::makeLoop;

TEST(LoopTest, CreateAndCloseCleanly) {
  LoopPtr loop = makeLoop();
  EXPECT_TRUE(loop->isThreadSafe());
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(LoopTest, IsThreadSafeIsFalseOnOtherThreads) {
  LoopPtr loop = makeLoop();
  bool other = true;
  std::thread([&] { other = loop->isThreadSafe(); }).join();
  EXPECT_FALSE(other);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// N posts from each of M threads: every function runs exactly once, on the loop thread, and
// each thread's posts run in the order it posted them.
TEST(LoopTest, PostsFromManyThreadsRunExactlyOnceInPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5'000;
  LoopPtr loop = makeLoop();
  std::vector<int> next(kThreads, 0);  // Touched only on the loop thread.
  int total = 0;
  bool order_ok = true;
  bool thread_ok = true;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Retrying a full queue is the caller's choice; the test needs every item.
        while (!loop->post([&, t, i] {
          if (next[t] != i) order_ok = false;
          if (!loop->isThreadSafe()) thread_ok = false;
          next[t] = i + 1;
          if (++total == kThreads * kPerThread) loop->stop();
        })) {
          std::this_thread::yield();
        }
      }
    });
  }
  loop->run();
  for (auto& p : producers) p.join();
  EXPECT_EQ(total, kThreads * kPerThread);
  EXPECT_TRUE(order_ok);
  EXPECT_TRUE(thread_ok);
  // Nothing runs twice: a further iteration finds no posts.
  EXPECT_TRUE(loop->runNoWait());
  EXPECT_EQ(total, kThreads * kPerThread);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(LoopTest, PostFailsAndCountsWhenQueueIsFull) {
  Loop::Options options;
  options.post_queue_capacity = 4;
  LoopPtr loop = makeLoop(options);
  int ran = 0;
  auto guard = std::make_shared<int>(0);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(loop->post([&ran] { ++ran; }));
  EXPECT_FALSE(loop->post([&ran, g = guard] { ++ran; }));
  EXPECT_EQ(guard.use_count(), 1) << "a refused function is destroyed, not kept";
  EXPECT_EQ(loop->postOverflowCount(), 1u);
  ASSERT_TRUE(loop->post([&] {}) == false);
  loop->requestStop();
  loop->run();
  EXPECT_EQ(ran, 4);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(LoopTest, RequestStopFromAnotherThreadRunsEarlierPostsFirst) {
  LoopPtr loop = makeLoop();
  std::atomic<int> ran{0};
  std::thread other([&] {
    for (int i = 0; i < 100; ++i) {
      while (!loop->post([&] { ran.fetch_add(1, std::memory_order_relaxed); })) {
        std::this_thread::yield();
      }
    }
    loop->requestStop();
  });
  loop->run();  // Returns only because of requestStop().
  other.join();
  EXPECT_EQ(ran.load(), 100);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(LoopTest, UnrunPostsAreDestroyedAtClose) {
  LoopPtr loop = makeLoop();
  auto guard = std::make_shared<int>(0);
  bool ran = false;
  ASSERT_TRUE(loop->post([g = guard, &ran] { ran = true; }));
  EXPECT_EQ(guard.use_count(), 2);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
  EXPECT_FALSE(ran);
  EXPECT_EQ(guard.use_count(), 1);
}

class Tracked : public DeferredDeletable {
 public:
  explicit Tracked(int* destroyed) : destroyed_(destroyed) {}
  ~Tracked() override { ++*destroyed_; }

 private:
  int* destroyed_;
};

TEST(LoopTest, DeferredDeleteRunsAfterTheCallbackReturns) {
  LoopPtr loop = makeLoop();
  int destroyed = 0;
  int seen_inside = -1;
  ASSERT_TRUE(loop->post([&] {
    loop->deferredDelete(std::make_unique<Tracked>(&destroyed));
    seen_inside = destroyed;  // Still alive: deletion is deferred.
  }));
  // Stop from a second post so the loop iterates through its check phase first.
  ASSERT_TRUE(loop->post([&] { loop->stop(); }));
  loop->run();
  EXPECT_EQ(seen_inside, 0);
  // The check phase of the iteration that ran the post has destroyed it (no extra run needed).
  EXPECT_EQ(destroyed, 1);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// A deferred deletion queued from a timer (before the poll phase) must still happen even though
// nothing else is pending: the idle handle stops poll from blocking.
TEST(LoopTest, DeferredDeleteDoesNotWaitForIo) {
  LoopPtr loop = makeLoop();
  int destroyed = 0;
  {
    Timer timer(*loop, [&] { loop->deferredDelete(std::make_unique<Tracked>(&destroyed)); });
    timer.enable(std::chrono::milliseconds(0));
    while (destroyed == 0) loop->runOnce();  // Would block forever if poll waited for I/O.
  }
  EXPECT_EQ(destroyed, 1);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(LoopTest, DeferredObjectsPendingAtCloseAreDestroyed) {
  LoopPtr loop = makeLoop();
  int destroyed = 0;
  loop->deferredDelete(std::make_unique<Tracked>(&destroyed));
  loop->deferredDelete(std::make_unique<Tracked>(&destroyed));
  EXPECT_EQ(destroyed, 0);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
  EXPECT_EQ(destroyed, 2);
}

// The leak check itself: close() must fail while a handle is alive, and succeed once it is gone.
TEST(LoopTest, CloseReportsALeakedHandle) {
  LoopPtr loop = makeLoop();
  auto timer = std::make_unique<Timer>(*loop, [] {});
  timer->enable(std::chrono::hours(1));
  Status leaked = loop->close();
  EXPECT_FALSE(leaked.isOk());
  EXPECT_EQ(leaked.code(), StatusCode::kFailedPrecondition) << leaked.toString();  // EBUSY
  timer.reset();
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core

namespace edgehub::core {
namespace {

struct CountingHook final : TurnEndHook {
  void onTurnEnd() override {
    ++runs;
    if (on_run) on_run();
  }
  int runs = 0;
  MoveOnlyFn on_run;
};

TEST(LoopTest, TurnEndHookRunsOnceAfterTheTurnsCallbacksAndCanBeCancelled) {
  LoopPtr loop = makeLoop();
  CountingHook hook, cancelled;
  std::vector<std::string> order;
  ASSERT_TRUE(loop->post([&] {
    loop->callAtTurnEnd(&hook);
    loop->callAtTurnEnd(&hook);  // no-op: already registered
    loop->callAtTurnEnd(&cancelled);
    loop->cancelTurnEnd(&cancelled);
    order.push_back("post");
  }));
  hook.on_run = [&] {
    order.push_back("hook");
    loop->stop();
  };
  loop->run();
  EXPECT_EQ(hook.runs, 1);
  EXPECT_EQ(cancelled.runs, 0);
  EXPECT_EQ(order, (std::vector<std::string>{"post", "hook"}));
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core
