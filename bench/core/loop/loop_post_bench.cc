// Cross-thread handoff to a Loop: Loop::post (MpscQueue + uv_async_send, drained whole) against
// a std::mutex + std::condition_variable worker doing the same work.
//  - *_RoundTrip: one task in flight; the caller waits for it to run (latency-bound).
//  - *_Throughput: the caller posts a burst; the worker runs them (the async wake-up coalesces).
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "core/loop/loop_thread.h"
#include "core/loop/move_only_fn.h"

namespace edgehub::core {
namespace {

// The baseline worker: a thread blocked on a condvar over a deque of tasks.
class CondvarWorker {
 public:
  CondvarWorker() : thread_([this] { run(); }) {}
  ~CondvarWorker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void post(MoveOnlyFn fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return done_ || !q_.empty(); });
      if (q_.empty() && done_) return;
      while (!q_.empty()) {  // Drain the batch outside the lock, like the loop does.
        MoveOnlyFn fn = std::move(q_.front());
        q_.pop_front();
        lock.unlock();
        fn();
        lock.lock();
      }
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<MoveOnlyFn> q_;
  bool done_ = false;
  std::thread thread_;
};

// Caller-side wait for "the task ran": a futex via C++20 atomic wait, the same for both.
void waitFor(std::atomic<uint64_t>& counter, uint64_t target) {
  uint64_t seen = counter.load(std::memory_order_acquire);
  while (seen < target) {
    counter.wait(seen, std::memory_order_acquire);
    seen = counter.load(std::memory_order_acquire);
  }
}

void bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_release);
  counter.notify_one();
}

void BM_LoopPost_RoundTrip(benchmark::State& state) {
  LoopThread lt("bench-loop");
  if (!lt.start().isOk()) {
    state.SkipWithError("LoopThread start failed");
    return;
  }
  std::atomic<uint64_t> done{0};
  uint64_t sent = 0;
  for (auto _ : state) {
    if (!lt.post([&done] { bump(done); })) state.SkipWithError("post refused");
    waitFor(done, ++sent);
  }
  lt.stop();
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_CondvarHandoff_RoundTrip(benchmark::State& state) {
  CondvarWorker worker;
  std::atomic<uint64_t> done{0};
  uint64_t sent = 0;
  for (auto _ : state) {
    worker.post([&done] { bump(done); });
    waitFor(done, ++sent);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_LoopPost_RoundTrip)->UseRealTime();
BENCHMARK(BM_CondvarHandoff_RoundTrip)->UseRealTime();

constexpr uint64_t kBurst = 1000;

void BM_LoopPost_Throughput(benchmark::State& state) {
  LoopThread lt("bench-loop");
  if (!lt.start().isOk()) {
    state.SkipWithError("LoopThread start failed");
    return;
  }
  std::atomic<uint64_t> done{0};
  uint64_t ran_on_loop = 0;  // Loop-thread only.
  uint64_t sent = 0;
  for (auto _ : state) {
    for (uint64_t i = 0; i < kBurst; ++i) {
      const bool last = i + 1 == kBurst;
      while (!lt.post([&, last] {
        ++ran_on_loop;
        if (last) bump(done);
      })) {
        std::this_thread::yield();
      }
    }
    waitFor(done, ++sent);
  }
  lt.stop();
  benchmark::DoNotOptimize(ran_on_loop);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
}

void BM_CondvarHandoff_Throughput(benchmark::State& state) {
  CondvarWorker worker;
  std::atomic<uint64_t> done{0};
  uint64_t ran_on_worker = 0;  // Worker-thread only.
  uint64_t sent = 0;
  for (auto _ : state) {
    for (uint64_t i = 0; i < kBurst; ++i) {
      const bool last = i + 1 == kBurst;
      worker.post([&, last] {
        ++ran_on_worker;
        if (last) bump(done);
      });
    }
    waitFor(done, ++sent);
  }
  benchmark::DoNotOptimize(ran_on_worker);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
}
BENCHMARK(BM_LoopPost_Throughput)->UseRealTime();
BENCHMARK(BM_CondvarHandoff_Throughput)->UseRealTime();

}  // namespace
}  // namespace edgehub::core
