#include "bench/loadgen/latency_histogram.h"

#include <gtest/gtest.h>

namespace edgehub::bench {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(0.50), 50u);
  EXPECT_EQ(h.percentile(0.99), 99u);
  EXPECT_EQ(h.percentile(1.0), 100u);
  EXPECT_EQ(h.max(), 100u);
}

TEST(LatencyHistogramTest, PercentilesOfUniformMicroseconds) {
  LatencyHistogram h;
  for (uint64_t us = 1; us <= 10000; ++us) h.record(us * 1000);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.50)), 5'000'000.0, 5'000'000.0 * 0.02);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.99)), 9'900'000.0, 9'900'000.0 * 0.02);
  EXPECT_EQ(h.max(), 10'000'000u);
  EXPECT_EQ(h.count(), 10000u);
}

TEST(LatencyHistogramTest, SkewedDataAndOutlier) {
  LatencyHistogram h;
  for (int i = 0; i < 990; ++i) h.record(20'000);  // 20 us
  for (int i = 0; i < 10; ++i) h.record(5'000'000);  // 5 ms tail
  EXPECT_NEAR(static_cast<double>(h.percentile(0.50)), 20'000.0, 400.0);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.99)), 20'000.0, 400.0);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.999)), 5'000'000.0, 100'000.0);
  EXPECT_EQ(h.max(), 5'000'000u);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a, b;
  for (int i = 0; i < 100; ++i) a.record(1000);
  for (int i = 0; i < 100; ++i) b.record(3000);
  a.merge(b);
  EXPECT_EQ(a.count(), 200u);
  EXPECT_EQ(a.max(), 3000u);
  EXPECT_NEAR(static_cast<double>(a.percentile(0.25)), 1000.0, 20.0);
  EXPECT_NEAR(static_cast<double>(a.percentile(0.75)), 3000.0, 60.0);
}

TEST(LatencyHistogramTest, BucketsCoverEveryValue) {
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{1} << 40, UINT64_MAX}) {
    int b = LatencyHistogram::bucketOf(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, LatencyHistogram::kBucketCount);
    EXPECT_LE(LatencyHistogram::bucketLow(b), v);
    if (v != UINT64_MAX) {
      EXPECT_GT(LatencyHistogram::bucketHigh(b), v);
    }
  }
}

}  // namespace
}  // namespace edgehub::bench
