#include "core/loop/loop_time_source.h"

#include <gtest/gtest.h>

#include <chrono>

#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using testing::makeLoop;

// The clock is cached: busy work inside one callback does not move it; updateTime() (which a
// new loop iteration does implicitly) does. No sleeping: we spin on the real clock until it has
// visibly advanced, so the check is deterministic.
TEST(LoopTimeSourceTest, IsCachedUntilTheLoopUpdatesTime) {
  LoopPtr loop = makeLoop();
  LoopTimeSource clock(*loop);
  const MonotonicTime before = clock.monotonicTime();
  const auto spin_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(10);
  while (std::chrono::steady_clock::now() < spin_until) {
  }
  EXPECT_EQ(clock.monotonicTime(), before) << "monotonicTime must be the cached loop time";
  loop->updateTime();
  const MonotonicTime after = clock.monotonicTime();
  EXPECT_GT(after, before);  // Even a 4 ms coarse clock has ticked in 10 ms.
  // Same epoch as steady_clock (both CLOCK_MONOTONIC), within the 1 ms truncation.
  const auto skew = std::chrono::steady_clock::now() - after;
  EXPECT_GE(skew, std::chrono::milliseconds(0));
  EXPECT_LT(skew, std::chrono::seconds(1));
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(LoopTimeSourceTest, SystemTimeIsWallClock) {
  LoopPtr loop = makeLoop();
  LoopTimeSource clock(*loop);
  const auto now = std::chrono::system_clock::now();
  EXPECT_LT(std::chrono::abs(clock.systemTime() - now), std::chrono::seconds(5));
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core
