#include "bench/loadgen/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace edgehub::bench {

LatencyHistogram::LatencyHistogram() : buckets_(kBucketCount, 0) {}

int LatencyHistogram::bucketOf(uint64_t value) {
  if (value < 128) return static_cast<int>(value);
  int msb = 63 - std::countl_zero(value);  // >= 7
  int shift = msb - kSubBits;              // >= 1
  return 128 + (shift - 1) * 64 + static_cast<int>((value >> shift) - 64);
}

uint64_t LatencyHistogram::bucketLow(int bucket) {
  if (bucket < 128) return static_cast<uint64_t>(bucket);
  int shift = (bucket - 128) / 64 + 1;
  uint64_t mantissa = 64 + static_cast<uint64_t>((bucket - 128) % 64);
  return mantissa << shift;
}

uint64_t LatencyHistogram::bucketHigh(int bucket) {
  if (bucket < 128) return static_cast<uint64_t>(bucket) + 1;
  int shift = (bucket - 128) / 64 + 1;
  return bucketLow(bucket) + (uint64_t{1} << shift);
}

void LatencyHistogram::record(uint64_t value_ns) {
  ++buckets_[static_cast<size_t>(bucketOf(value_ns))];
  ++count_;
  max_ = std::max(max_, value_ns);
  min_ = std::min(min_, value_ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
}

uint64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int b = 0; b < kBucketCount; ++b) {
    seen += buckets_[static_cast<size_t>(b)];
    if (seen >= rank) {
      uint64_t low = bucketLow(b);
      uint64_t mid = low + (bucketHigh(b) - low) / 2;
      if (b < 128) mid = low;  // exact buckets
      return std::clamp(mid, min(), max_);
    }
  }
  return max_;
}

}  // namespace edgehub::bench
