// Queue micro-benchmarks: the lock-free MpscQueue / SpscRing against a std::mutex + std::deque
// baseline doing the same work. Items/s is the figure to compare (state.SetItemsProcessed).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/queue/mpsc_queue.h"
#include "core/queue/spsc_ring.h"

namespace edgehub::core {
namespace {

// The baseline: what one would write without a lock-free queue. Bounded like the real ones so
// both refuse work when full.
template <typename T>
class MutexQueue {
 public:
  explicit MutexQueue(std::size_t capacity) : capacity_(capacity) {}
  bool tryPush(T&& v) {
    std::lock_guard<std::mutex> lock(mu_);
    if (q_.size() >= capacity_) return false;
    q_.push_back(std::move(v));
    return true;
  }
  bool tryPop(T& out) {
    std::lock_guard<std::mutex> lock(mu_);
    if (q_.empty()) return false;
    out = std::move(q_.front());
    q_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::deque<T> q_;
  const std::size_t capacity_;
};

constexpr std::size_t kCapacity = 4096;

template <typename Q>
void pushPopSingleThread(benchmark::State& state) {
  Q q(kCapacity);
  uint64_t v = 0;
  uint64_t out = 0;
  for (auto _ : state) {
    if (!q.tryPush(uint64_t{v++})) state.SkipWithError("full");
    if (!q.tryPop(out)) state.SkipWithError("empty");
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_MpscQueue_SingleThreadPushPop(benchmark::State& state) {
  pushPopSingleThread<MpscQueue<uint64_t>>(state);
}
void BM_SpscRing_SingleThreadPushPop(benchmark::State& state) {
  pushPopSingleThread<SpscRing<uint64_t>>(state);
}
void BM_MutexDeque_SingleThreadPushPop(benchmark::State& state) {
  pushPopSingleThread<MutexQueue<uint64_t>>(state);
}
BENCHMARK(BM_MpscQueue_SingleThreadPushPop);
BENCHMARK(BM_SpscRing_SingleThreadPushPop);
BENCHMARK(BM_MutexDeque_SingleThreadPushPop);

// P producer threads each push kItemsPerProducer items; the benchmark thread is the consumer.
// Producers spin-yield on "full", the consumer on "empty" (the same policy for every queue).
// Thread start-up is inside the timed region but is ~0.1 ms against tens of ms of work.
constexpr uint64_t kItemsPerProducer = 1 << 19;

template <typename Q>
void producersOneConsumer(benchmark::State& state, int producers) {
  for (auto _ : state) {
    Q q(kCapacity);
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&q] {
        for (uint64_t i = 0; i < kItemsPerProducer; ++i) {
          while (!q.tryPush(uint64_t{i})) std::this_thread::yield();
        }
      });
    }
    const uint64_t total = kItemsPerProducer * static_cast<uint64_t>(producers);
    uint64_t sum = 0;
    uint64_t out = 0;
    for (uint64_t got = 0; got < total;) {
      if (q.tryPop(out)) {
        sum += out;
        ++got;
      } else {
        std::this_thread::yield();
      }
    }
    for (auto& t : threads) t.join();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kItemsPerProducer) * producers);
}

void BM_MpscQueue_2Producers1Consumer(benchmark::State& state) {
  producersOneConsumer<MpscQueue<uint64_t>>(state, 2);
}
void BM_MutexDeque_2Producers1Consumer(benchmark::State& state) {
  producersOneConsumer<MutexQueue<uint64_t>>(state, 2);
}
void BM_SpscRing_1Producer1Consumer(benchmark::State& state) {
  producersOneConsumer<SpscRing<uint64_t>>(state, 1);
}
void BM_MpscQueue_1Producer1Consumer(benchmark::State& state) {
  producersOneConsumer<MpscQueue<uint64_t>>(state, 1);
}
void BM_MutexDeque_1Producer1Consumer(benchmark::State& state) {
  producersOneConsumer<MutexQueue<uint64_t>>(state, 1);
}
BENCHMARK(BM_MpscQueue_2Producers1Consumer)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MutexDeque_2Producers1Consumer)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SpscRing_1Producer1Consumer)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MpscQueue_1Producer1Consumer)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MutexDeque_1Producer1Consumer)->UseRealTime()->Unit(benchmark::kMillisecond);

// SPSC with the consumer draining in batches of up to 64 (one release store per batch).
void BM_SpscRing_1Producer1Consumer_PopBatch(benchmark::State& state) {
  for (auto _ : state) {
    SpscRing<uint64_t> q(kCapacity);
    std::thread producer([&q] {
      for (uint64_t i = 0; i < kItemsPerProducer; ++i) {
        while (!q.tryPush(uint64_t{i})) std::this_thread::yield();
      }
    });
    uint64_t sum = 0;
    for (uint64_t got = 0; got < kItemsPerProducer;) {
      const std::size_t n = q.popBatch([&sum](uint64_t&& v) { sum += v; }, 64);
      if (n == 0) std::this_thread::yield();
      got += n;
    }
    producer.join();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kItemsPerProducer));
}
BENCHMARK(BM_SpscRing_1Producer1Consumer_PopBatch)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgehub::core
