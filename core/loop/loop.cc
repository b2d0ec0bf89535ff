#include "core/loop/loop.h"

#include <uv.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "core/loop/uv_error.h"
#include "core/loop/uv_handle.h"

namespace edgehub::core {

namespace {

// Bounds the close() drain: close callbacks need one or two iterations; anything still alive
// after this many is a leaked (active) handle and close() reports it.
constexpr int kCloseDrainIterations = 16;

}  // namespace

Result<LoopPtr> Loop::create(Options options) {
  LoopPtr loop(new Loop(options));
  Status status = loop->init();
  if (!status.isOk()) return status;
  return loop;
}

Loop::Loop(const Options& options)
    : thread_id_(std::this_thread::get_id()),
      posts_(options.post_queue_capacity),
      read_buffer_size_(options.read_buffer_size == 0 ? 1 : options.read_buffer_size),
      read_buffer_(new char[read_buffer_size_]) {}

Status Loop::init() {
  loop_ = static_cast<uv_loop_t*>(std::calloc(1, sizeof(uv_loop_t)));
  HUB_RELEASE_ASSERT(loop_ != nullptr, "out of memory allocating a uv_loop_t");
  int rc = uv_loop_init(loop_);
  if (rc != 0) {
    std::free(loop_);
    loop_ = nullptr;
    closed_ = true;
    return fromUv(rc).withContext("uv_loop_init");
  }
  loop_->data = this;
  initialized_ = true;

  async_ = uvdetail::allocate<uv_async_t>(this);
  rc = uv_async_init(loop_, async_, [](uv_async_t* h) noexcept {
    if (h->data != nullptr) static_cast<Loop*>(h->data)->onAsync();
  });
  if (rc != 0) {
    std::free(async_);
    async_ = nullptr;
    Status status = fromUv(rc).withContext("uv_async_init");
    close().permitUncheckedError();  // Nothing else exists yet; the init error is what matters.
    return status;
  }
  check_ = uvdetail::allocate<uv_check_t>(this);
  uv_check_init(loop_, check_);  // Cannot fail on Unix.
  idle_ = uvdetail::allocate<uv_idle_t>(this);
  uv_idle_init(loop_, idle_);  // Cannot fail on Unix.
  return Status::ok();
}

Loop::~Loop() {
  if (closed_) return;
  Status status = close();
  if (!status.isOk()) HUB_BUG("Loop destroyed with live handles (leaking the loop)");
}

bool Loop::isThreadSafe() const {
  return thread_id_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

void Loop::run() {
  HUB_ASSERT(!closed_, "run() on a closed Loop");
  bindToThisThread();
  uv_run(loop_, UV_RUN_DEFAULT);
}

bool Loop::runOnce() {
  HUB_ASSERT(!closed_, "runOnce() on a closed Loop");
  bindToThisThread();
  return uv_run(loop_, UV_RUN_ONCE) != 0;
}

bool Loop::runNoWait() {
  HUB_ASSERT(!closed_, "runNoWait() on a closed Loop");
  bindToThisThread();
  return uv_run(loop_, UV_RUN_NOWAIT) != 0;
}

void Loop::stop() {
  HUB_ASSERT(isThreadSafe(), "Loop::stop() off the loop thread; use requestStop()");
  uv_stop(loop_);
}

void Loop::requestStop() {
  // The loop may see the flag through an async callback caused by an earlier post(), stop and
  // start closing while this thread is still about to call uv_async_send on async_. The
  // in-flight count makes close() wait until this send has returned before it closes async_.
  stop_senders_.fetch_add(1, std::memory_order_seq_cst);
  stop_requested_.store(true, std::memory_order_seq_cst);
  // uv_async_send is the one libuv call documented as safe from any thread.
  uv_async_send(async_);
  stop_senders_.fetch_sub(1, std::memory_order_seq_cst);
}

bool Loop::post(MoveOnlyFn fn) {
  if (!posts_.tryPush(std::move(fn))) {
    post_overflows_.fetch_add(1, std::memory_order_relaxed);
    return false;  // fn (still ours, untouched by tryPush) is destroyed on return.
  }
  // Wake after publishing: a wake-up sent before the push could be consumed by a drain that
  // does not yet see the element, and sends coalesce, so it might never be repeated.
  uv_async_send(async_);
  return true;
}

void Loop::onAsync() noexcept {
  // uv_async_send() calls coalesce: one callback may stand for many posts, so drain the whole
  // queue. To keep one callback bounded (style rule 26) under a producer that never pauses, at
  // most one queue's worth is run per callback; if more remains, re-arm ourselves so the loop
  // gets to its other handles first and then comes back.
  const std::size_t budget = posts_.capacity();
  std::size_t ran = 0;
  MoveOnlyFn fn;
  bool drained = false;
  while (true) {
    if (ran == budget) break;
    if (!posts_.tryPop(fn)) {
      drained = true;
      break;
    }
    fn();
    fn.reset();  // Destroy captures now, on the loop thread, not at the next pop.
    ++ran;
  }
  if (!drained) {
    uv_async_send(async_);
    return;
  }
  // Honour a stop only once every function posted before it has run (requestStop contract).
  // A producer whose push was claimed but not yet published when we looked is not "before".
  if (stop_requested_.exchange(false, std::memory_order_acq_rel)) uv_stop(loop_);
}

void Loop::deferredDelete(DeferredDeletablePtr object) {
  HUB_ASSERT(isThreadSafe(), "deferredDelete() off the loop thread");
  if (object == nullptr) return;
  if (closed_) return;  // Destroyed right here: nothing can still be on its stack after close.
  armCheck();
  deferred_.push_back(std::move(object));
}

void Loop::armCheck() {
  if (!deferred_.empty() || !turn_end_.empty()) return;  // Already armed.
  // The check phase runs after poll; the idle handle makes that poll non-blocking so the
  // deletion (or turn-end hook) happens this iteration even if no I/O is pending.
  uv_check_start(check_, [](uv_check_t* h) noexcept {
    if (h->data != nullptr) static_cast<Loop*>(h->data)->onCheck();
  });
  uv_idle_start(idle_, [](uv_idle_t*) noexcept {});
}

void Loop::callAtTurnEnd(TurnEndHook* hook) {
  HUB_ASSERT(isThreadSafe(), "callAtTurnEnd() off the loop thread");
  if (closed_ || hook == nullptr) return;
  for (TurnEndHook* h : turn_end_) {
    if (h == hook) return;
  }
  armCheck();
  turn_end_.push_back(hook);
}

void Loop::cancelTurnEnd(TurnEndHook* hook) {
  HUB_ASSERT(isThreadSafe(), "cancelTurnEnd() off the loop thread");
  std::erase(turn_end_, hook);
  std::replace(turn_end_running_.begin(), turn_end_running_.end(), hook,
               static_cast<TurnEndHook*>(nullptr));
}

void Loop::onCheck() noexcept {
  // Hooks first: a flush may hand objects to deferredDelete(), which then die this same phase.
  turn_end_running_.swap(turn_end_);
  for (size_t i = 0; i < turn_end_running_.size(); ++i) {
    if (TurnEndHook* hook = turn_end_running_[i]) hook->onTurnEnd();
  }
  turn_end_running_.clear();
  drainDeferred();
  if (deferred_.empty() && turn_end_.empty()) {
    uv_check_stop(check_);
    uv_idle_stop(idle_);
  }
}

void Loop::drainDeferred() noexcept {
  // Destructors may defer more objects; those go to the fresh deferred_ and wait for the next
  // check phase, which bounds the work of one phase.
  deferred_draining_.swap(deferred_);
  deferred_draining_.clear();
}

Status Loop::close() {
  HUB_ASSERT(isThreadSafe(), "Loop::close() off the loop thread");
  if (closed_) return Status::ok();
  // Posted functions that never ran are destroyed, not run: their captures are released here,
  // on the loop thread.
  MoveOnlyFn fn;
  while (posts_.tryPop(fn)) fn.reset();
  // Deferred objects may own handles; destroy them before closing the loop, repeatedly because
  // a destructor may defer another object.
  while (!deferred_.empty()) drainDeferred();
  turn_end_.clear();

  // A requestStop() that raced with the stop may still be inside uv_async_send (see there).
  // The window is a few instructions long, so yielding is fine on this cold path.
  while (stop_senders_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  uvdetail::closeAndFree(async_);
  uvdetail::closeAndFree(check_);
  uvdetail::closeAndFree(idle_);
  async_ = nullptr;
  check_ = nullptr;
  idle_ = nullptr;

  for (int i = 0; i < kCloseDrainIterations && uv_loop_alive(loop_); ++i) {
    uv_run(loop_, UV_RUN_NOWAIT);
  }
  // A closing handle is not "alive" but still needs one more iteration for its close_cb.
  uv_run(loop_, UV_RUN_NOWAIT);
  const int rc = uv_loop_close(loop_);
  if (rc != 0) return fromUv(rc).withContext("uv_loop_close (a handle outlived its Loop)");
  std::free(loop_);
  loop_ = nullptr;
  closed_ = true;
  return Status::ok();
}

uint64_t Loop::nowMs() const { return uv_now(loop_); }

void Loop::updateTime() { uv_update_time(loop_); }

}  // namespace edgehub::core
