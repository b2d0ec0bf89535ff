#pragma once
// LatencyHistogram: a fixed-size log-linear histogram of nanosecond latencies for the load
// generator. Values below 128 ns have exact buckets; above, each power of two is split into 64
// buckets, so a reported percentile is within ~1.6% of the true value. Why fixed-size: record()
// runs once per delivered message and must not allocate (style rule 31); merging the
// histograms of several receivers is a plain element-wise sum.
//
// Thread-safety: none; one histogram per receiver (one loop thread), merged after the run.
// Ownership: a value type (about 30 KB of counters, heap-allocated once at construction).
#include <cstdint>
#include <vector>

namespace edgehub::bench {

class LatencyHistogram {
 public:
  LatencyHistogram();

  void record(uint64_t value_ns);
  void merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  // The value below which a fraction p (0..1] of the recorded values lie: the midpoint of the
  // bucket holding the ceil(p * count)-th smallest value, clamped to [min, max]. 0 if empty.
  uint64_t percentile(double p) const;

  static constexpr int kSubBits = 6;
  static constexpr int kBucketCount = 128 + 57 * 64;
  static int bucketOf(uint64_t value);
  static uint64_t bucketLow(int bucket);
  static uint64_t bucketHigh(int bucket);  // exclusive

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
};

}  // namespace edgehub::bench
