#pragma once
// LoopThread: a std::thread that creates a Loop, runs it until stopped, then closes it. The hub
// runs N of these as IO loops (design.md "Threads and loops").
//
// Thread-safety: start(), stop() and the destructor are for the owning thread (the one that
// created the LoopThread), never for the loop thread itself. post() is safe from any thread,
// including the loop thread, at any time: before start() and after stop() it returns false.
// Ownership: the LoopThread owns its thread and its Loop. Objects created on the loop (handles,
// sessions) are owned by the code that created them and must be destroyed on the loop thread
// before stop() returns, typically by posting their teardown before calling stop(): every
// function posted before stop() runs before the loop stops. The loop is closed on its own
// thread; a handle that is still alive then is reported as a bug (HUB_BUG).
// Callbacks: posted functions run on the loop thread.
// Signals: the thread blocks SIGPIPE. libuv writes sockets with writev(2), which raises SIGPIPE
// on a connection the peer reset, and SIGPIPE's default action ends the process: a module that
// vanished mid-delivery must cost its connection, not the hub (or the process embedding it).
// The write returns EPIPE instead. The embedder's own signal dispositions are left alone.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "core/loop/loop.h"
#include "core/loop/move_only_fn.h"
#include "core/status.h"

namespace edgehub::core {

// Blocks SIGPIPE for the calling thread (see "Signals" above); every thread the hub starts
// that may write to a socket calls it first. A SIGPIPE raised by its writes then stays pending.
void blockSigpipeOnThisThread();

class LoopThread {
 public:
  explicit LoopThread(std::string name, Loop::Options options = {});
  ~LoopThread();  // stop()
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  // Starts the thread and waits until its Loop exists. Fails if the Loop cannot be created or
  // the thread was already started.
  Status start();
  // Any thread. False if not running (not started, stopping, stopped) or the queue is full.
  [[nodiscard]] bool post(MoveOnlyFn fn);
  // Runs everything posted so far, stops the loop, closes it and joins. Idempotent.
  // REQUIRES: not on the loop thread (it would join itself).
  void stop();

  bool isRunning() const { return accepting_.load(std::memory_order_acquire); }
  const std::string& name() const { return name_; }
  // The loop, for code running ON this loop thread (e.g. inside a posted function), or for
  // Loop::postOverflowCount(). Null before start() and after stop().
  Loop* loop() const { return loop_.load(std::memory_order_acquire); }
  // Number of post() calls refused (full queue or not running).
  uint64_t rejectedPosts() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  void threadMain(std::atomic<int>* startup, Status* startup_status);

  const std::string name_;
  const Loop::Options options_;
  std::thread thread_;
  std::atomic<Loop*> loop_{nullptr};
  // post() gate: posters announce themselves in posters_ before reading accepting_, so stop()
  // can close the gate and wait for in-flight posts before the Loop goes away. Lock-free; the
  // wait in stop() is a short spin on a cold path.
  std::atomic<bool> accepting_{false};
  std::atomic<uint32_t> posters_{0};
  std::atomic<uint64_t> rejected_{0};
  bool started_ = false;
};

}  // namespace edgehub::core
