#include "core/loop/loop_thread.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "core/loop/timer.h"

namespace edgehub::core {
namespace {

TEST(LoopThreadTest, PostsFromManyThreadsRunExactlyOnceOnTheLoopThread) {
  constexpr int kThreads = 3;
  constexpr int kPerThread = 10'000;
  LoopThread lt("io-test");
  ASSERT_TRUE(lt.start().isOk());
  EXPECT_TRUE(lt.isRunning());
  int count = 0;  // Plain int: only the loop thread touches it (TSan checks that).
  std::atomic<bool> off_thread{false};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        while (!lt.post([&] {
          if (!lt.loop()->isThreadSafe()) off_thread = true;
          ++count;
        })) {
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& p : producers) p.join();
  lt.stop();  // Runs everything posted before it, then joins (happens-before for count).
  EXPECT_EQ(count, kThreads * kPerThread);
  EXPECT_FALSE(off_thread.load());
  EXPECT_FALSE(lt.isRunning());
  EXPECT_EQ(lt.loop(), nullptr);
}

// A write to a connection whose peer is gone raises SIGPIPE, whose default action ends the
// process; on a loop thread it must only fail the write. SIGPIPE is set to its default for the
// test (and restored), so that a missing block would end this test binary, not pass unseen.
TEST(LoopThreadTest, WriteToAVanishedPeerFailsWithEpipeInsteadOfEndingTheProcess) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  struct sigaction saved {};
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &saved), 0);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ::close(fds[1]);  // the peer vanishes
  LoopThread lt("io-test");
  ASSERT_TRUE(lt.start().isOk());
  std::atomic<int> result{0};
  std::atomic<int> error{0};
  ASSERT_TRUE(lt.post([&] {
    const char byte = 'x';
    const ssize_t n = ::write(fds[0], &byte, 1);
    error.store(n < 0 ? errno : 0);
    result.store(n < 0 ? -1 : 1);
  }));
  lt.stop();
  ::close(fds[0]);
  ASSERT_EQ(::sigaction(SIGPIPE, &saved, nullptr), 0);
  EXPECT_EQ(result.load(), -1);
  EXPECT_EQ(error.load(), EPIPE);
}

TEST(LoopThreadTest, PostBeforeStartAndAfterStopIsRejected) {
  LoopThread lt("io-test");
  EXPECT_FALSE(lt.post([] {}));
  ASSERT_TRUE(lt.start().isOk());
  EXPECT_FALSE(lt.start().isOk()) << "second start must fail";
  lt.stop();
  lt.stop();  // Idempotent.
  auto guard = std::make_shared<int>(0);
  EXPECT_FALSE(lt.post([g = guard] {}));
  EXPECT_EQ(guard.use_count(), 1);
  EXPECT_EQ(lt.rejectedPosts(), 2u);
}

// Handles created on the loop thread and torn down by a post before stop(): the loop closes
// cleanly (a leak would be a HUB_BUG, which aborts in debug builds).
TEST(LoopThreadTest, HandlesTornDownByPostBeforeStop) {
  LoopThread lt("io-test");
  ASSERT_TRUE(lt.start().isOk());
  std::unique_ptr<Timer> timer;  // Owned here but touched only on the loop thread.
  std::atomic<int> fired{0};
  ASSERT_TRUE(lt.post([&] {
    timer = std::make_unique<Timer>(*lt.loop(), [&] { fired.fetch_add(1); });
    timer->enable(std::chrono::milliseconds(0), std::chrono::milliseconds(1));
  }));
  // Wait (without sleeping for correctness) until the timer has fired at least once.
  while (fired.load() == 0) std::this_thread::yield();
  ASSERT_TRUE(lt.post([&] { timer.reset(); }));
  lt.stop();
  EXPECT_EQ(timer, nullptr);
  EXPECT_GE(fired.load(), 1);
}

TEST(LoopThreadTest, DestructorStops) {
  std::atomic<int> ran{0};
  {
    LoopThread lt("io-test");
    ASSERT_TRUE(lt.start().isOk());
    ASSERT_TRUE(lt.post([&] { ran.fetch_add(1); }));
  }
  EXPECT_EQ(ran.load(), 1);
}

// Concurrent post() and stop(): every post that returned true has run; no crash, no race.
TEST(LoopThreadTest, PostRacingStopEitherRunsOrIsRejected) {
  for (int round = 0; round < 20; ++round) {
    LoopThread lt("io-test");
    ASSERT_TRUE(lt.start().isOk());
    std::atomic<int> accepted{0};
    std::atomic<int> ran{0};
    std::atomic<bool> go{false};
    std::thread poster([&] {
      go.store(true);
      for (int i = 0; i < 2000; ++i) {
        if (lt.post([&] { ran.fetch_add(1); })) accepted.fetch_add(1);
      }
    });
    while (!go.load()) std::this_thread::yield();
    lt.stop();
    poster.join();
    EXPECT_EQ(ran.load(), accepted.load());
  }
}

}  // namespace
}  // namespace edgehub::core
