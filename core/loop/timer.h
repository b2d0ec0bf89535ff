#pragma once
// Timer: a one-shot or repeating timer on a Loop (uv_timer_t).
//
// Thread-safety: not thread-safe; every method REQUIRES: on loop thread.
// Ownership: the caller owns the Timer; it must be destroyed before its Loop is closed. The
// libuv handle is heap memory released in its close callback, after the Timer is gone.
// Callbacks: the callback runs on the loop thread. Destroying the Timer cancels it: a callback
// never runs after the destructor. Do not destroy a Timer from inside its own callback (the
// callable being run would be freed); hand it to Loop::deferredDelete() instead.
#include <chrono>
#include <memory>

#include "core/loop/loop.h"
#include "core/loop/move_only_fn.h"

struct uv_timer_s;

namespace edgehub::core {

class Timer {
 public:
  Timer(Loop& loop, MoveOnlyFn on_fire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // (Re)arms the timer: first fire after timeout (measured from the loop's cached now), then
  // every repeat if repeat > 0. Re-arming an armed timer replaces its schedule.
  void enable(std::chrono::milliseconds timeout,
              std::chrono::milliseconds repeat = std::chrono::milliseconds(0));
  void disable();
  bool enabled() const;

 private:
  static void onTimer(uv_timer_s* handle) noexcept;

  Loop& loop_;
  MoveOnlyFn on_fire_;
  uv_timer_s* handle_;
};
using TimerPtr = std::unique_ptr<Timer>;

}  // namespace edgehub::core
