// RocksStore as the engine's backlog (core/engine/message_store.h): the engine keeps queue
// heads in memory and reads the rest back from here, in batches, on each endpoint's home loop.
#include "store/rocks_store.h"

namespace edgehub::store {

bool RocksStore::hasBacklog(uint32_t endpoint, uint8_t priority_class) const {
  return queueInfo(endpoint, priority_class).count > 0;
}

core::Status RocksStore::readBacklog(uint32_t endpoint, uint8_t priority_class, uint64_t after_sequence,
                                     size_t max, std::vector<core::BacklogCopy>& out) {
  std::vector<StoredMessage> read;
  std::vector<uint64_t> damaged;
  const core::Status s = readQueue(endpoint, priority_class, after_sequence, max, read, &damaged);
  // A damaged entry can never be delivered: remove its reference like a delivered one, so the
  // queue's counters stay true and the next read (or the next start) does not meet it again.
  for (uint64_t sequence : damaged) release(core::ReleasedCopy{endpoint, sequence, priority_class, 0});
  HUB_RETURN_IF_ERROR(s);
  out.reserve(out.size() + read.size());
  for (StoredMessage& m : read) out.push_back(core::BacklogCopy{std::move(m.message), m.expiry_ms});
  return core::Status::ok();
}

uint64_t RocksStore::lastSequence() const { return stats().highest_sequence; }

}  // namespace edgehub::store
