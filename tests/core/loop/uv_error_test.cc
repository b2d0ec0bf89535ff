#include "core/loop/uv_error.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace edgehub::core {
namespace {

// <uv.h> stays inside core/loop/ (style rule 2), so the test spells libuv's codes the way libuv
// defines them on Unix: UV_Exxx == -Exxx, and kUvEof == -4095.
constexpr int kUvEof = -4095;

TEST(UvErrorTest, NonNegativeIsOk) {
  EXPECT_TRUE(fromUv(0).isOk());
  EXPECT_TRUE(fromUv(17).isOk());  // Byte counts from uv_try_write are successes.
}

TEST(UvErrorTest, MapsCodesAndKeepsLibuvName) {
  EXPECT_EQ(fromUv(-EINVAL).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fromUv(-EADDRINUSE).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(fromUv(-EACCES).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(fromUv(-EMFILE).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(fromUv(-ECANCELED).code(), StatusCode::kCancelled);
  EXPECT_EQ(fromUv(-ECONNRESET).code(), StatusCode::kUnavailable);
  EXPECT_EQ(fromUv(kUvEof).code(), StatusCode::kUnavailable);
  EXPECT_EQ(fromUv(-EIO).code(), StatusCode::kIoError);
  const Status s = fromUv(-ECONNREFUSED);
  EXPECT_NE(s.message().find("ECONNREFUSED"), std::string_view::npos) << s.toString();
}

}  // namespace
}  // namespace edgehub::core
