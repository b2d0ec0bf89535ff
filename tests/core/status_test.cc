#include "core/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace edgehub::core {
namespace {

TEST(StatusTest, DefaultIsOkAndCheap) {
  Status s;
  EXPECT_TRUE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.toString(), "OK");
  EXPECT_EQ(sizeof(Status), sizeof(void*));
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = invalidArgument("bad priority");
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bad priority");
  EXPECT_EQ(s.toString(), "INVALID_ARGUMENT: bad priority");
}

TEST(StatusTest, CopyIsDeepAndMoveEmpties) {
  Status a = ioError("disk");
  Status b = a;
  EXPECT_EQ(a, b);
  Status c = std::move(a);
  EXPECT_EQ(c.message(), "disk");
  b = Status::ok();
  EXPECT_TRUE(b.isOk());
  EXPECT_EQ(c.message(), "disk");
}

TEST(StatusTest, WithContextPrefixes) {
  EXPECT_EQ(notFound("x").withContext("loading m.json").message(), "loading m.json: x");
  EXPECT_TRUE(Status::ok().withContext("ctx").isOk());
}

TEST(StatusTest, EveryCodeHasAName) {
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    EXPECT_NE(statusCodeName(static_cast<StatusCode>(c)), "UNKNOWN") << c;
  }
}

Result<int> half(int v) {
  if (v % 2 != 0) return invalidArgument("odd");
  return v / 2;
}

Result<int> quarter(int v) {
  HUB_ASSIGN_OR_RETURN(int h, half(v));
  HUB_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

Status checkEven(int v) {
  HUB_RETURN_IF_ERROR(half(v).status());
  return Status::ok();
}

TEST(ResultTest, ValueOrStatusAndPropagation) {
  EXPECT_EQ(quarter(8).value(), 2);
  EXPECT_FALSE(quarter(6).isOk());
  EXPECT_EQ(quarter(6).status().message(), "odd");
  EXPECT_TRUE(checkEven(4).isOk());
  EXPECT_EQ(checkEven(3).code(), StatusCode::kInvalidArgument);
}

TEST(ResultTest, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(5));
  ASSERT_TRUE(r.isOk());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> r = internalError("boom");
  EXPECT_DEATH({ (void)r.value(); }, "Result::value\\(\\) on an error");
}

}  // namespace
}  // namespace edgehub::core
