#include "bench/loadgen/sequence_checker.h"

#include <gtest/gtest.h>

#include <vector>

namespace edgehub::bench {
namespace {

TEST(SequenceCheckerTest, InOrderFromSeveralPublishersIsOk) {
  SequenceChecker c(2, "recv0");
  for (uint64_t s = 0; s < 100; ++s) {
    c.record(0, s);
    c.record(1, s);
  }
  std::vector<uint64_t> expected = {100, 100};
  c.finish(expected);
  EXPECT_TRUE(c.ok());
  EXPECT_EQ(c.received(), 200u);
  EXPECT_TRUE(c.problems().empty());
}

TEST(SequenceCheckerTest, DetectsGap) {
  SequenceChecker c(1, "recv0");
  for (uint64_t s : {0, 1, 2, 5, 6}) c.record(0, s);
  std::vector<uint64_t> expected = {7};
  c.finish(expected);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.missing(), 2u);  // 3 and 4
  ASSERT_FALSE(c.problems().empty());
  EXPECT_NE(c.problems()[0].find("expected seq 3, got 5"), std::string::npos) << c.problems()[0];
}

TEST(SequenceCheckerTest, DetectsDuplicate) {
  SequenceChecker c(1);
  for (uint64_t s : {0, 1, 2, 2, 3}) c.record(0, s);
  std::vector<uint64_t> expected = {4};
  c.finish(expected);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.duplicates(), 1u);
  EXPECT_EQ(c.missing(), 0u);
}

TEST(SequenceCheckerTest, DetectsReorderWithoutCountingItMissing) {
  SequenceChecker c(1);
  for (uint64_t s : {0, 2, 1, 3}) c.record(0, s);
  std::vector<uint64_t> expected = {4};
  c.finish(expected);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.reordered(), 1u);
  EXPECT_EQ(c.duplicates(), 0u);
  EXPECT_EQ(c.missing(), 0u);
}

TEST(SequenceCheckerTest, LateMessageInsideALongGapSplitsIt) {
  SequenceChecker c(1);
  for (uint64_t s : {0, 10, 5}) c.record(0, s);
  std::vector<uint64_t> expected = {11};
  c.finish(expected);
  EXPECT_EQ(c.reordered(), 1u);
  EXPECT_EQ(c.missing(), 8u);  // 1-4 and 6-9
}

TEST(SequenceCheckerTest, DetectsMissingTail) {
  SequenceChecker c(2);
  for (uint64_t s = 0; s < 10; ++s) c.record(0, s);
  for (uint64_t s = 0; s < 7; ++s) c.record(1, s);
  std::vector<uint64_t> expected = {10, 10};
  c.finish(expected);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.missing(), 3u);
  ASSERT_FALSE(c.problems().empty());
  EXPECT_NE(c.problems().back().find("missing the last 3"), std::string::npos) << c.problems().back();
}

TEST(SequenceCheckerTest, DetectsUnknownPublisherAndExtraMessages) {
  SequenceChecker c(1);
  c.record(0, 0);
  c.record(0, 1);
  c.record(7, 0);
  std::vector<uint64_t> expected = {1};
  c.finish(expected);
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.unknown(), 2u);  // publisher 7, and seq 1 beyond the one sent
}

}  // namespace
}  // namespace edgehub::bench
