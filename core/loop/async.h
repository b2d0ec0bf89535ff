#pragma once
// Async: a cross-thread wake-up (uv_async_t). send() from any thread makes the callback run on
// the loop thread. Sends coalesce: N sends before the loop wakes give ONE callback, so the
// callback must treat itself as "something happened", never as "one thing happened"
// (style anti-pattern 5). For passing work across threads use Loop::post(), which is built on
// this rule.
//
// Thread-safety: send() is safe from any thread while the Async is alive; the constructor and
// destructor REQUIRE: on loop thread. The caller must make sure no thread is inside or about
// to call send() when the Async is destroyed.
// Ownership: the caller owns the Async; destroy it before its Loop is closed.
// Callbacks: on the loop thread; never after the destructor.
#include <memory>

#include "core/loop/loop.h"
#include "core/loop/move_only_fn.h"

struct uv_async_s;

namespace edgehub::core {

class Async {
 public:
  Async(Loop& loop, MoveOnlyFn on_wake);
  ~Async();
  Async(const Async&) = delete;
  Async& operator=(const Async&) = delete;

  // Any thread.
  void send();

 private:
  Loop& loop_;
  MoveOnlyFn on_wake_;
  uv_async_s* handle_;
};
using AsyncPtr = std::unique_ptr<Async>;

}  // namespace edgehub::core
