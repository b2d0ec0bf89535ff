#pragma once
// Signal: watches one POSIX signal (SIGINT, SIGTERM, ...) on a Loop (uv_signal_t). libuv's
// process-wide handler only writes to a pipe; the callback runs later on the loop thread, so it
// may do anything (unlike a raw signal handler).
//
// Thread-safety: not thread-safe; REQUIRES: on loop thread. Watch a signal on one loop only (the
// hub's main loop); libuv delivers a signal to every loop that watches it.
// Ownership: the caller owns the Signal; destroy it before its Loop is closed. While a Signal
// exists, the signal's default action (e.g. terminate) is replaced by the callback.
// Callbacks: on the loop thread, with the signal number; never after the destructor.
#include <memory>

#include "core/loop/loop.h"
#include "core/loop/move_only_fn.h"
#include "core/status.h"

struct uv_signal_s;

namespace edgehub::core {

class Signal;
using SignalPtr = std::unique_ptr<Signal>;

class Signal {
 public:
  using Callback = MoveOnlyFunction<void(int signum)>;

  // Starts watching signum. Fails if libuv cannot install the handler (e.g. invalid signum).
  static Result<SignalPtr> create(Loop& loop, int signum, Callback on_signal);
  ~Signal();
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  int signum() const { return signum_; }

 private:
  Signal(Loop& loop, int signum, Callback on_signal);

  Loop& loop_;
  int signum_;
  Callback on_signal_;
  uv_signal_s* handle_;
};

}  // namespace edgehub::core
