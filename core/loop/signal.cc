#include "core/loop/signal.h"

#include "core/loop/uv_error.h"
#include "core/loop/uv_handle.h"

namespace edgehub::core {

Result<SignalPtr> Signal::create(Loop& loop, int signum, Callback on_signal) {
  HUB_ASSERT(loop.isThreadSafe(), "Signal created off the loop thread");
  SignalPtr signal(new Signal(loop, signum, std::move(on_signal)));
  int rc = uv_signal_init(loop.uvLoop(), signal->handle_);
  if (rc != 0) {
    // Not initialised, so not a handle yet: free directly and disarm the destructor.
    std::free(signal->handle_);
    signal->handle_ = nullptr;
    return fromUv(rc).withContext("uv_signal_init");
  }
  rc = uv_signal_start(
      signal->handle_,
      [](uv_signal_t* h, int signo) noexcept {
        auto* self = static_cast<Signal*>(h->data);
        if (self != nullptr && self->on_signal_) self->on_signal_(signo);
      },
      signum);
  if (rc != 0) return fromUv(rc).withContext("uv_signal_start");  // ~Signal closes the handle.
  return signal;
}

Signal::Signal(Loop& loop, int signum, Callback on_signal)
    : loop_(loop),
      signum_(signum),
      on_signal_(std::move(on_signal)),
      handle_(uvdetail::allocate<uv_signal_t>(this)) {}

Signal::~Signal() {
  HUB_ASSERT(loop_.isThreadSafe(), "Signal destroyed off the loop thread");
  uvdetail::closeAndFree(handle_);
}

}  // namespace edgehub::core
