#pragma once
// MessageStore: where accepted messages are kept until every destination has taken them.
//
// The engine appends each accepted message once with all of its destinations and acknowledges
// the publisher (PUBACK) only from the completion; it releases a (message, endpoint) pair once
// that endpoint's consumer acknowledged it or its TTL dropped it. Issue 04 puts RocksDB (group
// commit, durable queues, checkpoints) behind this interface; MemoryStore (memory_store.h) is
// the `--durability memory` implementation.
//
// Thread-safety: append() is called from every IO loop concurrently; release() from the
// endpoint's home loop. Implementations synchronise internally (without a mutex on the per-
// message path: issue 04 uses an MPSC queue to its store thread).
// Completions: StoreCompletion::onStored() runs on `reply_loop` (the loop that called
// append()), possibly inside append() itself (MemoryStore), never on another thread. The
// completion object must stay alive until its loop has stopped (the engine uses one object per
// loop and routes by token), because an asynchronous store posts to it after append() returned.
// Ownership: the store keeps its own MessageRef copies as long as it needs them.
#include <cstdint>
#include <span>
#include <string_view>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "core/engine/router.h"
#include "core/loop/loop.h"
#include "core/message/message.h"
#include "core/status.h"

namespace edgehub::core {

class StoreCompletion {
 public:
  // The message behind `token` is stored (OK) or could not be (the publisher must not get a
  // PUBACK; the status says why).
  virtual void onStored(uint64_t token, const Status& status) = 0;

 protected:
  ~StoreCompletion() = default;
};

struct StoredDestination {
  uint32_t endpoint = 0;
  uint8_t priority_class = kDefaultPriorityClass;
  int64_t expiry_ms = kNoExpiry;  // absolute, on the hub's system clock
};

// A copy the engine is done with (release(), releaseExpired()): which queue held it and how big
// it is, so that a durable store can remove a single-destination copy without reading anything
// back (store/rocks_store.h). The engine always knows both; callers that do not (tools, tests)
// leave them unknown and the store reads what it needs.
inline constexpr uint8_t kUnknownPriorityClass = 0xFF;
struct ReleasedCopy {
  uint32_t endpoint = 0;
  uint64_t sequence = 0;
  uint8_t priority_class = kUnknownPriorityClass;
  uint32_t bytes = 0;  // MessageRef::bytes().size() of the copy; 0 = unknown
};

// A stored copy read back from a durable store (backlog and recovery).
struct BacklogCopy {
  MessageRef message;
  int64_t expiry_ms = kNoExpiry;
};

class MessageStore {
 public:
  virtual ~MessageStore() = default;
  // "memory", "async" or "sync".
  virtual std::string_view durability() const = 0;
  virtual void append(const MessageRef& message, std::span<const StoredDestination> destinations,
                      Loop& reply_loop, StoreCompletion& completion, uint64_t token) = 0;
  // The message with `copy.sequence` is done for `copy.endpoint`.
  virtual void release(const ReleasedCopy& copy) = 0;
  // The same for a copy the engine dropped because its TTL passed: the store counts it as a
  // ttl_expiry drop, not as a delivery. Same threads and ordering as release().
  virtual void releaseExpired(const ReleasedCopy& copy) { release(copy); }

  // ---- persistent MQTT sessions (durable stores) ----
  // Keeps the opaque session record of a client id (its clean-session-0 subscriptions) so that
  // it survives a hub restart; an empty record deletes it. Cold (CONNECT, SUBSCRIBE,
  // UNSUBSCRIBE) and synchronous: a durable store writes it before returning, on the caller's
  // thread. MemoryStore keeps nothing (sessions then live as long as the hub).
  virtual Status saveSession(std::string_view /*client_id*/, std::string_view /*record*/) { return Status::ok(); }
  // Every stored session record, at start.
  virtual Status loadSessions(std::vector<std::pair<std::string, std::string>>& /*out*/) const {
    return Status::ok();
  }

  // ---- module twins (issue 06) ----
  // Writes the twin document of a client id in the group commit (with `sync`, fsynced) and then
  // runs `completion` with `token` on `reply_loop`, like append(): the twin response (204) goes
  // out only once the patch is durable. Any IO loop. MemoryStore keeps nothing and completes at
  // once (posted, never inside the caller's stack).
  virtual void saveTwin(std::string_view /*client_id*/, std::string_view /*document*/, Loop& reply_loop,
                        StoreCompletion& completion, uint64_t token) {
    // A full post queue is transient; a lost completion would leave the twin request unanswered.
    while (!reply_loop.post([&completion, token] { completion.onStored(token, Status::ok()); })) {
      std::this_thread::yield();
    }
  }
  // Every stored twin (client id, document), at start.
  virtual Status loadTwins(std::vector<std::pair<std::string, std::string>>& /*out*/) const { return Status::ok(); }

  // ---- backlog (durable stores) ----
  // Whether copies may leave memory and be read back later: the engine then keeps only the
  // recent part of a queue in memory and spills the rest (design.md: "RocksDB is read only for
  // backlog"). MemoryStore: false, the engine keeps every copy in memory.
  virtual bool keepsBacklog() const { return false; }
  // The highest message sequence the store has ever held (0 for none): the engine numbers new
  // messages after it, so sequences stay unique and increasing across restarts.
  virtual uint64_t lastSequence() const { return 0; }
  // Highest sequence that the store's drop-oldest policy removed (0: none). Copies at or below
  // it that the engine still holds in memory are dropped too (counted as store_full) rather
  // than delivered, so that "the oldest are dropped" holds for what consumers see, not only
  // for the disk. Any thread (one atomic load; read once per delivery).
  virtual uint64_t droppedThrough() const { return 0; }
  // Whether (endpoint, class) held copies when the store was opened (recovery), from metadata.
  virtual bool hasBacklog(uint32_t /*endpoint*/, uint8_t /*priority_class*/) const { return false; }
  // Appends to `out` the copies of (endpoint, class) with a sequence above `after_sequence`, in
  // sequence order, at most `max`, skipping expired ones. Only committed appends are visible.
  // Called on the endpoint's home loop (a bounded read of recent keys, cold relative to
  // delivery: once per batch of `max`).
  virtual Status readBacklog(uint32_t /*endpoint*/, uint8_t /*priority_class*/, uint64_t /*after_sequence*/,
                             size_t /*max*/, std::vector<BacklogCopy>& /*out*/) {
    return failedPrecondition("this store keeps no backlog");
  }
};

}  // namespace edgehub::core
