// RocksStore throughput: appends per second with sync (fsync per group commit) and async
// durability, with 1, 64 and 1024 appends in flight (an in-flight append is a publisher waiting
// for its PUBACK, so the window is the number of concurrent QoS 1 producers), with 2 producer
// threads, and releases per second.
//
// Run: build-store/bench/store_bench --benchmark_min_time=2
// The store lives under $TMPDIR (default /tmp): put it on the disk you want to measure.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "core/identity.h"
#include "core/loop/loop_thread.h"
#include "core/message/message.h"
#include "store/rocks_store.h"

namespace edgehub::store {
namespace {

class CountingCompletion final : public core::StoreCompletion {
 public:
  void onStored(uint64_t, const core::Status& status) override {
    if (!status.isOk()) failed.fetch_add(1, std::memory_order_relaxed);
    done.fetch_add(1, std::memory_order_release);
    done.notify_all();
  }
  // Waits until at most `window` appends are outstanding.
  void waitWindow(uint64_t issued, uint64_t window) {
    while (true) {
      const uint64_t d = done.load(std::memory_order_acquire);
      if (issued - d < window) return;
      done.wait(d, std::memory_order_acquire);
    }
  }
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failed{0};
};

struct BenchStore {
  explicit BenchStore(RocksStoreOptions::Durability durability) {
    std::string tmpl = std::filesystem::temp_directory_path().string();
    tmpl.append("/store_bench_XXXXXX");
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    dir = ::mkdtemp(buf.data());
    if (!loop.start().isOk()) std::abort();
    RocksStoreOptions o;
    o.path = dir + "/store";
    o.durability = durability;
    auto r = RocksStore::open(o, time);
    if (!r.isOk()) std::abort();
    store = std::move(r).value();
    std::vector<core::EndpointInfo> eps(2);
    eps[0].name = "$upstream";
    eps[1].name = "BrokeredEndpoint(\"/modules/m/inputs/in\")";
    if (!store->setEndpoints(eps).isOk()) std::abort();
  }
  ~BenchStore() {
    store.reset();
    loop.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  core::MessageRef message(core::MessageBuilder& b, uint64_t seq) {
    b.reset();
    b.setSequence(seq);
    b.setEnqueuedTimeMs(1'700'000'000'000);
    b.setOrigin(origin);
    b.setSystem(core::SystemField::kMessageId, "bench");
    b.setBody(std::string_view(body));
    return b.finish().value();
  }

  std::string dir;
  core::RealTimeSource time;
  core::Identity origin = core::Identity::module("bench-device", "producer");
  const std::string body = std::string(100, 'b');  // 100-byte payloads, as in design.md
  CountingCompletion completion;
  core::LoopThread loop{"bench-reply"};
  std::unique_ptr<RocksStore> store;
};

void reportStore(benchmark::State& state, const RocksStore& store, uint64_t items) {
  const StoreStats s = store.stats();
  state.SetItemsProcessed(static_cast<int64_t>(items));
  state.counters["commits"] = static_cast<double>(s.commits);
  state.counters["avg_batch"] = s.average_batch;
}

void appendBench(benchmark::State& state, RocksStoreOptions::Durability durability) {
  BenchStore b(durability);
  const uint64_t window = static_cast<uint64_t>(state.range(0));
  const core::StoredDestination dest[1] = {{0, 0, core::kNoExpiry}};
  core::MessageBuilder builder;
  uint64_t issued = 0;
  for (auto _ : state) {
    b.completion.waitWindow(issued, window);
    ++issued;
    b.store->append(b.message(builder, issued), dest, *b.loop.loop(), b.completion, issued);
  }
  b.completion.waitWindow(issued, 1);  // every append durable before the clock is read
  if (b.completion.failed.load() != 0) state.SkipWithError("appends failed");
  reportStore(state, *b.store, issued);
}

void BM_Append_Sync_GroupCommit(benchmark::State& state) {
  appendBench(state, RocksStoreOptions::Durability::kSync);
}
BENCHMARK(BM_Append_Sync_GroupCommit)->ArgName("in_flight")->Arg(1)->Arg(64)->Arg(1024)->UseRealTime();

void BM_Append_Async(benchmark::State& state) {
  appendBench(state, RocksStoreOptions::Durability::kAsync);
}
BENCHMARK(BM_Append_Async)->ArgName("in_flight")->Arg(1)->Arg(64)->Arg(1024)->UseRealTime();

// Two producer threads (two IO loops), each with 64 appends in flight, sync durability.
void BM_Append_Sync_TwoProducers(benchmark::State& state) {
  BenchStore b(RocksStoreOptions::Durability::kSync);
  const core::StoredDestination dest[1] = {{0, 0, core::kNoExpiry}};
  uint64_t total = 0;
  for (auto _ : state) {
    // One iteration = 2 x 10000 appends.
    constexpr uint64_t kPerThread = 10000;
    CountingCompletion c[2];
    auto producer = [&](int t) {
      core::MessageBuilder builder;
      for (uint64_t i = 0; i < kPerThread; ++i) {
        c[t].waitWindow(i, 64);
        const uint64_t seq = total + 1 + t * kPerThread + i;
        b.store->append(b.message(builder, seq), dest, *b.loop.loop(), c[t], seq);
      }
      c[t].waitWindow(kPerThread, 1);
    };
    std::thread t0(producer, 0), t1(producer, 1);
    t0.join();
    t1.join();
    total += 2 * kPerThread;
  }
  reportStore(state, *b.store, total);
}
BENCHMARK(BM_Append_Sync_TwoProducers)->UseRealTime()->Unit(benchmark::kMillisecond);

// Releases (acknowledgements) of stored messages, sync durability: each deletes the reference,
// the message and its expiry/refs records in the next group commit.
void BM_Release(benchmark::State& state) {
  BenchStore b(RocksStoreOptions::Durability::kSync);
  const uint64_t n = state.max_iterations;
  const core::StoredDestination dest[1] = {{1, 0, core::kNoExpiry}};
  core::MessageBuilder builder;
  for (uint64_t seq = 1; seq <= n; ++seq) {
    b.completion.waitWindow(seq - 1, 4096);
    b.store->append(b.message(builder, seq), dest, *b.loop.loop(), b.completion, seq);
  }
  b.completion.waitWindow(n, 1);
  std::vector<core::EndpointInfo> eps(2);
  eps[0].name = "$upstream";
  eps[1].name = "BrokeredEndpoint(\"/modules/m/inputs/in\")";
  uint64_t seq = 0;
  for (auto _ : state) {
    b.store->release(1, ++seq);
    // The last iteration waits until every release is committed (setEndpoints() returns after
    // its batch's write), so the time covers the writes, not just the pushes.
    if (seq == n && !b.store->setEndpoints(eps).isOk()) state.SkipWithError("barrier failed");
  }
  if (b.store->stats().messages != 0) state.SkipWithError("messages left after release");
  reportStore(state, *b.store, seq);
}
BENCHMARK(BM_Release)->UseRealTime();

}  // namespace
}  // namespace edgehub::store
