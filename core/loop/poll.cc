#include "core/loop/poll.h"

#include "core/loop/uv_error.h"
#include "core/loop/uv_handle.h"

namespace edgehub::core {

Result<PollPtr> Poll::create(Loop& loop, int fd, PollCallbacks& callbacks) {
  HUB_ASSERT(loop.isThreadSafe(), "Poll created off the loop thread");
  PollPtr poll(new Poll(loop, fd, callbacks));
  const int rc = uv_poll_init(loop.uvLoop(), poll->handle_, fd);
  if (rc != 0) {
    std::free(poll->handle_);  // Never became a handle: free directly.
    poll->handle_ = nullptr;
    return fromUv(rc).withContext("uv_poll_init");
  }
  return poll;
}

Poll::Poll(Loop& loop, int fd, PollCallbacks& callbacks)
    : loop_(loop), fd_(fd), callbacks_(callbacks), handle_(uvdetail::allocate<uv_poll_t>(this)) {}

Poll::~Poll() {
  HUB_ASSERT(loop_.isThreadSafe(), "Poll destroyed off the loop thread");
  uvdetail::closeAndFree(handle_);
}

Status Poll::start(uint32_t events) {
  HUB_ASSERT(loop_.isThreadSafe(), "Poll used off the loop thread");
  int uv_events = 0;
  if (events & kPollReadable) uv_events |= UV_READABLE;
  if (events & kPollWritable) uv_events |= UV_WRITABLE;
  if (events & kPollDisconnect) uv_events |= UV_DISCONNECT;
  const int rc = uv_poll_start(handle_, uv_events, [](uv_poll_t* h, int status, int ev) noexcept {
    auto* self = static_cast<Poll*>(h->data);
    if (self == nullptr) return;
    if (status < 0) {
      uv_poll_stop(h);  // libuv leaves the watcher armed; stop it so we do not spin on errors.
      self->callbacks_.onPollReady(0, fromUv(status));
      return;
    }
    uint32_t out = 0;
    if (ev & UV_READABLE) out |= kPollReadable;
    if (ev & UV_WRITABLE) out |= kPollWritable;
    if (ev & UV_DISCONNECT) out |= kPollDisconnect;
    self->callbacks_.onPollReady(out, Status::ok());
  });
  return fromUv(rc);
}

void Poll::stop() {
  HUB_ASSERT(loop_.isThreadSafe(), "Poll used off the loop thread");
  uv_poll_stop(handle_);
}

}  // namespace edgehub::core
