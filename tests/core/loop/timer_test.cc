#include "core/loop/timer.h"

#include <gtest/gtest.h>

#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using std::chrono::milliseconds;
using testing::makeLoop;

TEST(TimerTest, OneShotFiresOnce) {
  LoopPtr loop = makeLoop();
  int fired = 0;
  {
    Timer timer(*loop, [&] {
      ++fired;
      loop->stop();
    });
    timer.enable(milliseconds(1));
    EXPECT_TRUE(timer.enabled());
    loop->run();
    EXPECT_FALSE(timer.enabled());
    // A one-shot timer is inactive now; further iterations must not fire it again.
    loop->runNoWait();
  }
  EXPECT_EQ(fired, 1);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(TimerTest, RepeatingTimerFiresUntilDisabled) {
  LoopPtr loop = makeLoop();
  int fired = 0;
  {
    Timer* self = nullptr;
    Timer timer(*loop, [&] {
      if (++fired == 3) {
        self->disable();
        loop->stop();
      }
    });
    self = &timer;
    timer.enable(milliseconds(0), milliseconds(1));
    loop->run();
    EXPECT_FALSE(timer.enabled());
  }
  EXPECT_EQ(fired, 3);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// Ordering, not timing: a disabled timer never fires even after a later timer has fired.
TEST(TimerTest, DisabledTimerNeverFires) {
  LoopPtr loop = makeLoop();
  bool a_fired = false;
  {
    Timer a(*loop, [&] { a_fired = true; });
    Timer b(*loop, [&] { loop->stop(); });
    a.enable(milliseconds(0));
    b.enable(milliseconds(2));
    a.disable();
    loop->run();
  }
  EXPECT_FALSE(a_fired);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// Destroying an armed timer (its callback pending) cancels it and frees the handle in close_cb.
TEST(TimerTest, DestroyWhileArmedCancels) {
  LoopPtr loop = makeLoop();
  bool fired = false;
  {
    auto timer = std::make_unique<Timer>(*loop, [&] { fired = true; });
    timer->enable(milliseconds(0));
    Timer stopper(*loop, [&] { loop->stop(); });
    stopper.enable(milliseconds(2));
    timer.reset();  // Due already (timeout 0) but not yet run.
    loop->run();
  }
  EXPECT_FALSE(fired);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// One timer destroying ANOTHER timer whose expiry is due in the same iteration.
TEST(TimerTest, DestroyOtherTimerFromCallbackInSameIteration) {
  LoopPtr loop = makeLoop();
  int second_fired = 0;
  {
    auto second = std::make_unique<Timer>(*loop, [&] { ++second_fired; });
    Timer first(*loop, [&] {
      second.reset();
      loop->stop();
    });
    first.enable(milliseconds(0));
    second->enable(milliseconds(0));  // Same due time; started after first, so it runs after.
    loop->run();
  }
  EXPECT_EQ(second_fired, 0);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core
