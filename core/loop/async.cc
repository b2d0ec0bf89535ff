#include "core/loop/async.h"

#include "core/loop/uv_handle.h"

namespace edgehub::core {

Async::Async(Loop& loop, MoveOnlyFn on_wake)
    : loop_(loop), on_wake_(std::move(on_wake)), handle_(uvdetail::allocate<uv_async_t>(this)) {
  HUB_ASSERT(loop_.isThreadSafe(), "Async created off the loop thread");
  // uv_async_init fails only if the loop's wake-up fd cannot be created, and Loop::create()
  // already created it.
  const int rc = uv_async_init(loop_.uvLoop(), handle_, [](uv_async_t* h) noexcept {
    auto* self = static_cast<Async*>(h->data);
    if (self != nullptr && self->on_wake_) self->on_wake_();
  });
  HUB_RELEASE_ASSERT(rc == 0, "uv_async_init failed after loop init");
}

Async::~Async() {
  HUB_ASSERT(loop_.isThreadSafe(), "Async destroyed off the loop thread");
  uvdetail::closeAndFree(handle_);
}

void Async::send() { uv_async_send(handle_); }

}  // namespace edgehub::core
