#include "core/loop/loop_time_source.h"

#include <chrono>

namespace edgehub::core {

MonotonicTime LoopTimeSource::monotonicTime() const {
  HUB_ASSERT(loop_.isThreadSafe(), "LoopTimeSource::monotonicTime() off the loop thread");
  return MonotonicTime(std::chrono::milliseconds(loop_.nowMs()));
}

SystemTime LoopTimeSource::systemTime() const { return std::chrono::system_clock::now(); }

}  // namespace edgehub::core
