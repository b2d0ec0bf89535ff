#pragma once
// Loop: owns one libuv loop (uv_loop_t) and the machinery every loop needs: cross-thread post(),
// deferred deletion, and a per-loop read buffer. One Loop per thread (style rule 20); every
// handle wrapper (Timer, Async, Poll, Signal, TcpListener, TcpConnection) belongs to one Loop.
//
// Thread-safety:
//   - post() and requestStop() are safe from any thread while the Loop is alive.
//   - isThreadSafe() is safe from any thread.
//   - Everything else REQUIRES: on the loop thread, i.e. the thread that created the Loop or the
//     thread currently inside run()/runOnce()/runNoWait().
// Ownership: the caller owns the Loop (std::unique_ptr from create()). Every handle wrapper must
// be destroyed before the Loop is closed; close() reports a leaked handle as an error.
// Callbacks: posted functions and deferred deletions run on the loop thread, inside run*().
//
// <uv.h> is not included here: libuv types are forward-declared so that code outside core/loop/
// never sees libuv (style rule 2).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "core/loop/move_only_fn.h"
#include "core/queue/mpsc_queue.h"
#include "core/status.h"

struct uv_loop_s;
struct uv_async_s;
struct uv_check_s;
struct uv_idle_s;

namespace edgehub::core {

// Base of anything handed to Loop::deferredDelete(). Its destructor runs on the loop thread.
class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};
using DeferredDeletablePtr = std::unique_ptr<DeferredDeletable>;

class Loop;
using LoopPtr = std::unique_ptr<Loop>;

// Something that wants to run once at the end of a loop iteration, after every I/O callback and
// posted function of that iteration: the place to flush what those callbacks produced (one
// write per connection per turn instead of one per packet). See Loop::callAtTurnEnd().
class TurnEndHook {
 public:
  virtual void onTurnEnd() = 0;

 protected:
  ~TurnEndHook() = default;
};

class Loop {
 public:
  struct Options {
    // Bound of the cross-thread post() queue (rounded up to a power of two). A full queue makes
    // post() fail and count an overflow rather than grow (style anti-pattern 6); every poster
    // retries (next turn, or yields). The queue's cells are all written when it is built, so
    // its whole size is resident: 8192 cells of 64 bytes are 512 KiB per loop. That is ample,
    // because the hub's posts are batched (one per store commit and reply loop, one per turn and
    // target shard), not one per message; at 64 Ki cells the three loops of a hub held 12 MiB,
    // a fifth of its RSS (massif, docs/benchmarks.md).
    std::size_t post_queue_capacity = 8 * 1024;
    // Size of the per-loop read buffer handed to every TcpConnection's alloc_cb.
    std::size_t read_buffer_size = 64 * 1024;
  };

  // Creates a loop bound to the calling thread. Fails only if libuv cannot create its
  // internal fds (EMFILE and friends).
  static Result<LoopPtr> create(Options options);
  static Result<LoopPtr> create() { return create(Options{}); }

  // Closes everything (see close()); reports a failed close as a bug.
  // REQUIRES: on loop thread, not inside run*().
  ~Loop();

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Runs until stop() or requestStop(). The post() wake-up handle keeps the loop alive, so run()
  // does not return merely because there is no other work. Binds the loop to the calling thread.
  void run();
  // One iteration, blocking for I/O if nothing is ready. Returns true if there is more to do.
  bool runOnce();
  // One iteration without blocking. Returns true if there is more to do.
  bool runNoWait();
  // REQUIRES: on loop thread. Makes the current run*() return at the end of this iteration.
  void stop();
  // Any thread: the loop runs every function posted before this call, then stops. May race
  // with the loop stopping and closing (close() waits for it), but not with ~Loop completing.
  void requestStop();

  // Any thread. Queues fn to run on the loop thread, in FIFO order per producer thread.
  // Returns false, destroys fn without running it and counts an overflow if the queue is full.
  // Posting to a Loop that is being closed or destroyed is a bug: the caller must ensure that
  // every post() has returned before close() (LoopThread gates this for you).
  [[nodiscard]] bool post(MoveOnlyFn fn);
  // Number of post() calls refused because the queue was full.
  uint64_t postOverflowCount() const { return post_overflows_.load(std::memory_order_relaxed); }

  // REQUIRES: on loop thread. Destroys object later on this thread, after the current callback
  // chain has unwound (in the check phase of this iteration or the next). Use it for objects
  // that may die from inside their own callbacks (style rule 15).
  void deferredDelete(DeferredDeletablePtr object);

  // REQUIRES: on loop thread. Calls hook->onTurnEnd() once, in the check phase of this iteration
  // (after the poll phase's I/O callbacks and posted functions). Registering a hook that is
  // already registered is a no-op; a hook registered from inside onTurnEnd() runs next turn.
  // The hook must stay alive until it has run or cancelTurnEnd() removed it.
  void callAtTurnEnd(TurnEndHook* hook);
  void cancelTurnEnd(TurnEndHook* hook);
  // True on the loop's thread.
  bool isThreadSafe() const;

  // REQUIRES: on loop thread. Closes the internal handles, destroys unrun posted functions and
  // pending deferred deletions, runs the loop until every close callback has fired, then calls
  // uv_loop_close(). Returns OK iff uv_loop_close() == 0, i.e. no handle leaked. After an OK
  // close only the destructor may be called. Not OK means a handle wrapper outlived its loop: the
  // loop memory is then deliberately leaked, since the live handle still points into it.
  Status close();

  // REQUIRES: on loop thread. libuv's cached "now" in milliseconds (uv_now), refreshed once per
  // iteration. updateTime() refreshes it now (uv_update_time).
  uint64_t nowMs() const;
  void updateTime();

  // REQUIRES: on loop thread. The per-loop read buffer; contents are valid only until the next
  // read callback on this loop, because every connection of the loop shares it.
  std::span<char> readBuffer() { return {read_buffer_.get(), read_buffer_size_}; }

  // For the wrappers in core/loop/ only.
  uv_loop_s* uvLoop() { return loop_; }

 private:
  explicit Loop(const Options& options);
  Status init();
  void onAsync() noexcept;
  void onCheck() noexcept;
  void drainDeferred() noexcept;
  void armCheck();
  void bindToThisThread() { thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed); }

  uv_loop_s* loop_ = nullptr;  // Heap; freed after a successful uv_loop_close().
  uv_async_s* async_ = nullptr;  // Wakes the loop for post()/requestStop().
  uv_check_s* check_ = nullptr;  // Drains deferred_ after the poll phase.
  uv_idle_s* idle_ = nullptr;    // Active while deferred_ is non-empty so poll does not block.
  bool initialized_ = false;
  bool closed_ = false;
  std::atomic<bool> stop_requested_{false};
  std::atomic<uint32_t> stop_senders_{0};  // requestStop() calls in progress; close() waits.
  std::atomic<std::thread::id> thread_id_;
  std::atomic<uint64_t> post_overflows_{0};
  MpscQueue<MoveOnlyFn> posts_;
  std::vector<DeferredDeletablePtr> deferred_;
  std::vector<DeferredDeletablePtr> deferred_draining_;  // Swapped with deferred_; keeps capacity.
  std::vector<TurnEndHook*> turn_end_;           // Registered hooks, each at most once.
  std::vector<TurnEndHook*> turn_end_running_;   // Swapped with turn_end_; keeps capacity.
  std::size_t read_buffer_size_;
  std::unique_ptr<char[]> read_buffer_;
};

}  // namespace edgehub::core
