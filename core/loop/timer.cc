#include "core/loop/timer.h"

#include "core/loop/uv_handle.h"

namespace edgehub::core {

Timer::Timer(Loop& loop, MoveOnlyFn on_fire)
    : loop_(loop), on_fire_(std::move(on_fire)), handle_(uvdetail::allocate<uv_timer_t>(this)) {
  HUB_ASSERT(loop_.isThreadSafe(), "Timer created off the loop thread");
  uv_timer_init(loop_.uvLoop(), handle_);  // Cannot fail.
}

Timer::~Timer() {
  HUB_ASSERT(loop_.isThreadSafe(), "Timer destroyed off the loop thread");
  uvdetail::closeAndFree(handle_);  // Closing stops it; no callback can follow.
}

void Timer::enable(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat) {
  HUB_ASSERT(loop_.isThreadSafe(), "Timer used off the loop thread");
  const auto to_ms = [](std::chrono::milliseconds d) -> uint64_t {
    return d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
  };
  // uv_timer_start fails only on a closing handle or a null callback; neither is possible here.
  uv_timer_start(handle_, &Timer::onTimer, to_ms(timeout), to_ms(repeat));
}

void Timer::disable() {
  HUB_ASSERT(loop_.isThreadSafe(), "Timer used off the loop thread");
  uv_timer_stop(handle_);
}

bool Timer::enabled() const { return uv_is_active(reinterpret_cast<uv_handle_t*>(handle_)) != 0; }

void Timer::onTimer(uv_timer_s* handle) noexcept {
  auto* self = static_cast<Timer*>(handle->data);
  if (self == nullptr || !self->on_fire_) return;
  self->on_fire_();
}

}  // namespace edgehub::core
