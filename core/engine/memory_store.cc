#include "core/engine/memory_store.h"

namespace edgehub::core {

void MemoryStore::append(const MessageRef&, std::span<const StoredDestination> destinations, Loop&,
                         StoreCompletion& completion, uint64_t token) {
  appended_.fetch_add(destinations.size(), std::memory_order_relaxed);
  completion.onStored(token, Status::ok());
}

void MemoryStore::release(const ReleasedCopy&) { released_.fetch_add(1, std::memory_order_relaxed); }

}  // namespace edgehub::core
