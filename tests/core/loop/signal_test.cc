#include "core/loop/signal.h"

#include <gtest/gtest.h>

#include <csignal>

#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using testing::makeLoop;

TEST(SignalTest, RaisedSignalRunsCallbackOnLoop) {
  LoopPtr loop = makeLoop();
  int got = 0;
  bool on_loop = false;
  {
    Result<SignalPtr> signal = Signal::create(*loop, SIGUSR1, [&](int signum) {
      got = signum;
      on_loop = loop->isThreadSafe();
      loop->stop();
    });
    ASSERT_TRUE(signal.isOk()) << signal.status().toString();
    EXPECT_EQ(signal.value()->signum(), SIGUSR1);
    ASSERT_EQ(std::raise(SIGUSR1), 0);  // Would kill the test if the handler were missing.
    loop->run();
  }
  EXPECT_EQ(got, SIGUSR1);
  EXPECT_TRUE(on_loop);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(SignalTest, SigtermIsWatchable) {
  LoopPtr loop = makeLoop();
  int got = 0;
  {
    Result<SignalPtr> signal = Signal::create(*loop, SIGTERM, [&](int signum) {
      got = signum;
      loop->stop();
    });
    ASSERT_TRUE(signal.isOk()) << signal.status().toString();
    ASSERT_EQ(std::raise(SIGTERM), 0);
    loop->run();
  }
  EXPECT_EQ(got, SIGTERM);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(SignalTest, InvalidSignalFails) {
  LoopPtr loop = makeLoop();
  Result<SignalPtr> signal = Signal::create(*loop, 100000, [](int) {});
  EXPECT_FALSE(signal.isOk());
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core
