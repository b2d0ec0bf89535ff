#include "core/loop/move_only_fn.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>

namespace edgehub::core {
namespace {

TEST(MoveOnlyFnTest, EmptyByDefault) {
  MoveOnlyFn fn;
  EXPECT_FALSE(fn);
  MoveOnlyFn null_fn = nullptr;
  EXPECT_FALSE(null_fn);
}

TEST(MoveOnlyFnTest, HoldsMoveOnlyCaptureInline) {
  auto p = std::make_unique<int>(41);
  int seen = 0;
  MoveOnlyFn fn = [p = std::move(p), &seen] { seen = ++*p; };
  ASSERT_TRUE(fn);
  fn();
  EXPECT_EQ(seen, 42);
  MoveOnlyFn moved = std::move(fn);
  EXPECT_FALSE(fn);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract.
  moved();
  EXPECT_EQ(seen, 43);
}

TEST(MoveOnlyFnTest, LargeCallableGoesToHeapAndStillWorks) {
  std::array<char, 200> big{};
  big[199] = 7;
  int seen = 0;
  MoveOnlyFn fn = [big, &seen] { seen = big[199]; };
  MoveOnlyFn moved = std::move(fn);
  moved();
  EXPECT_EQ(seen, 7);
}

TEST(MoveOnlyFnTest, DestroysCaptureExactlyOnce) {
  auto shared = std::make_shared<int>(0);
  {
    MoveOnlyFn a = [s = shared] {};
    EXPECT_EQ(shared.use_count(), 2);
    MoveOnlyFn b = std::move(a);
    EXPECT_EQ(shared.use_count(), 2);
    MoveOnlyFn c;
    c = std::move(b);
    EXPECT_EQ(shared.use_count(), 2);
    c.reset();
    EXPECT_EQ(shared.use_count(), 1);
    c = [s = shared] {};
    EXPECT_EQ(shared.use_count(), 2);
  }
  EXPECT_EQ(shared.use_count(), 1);
}

TEST(MoveOnlyFnTest, ArgumentsAndReturnValue) {
  MoveOnlyFunction<int(int, std::unique_ptr<int>)> fn = [](int a, std::unique_ptr<int> b) {
    return a + *b;
  };
  EXPECT_EQ(fn(2, std::make_unique<int>(3)), 5);
}

}  // namespace
}  // namespace edgehub::core
