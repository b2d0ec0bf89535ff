#include "core/loop/loop_thread.h"

#include <pthread.h>
#include <signal.h>

#include <utility>

namespace edgehub::core {

void blockSigpipeOnThisThread() {
  // SIGPIPE from a write is sent to the writing thread. Failure is impossible with a valid set.
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
}

LoopThread::LoopThread(std::string name, Loop::Options options)
    : name_(std::move(name)), options_(options) {}

LoopThread::~LoopThread() { stop(); }

Status LoopThread::start() {
  if (started_) return failedPrecondition("LoopThread '" + name_ + "' already started");
  started_ = true;
  // Startup handshake: 0 = pending, 1 = loop ready, 2 = failed. The loop thread publishes with
  // release and notifies; we wait on the atomic (C++20), which is cold-path and sleeps in the
  // kernel rather than spinning.
  std::atomic<int> startup{0};
  Status startup_status;
  thread_ = std::thread(&LoopThread::threadMain, this, &startup, &startup_status);
  startup.wait(0, std::memory_order_acquire);
  if (startup.load(std::memory_order_acquire) != 1) {
    thread_.join();
    return startup_status;
  }
  accepting_.store(true, std::memory_order_release);
  return Status::ok();
}

void LoopThread::threadMain(std::atomic<int>* startup, Status* startup_status) {
  // Thread names are limited to 15 characters by the kernel; failure is harmless.
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  blockSigpipeOnThisThread();
  Result<LoopPtr> created = Loop::create(options_);
  if (!created.isOk()) {
    *startup_status = created.status().withContext("LoopThread '" + name_ + "'");
    startup->store(2, std::memory_order_release);
    startup->notify_one();
    return;
  }
  LoopPtr loop = std::move(created).value();
  loop_.store(loop.get(), std::memory_order_release);
  startup->store(1, std::memory_order_release);
  startup->notify_one();  // startup is on start()'s stack: do not touch it after this line.

  loop->run();
  loop_.store(nullptr, std::memory_order_release);
  Status closed = loop->close();
  if (!closed.isOk()) HUB_BUG("LoopThread: a handle outlived its loop");
  // On failure ~Loop leaks the uv loop memory on purpose (a live handle still points at it).
}

bool LoopThread::post(MoveOnlyFn fn) {
  // seq_cst on both sides: posters_++ then load accepting_, versus stop()'s store accepting_
  // then load posters_. Either stop() sees our increment and waits, or we see the gate closed.
  posters_.fetch_add(1, std::memory_order_seq_cst);
  bool ok = false;
  if (accepting_.load(std::memory_order_seq_cst)) {
    ok = loop_.load(std::memory_order_acquire)->post(std::move(fn));
  }
  posters_.fetch_sub(1, std::memory_order_release);
  if (!ok) rejected_.fetch_add(1, std::memory_order_relaxed);
  return ok;
}

void LoopThread::stop() {
  if (!thread_.joinable()) return;
  HUB_RELEASE_ASSERT(thread_.get_id() != std::this_thread::get_id(),
                     "LoopThread::stop() on its own loop thread");
  accepting_.store(false, std::memory_order_seq_cst);
  // Wait for posts that passed the gate; they are a handful of instructions long.
  while (posters_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  Loop* loop = loop_.load(std::memory_order_acquire);
  if (loop != nullptr) loop->requestStop();
  thread_.join();
}

}  // namespace edgehub::core
