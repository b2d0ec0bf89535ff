#pragma once
// Shared by the loop tests: create a Loop, and close it asserting that nothing leaked
// (style rule 47: every loop test ends with uv_loop_close() == 0).
#include <gtest/gtest.h>

#include "core/loop/loop.h"

namespace edgehub::core::testing {

inline LoopPtr makeLoop(Loop::Options options = {}) {
  Result<LoopPtr> loop = Loop::create(options);
  EXPECT_TRUE(loop.isOk()) << loop.status().toString();
  return std::move(loop).value();
}

// Loop::close() returns OK iff uv_loop_close() returned 0.
#define EXPECT_LOOP_CLOSES_CLEANLY(loop)                      \
  do {                                                        \
    ::edgehub::core::Status close_status_ = (loop)->close();  \
    EXPECT_TRUE(close_status_.isOk()) << close_status_.toString(); \
  } while (0)

}  // namespace edgehub::core::testing
