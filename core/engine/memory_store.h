#pragma once
// MemoryStore: `--durability memory`. Persists nothing: the engine's in-memory endpoint queues
// are the only copy, so a message is "stored" the moment append() is called and the
// completion runs inside append(). It exists so that the engine is written against the store
// interface from the start, and for benchmarks, tests and RAM-only devices; the hub reports it
// loudly at start and never falls back to it.
//
// Thread-safety: append() and release() from any loop; only relaxed counters are touched.
#include <atomic>
#include <cstdint>

#include "core/engine/message_store.h"

namespace edgehub::core {

class MemoryStore final : public MessageStore {
 public:
  std::string_view durability() const override { return "memory"; }
  void append(const MessageRef& message, std::span<const StoredDestination> destinations,
              Loop& reply_loop, StoreCompletion& completion, uint64_t token) override;
  void release(const ReleasedCopy& copy) override;

  uint64_t appendedForTest() const { return appended_.load(std::memory_order_relaxed); }
  uint64_t releasedForTest() const { return released_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> appended_{0};
  std::atomic<uint64_t> released_{0};
};

}  // namespace edgehub::core
