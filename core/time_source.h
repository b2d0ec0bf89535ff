#pragma once
// Clock injection (style rule 29). Nothing in the hub reads the clock directly: it asks a
// TimeSource, so tests drive time explicitly and never depend on wall time.
//
// Thread-safety: implementations state their own; SimulatedTimeSource is safe from any thread.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace edgehub::core {

using MonotonicTime = std::chrono::steady_clock::time_point;
using SystemTime = std::chrono::system_clock::time_point;

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  // Monotonic time for timeouts and intervals.
  virtual MonotonicTime monotonicTime() const = 0;
  // Wall-clock time for timestamps that leave the process (enqueuedTime, TTL across restarts).
  virtual SystemTime systemTime() const = 0;
};

// The real clocks.
class RealTimeSource final : public TimeSource {
 public:
  MonotonicTime monotonicTime() const override { return std::chrono::steady_clock::now(); }
  SystemTime systemTime() const override { return std::chrono::system_clock::now(); }
};

// A clock that moves only when told to. Starts at a fixed, arbitrary instant.
class SimulatedTimeSource final : public TimeSource {
 public:
  explicit SimulatedTimeSource(std::chrono::nanoseconds start_since_epoch =
                                   std::chrono::seconds(1'700'000'000))
      : now_ns_(start_since_epoch.count()) {}

  MonotonicTime monotonicTime() const override {
    return MonotonicTime(std::chrono::nanoseconds(now_ns_.load(std::memory_order_acquire)));
  }
  SystemTime systemTime() const override {
    return SystemTime(std::chrono::duration_cast<SystemTime::duration>(
        std::chrono::nanoseconds(now_ns_.load(std::memory_order_acquire))));
  }
  void advance(std::chrono::nanoseconds by) { now_ns_.fetch_add(by.count(), std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace edgehub::core
