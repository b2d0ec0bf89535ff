#pragma once
// LoopTimeSource: the production TimeSource of code that runs on a Loop (style rule 29).
// monotonicTime() is the loop's cached uv_now(), refreshed once per loop iteration, so reading
// the clock on the hot path costs a load instead of a clock_gettime, and every callback of one
// iteration sees the same "now". Resolution is one millisecond; libuv uses CLOCK_MONOTONIC, the
// same clock as std::chrono::steady_clock on Linux, so values compare with steady_clock ones.
// systemTime() is not cached (wall time is used rarely: enqueuedTime stamps, TTL over restarts).
//
// Thread-safety: monotonicTime() REQUIRES: on the loop thread (uv_now reads loop state that
// the loop thread writes). Give each loop its own LoopTimeSource; do not share one across
// threads. systemTime() is safe from any thread.
// Ownership: references the Loop, which must outlive it.
#include "core/loop/loop.h"
#include "core/time_source.h"

namespace edgehub::core {

class LoopTimeSource final : public TimeSource {
 public:
  explicit LoopTimeSource(Loop& loop) : loop_(loop) {}

  // TimeSource
  MonotonicTime monotonicTime() const override;
  SystemTime systemTime() const override;

 private:
  Loop& loop_;
};

}  // namespace edgehub::core
