#pragma once
// Poll: readiness notifications for a file descriptor the caller owns (uv_poll_t). Used to run
// libmosquitto on our loop (style rule 25): poll mosquitto_socket(), call mosquitto_loop_read/
// write when ready.
//
// Thread-safety: not thread-safe; REQUIRES: on loop thread.
// Ownership: the caller owns both the Poll and the fd. Destroy the Poll BEFORE closing the fd
// (epoll would otherwise watch a recycled descriptor). Destroy it before its Loop is closed.
// Callbacks: PollCallbacks::onPollReady runs on the loop thread; never after the destructor or
// after stop(). Destroying the Poll from inside onPollReady is allowed (the trampoline touches
// nothing after the call).
#include <cstdint>
#include <memory>

#include "core/loop/loop.h"
#include "core/status.h"

struct uv_poll_s;

namespace edgehub::core {

// Event bits for Poll::start() and onPollReady().
enum PollEvents : uint32_t {
  kPollReadable = 1u << 0,
  kPollWritable = 1u << 1,
  kPollDisconnect = 1u << 2,  // Peer hung up (EPOLLRDHUP); reported only if requested.
};

class PollCallbacks {
 public:
  virtual ~PollCallbacks() = default;
  // events: the ready PollEvents bits. A non-OK status (e.g. EBADF) means polling failed; the
  // events are then meaningless and the Poll has been stopped.
  virtual void onPollReady(uint32_t events, const Status& status) = 0;
};

class Poll;
using PollPtr = std::unique_ptr<Poll>;

class Poll {
 public:
  // callbacks must outlive the Poll. Fails for an fd epoll cannot watch (e.g. a regular file).
  static Result<PollPtr> create(Loop& loop, int fd, PollCallbacks& callbacks);
  ~Poll();
  Poll(const Poll&) = delete;
  Poll& operator=(const Poll&) = delete;

  // Starts or changes the watched set (a PollEvents mask). Level-triggered: the callback keeps
  // firing while the condition holds.
  Status start(uint32_t events);
  void stop();
  int fd() const { return fd_; }

 private:
  Poll(Loop& loop, int fd, PollCallbacks& callbacks);

  Loop& loop_;
  int fd_;
  PollCallbacks& callbacks_;
  uv_poll_s* handle_;
};

}  // namespace edgehub::core
