#pragma once
// RocksStore: the durable core::MessageStore (`--durability sync|async`, issue 04), on RocksDB.
//
// What it keeps (key grammar in store/keys.cc, design in docs/store.md): each message body once,
// in its flatbuffer form as received; per (endpoint, priority class) a queue of references in
// sequence order; per message with several destinations the references still pending (a
// message with one needs no such record: its queue entry says all, and its release reads
// nothing); per queue exact counters and a checkpoint; an expiry index. A message leaves in the
// same WriteBatch as its last reference.
//
// Threads: one store thread owns every write. append() and release() push a request into a
// bounded lock-free MPSC queue (core/queue/mpsc_queue.h) and return; the store thread gathers
// everything that arrived during the previous commit into one WriteBatch (group commit), writes
// it with WriteOptions.sync per durability mode, then posts the completions to each request's
// reply loop (Loop::post, retried until accepted: a completion is never dropped). The store
// thread sleeps on a mutex+condvar when the queue is empty; producers take that mutex only when
// the thread is asleep (a flag says so: one atomic exchange per request), never per message
// while it is busy.
//
// Thread-safety: append(), release() from any thread. setEndpoints(), readQueue(), queueInfo(),
// stats() from any thread (cold; they take internal mutexes), but not concurrently with stop().
// stop() and the destructor from one owning thread, never from a completion.
// Ordering: requests from one thread are applied in the order issued, and a request issued
// after another one returned (on any thread) is applied after it. So the engine must call
// append() before it makes the message deliverable: the release() that follows its delivery is
// then applied after the append (a release of an unknown reference is ignored).
// Callbacks: StoreCompletion::onStored() runs on the reply loop given to append(), after the
// WriteBatch holding the message has been written (and fsynced in sync mode). After stop()
// begins, append() completes with kUnavailable (still through the reply loop).
// Ownership: the caller owns the store (unique_ptr from open()); the store owns its DB, thread
// and MessageRef copies until written. The TimeSource, reply loops and completions must outlive
// the store (or at least its stop()).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/engine/message_store.h"
#include "core/engine/router.h"
#include "core/queue/mpsc_queue.h"
#include "core/time_source.h"

namespace rocksdb {
class Env;
struct Options;
}

namespace edgehub::store {

class StoreThreadState;  // store-thread-only bookkeeping (rocks_store.cc)
class Db;                // RocksDB handles, so that <rocksdb/...> stays out of this header

struct RocksStoreOptions {
  enum class Durability : uint8_t { kSync, kAsync };
  enum class FullPolicy : uint8_t { kReject, kDropOldest };

  std::string path;  // the store directory, e.g. <data>/store; created if missing
  Durability durability = Durability::kSync;
  // Bound on stored message bytes (each body counted once); 0 = unlimited.
  uint64_t max_store_bytes = 0;
  // The store counts as full when the file system has less free space than this (0 = no check).
  uint64_t min_free_disk_bytes = 0;
  FullPolicy full_policy = FullPolicy::kReject;
  // Cap on RocksDB's own info logs (LOG, LOG.old.*) in the store directory.
  uint64_t max_info_log_bytes = 4 * 1024 * 1024;
  // On a damaged store: try RocksDB's repair, and if the store still cannot open move it aside
  // (<path>.damaged-<ms>) and start empty. Without it a damaged store is an error, left as is.
  bool repair = false;
  // Group commit: at most this many requests per WriteBatch.
  size_t max_batch = 4096;
  // Capacity of the request queue; producers wait (yield) while it is full (backpressure).
  // Two batches' worth (max_batch); all of it is resident (~1 MiB at 136 bytes a request).
  size_t queue_capacity = 8 * 1024;
  // How often the store thread looks for expired references when nothing else wakes it.
  uint32_t expiry_interval_ms = 1000;
  // At most this many expired references removed per pass (the rest in the next pass).
  size_t max_expiry_per_pass = 16 * 1024;
  // Memory caps: each of the two memtables, and the block cache (reads of backlog and indexes).
  uint64_t memtable_bytes = 4 * 1024 * 1024;
  uint64_t block_cache_bytes = 8 * 1024 * 1024;
  // Reference records of recent messages kept in memory across batches (~150 bytes each), so
  // that the release of a message appended a moment ago needs no read. Tests set 0 to drive
  // every release through the store's read paths.
  size_t max_cached_records = 16 * 1024;
  // Open for inspection only (CLI tools): no store thread, no writes; append() and
  // setEndpoints() fail. Works while no hub has the store open.
  bool read_only = false;
  // Tests only: the RocksDB Env (fault injection, style rule 48). Not owned; must outlive the
  // store.
  rocksdb::Env* env_for_test = nullptr;
};

// A message read back from the store.
struct StoredMessage {
  core::MessageRef message;  // verified (MessageRef::fromBytes)
  int64_t expiry_ms = core::kNoExpiry;
  uint64_t sequence = 0;
};

struct QueueInfo {
  uint64_t count = 0;
  uint64_t bytes = 0;
  uint64_t first_sequence = 0;     // 0 when empty
  int64_t oldest_enqueued_ms = 0;  // enqueue time of the first entry; 0 when empty
};

struct QueueStats {
  std::string endpoint;  // canonical endpoint name
  uint8_t priority_class = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;
  uint64_t first_sequence = 0;
  int64_t oldest_age_ms = -1;  // -1 when empty
};

struct StoreStats {
  std::vector<QueueStats> queues;  // sorted by endpoint name, then priority class
  uint64_t messages = 0;           // stored bodies (each once)
  uint64_t bytes = 0;              // their bytes
  // Drops since the store was created (persisted): references removed because their TTL
  // expired, and by the drop-oldest policy.
  uint64_t dropped_ttl_expiry = 0;
  uint64_t dropped_store_full = 0;
  // Since open(): appends refused by the reject policy (or a too-low disk).
  uint64_t rejected_store_full = 0;
  // Since open(): damaged entries skipped by readers (the backlog removes them; tools only skip).
  uint64_t corrupt_skipped = 0;
  // Since open(): message bytes stored (each body once), and what RocksDB wrote to disk for
  // them: WAL, flushes, compactions. (wal + flush + compaction) / appended is the write
  // amplification. Zero in read-only mode.
  uint64_t appended_bytes = 0;
  uint64_t wal_bytes = 0;
  uint64_t flush_bytes = 0;
  uint64_t compaction_bytes = 0;
  // Since open():
  uint64_t appends = 0;
  uint64_t releases = 0;
  uint64_t commits = 0;            // WriteBatch writes
  uint64_t batched_requests = 0;   // requests carried by those writes
  double average_batch = 0;        // batched_requests / commits
  // Highest sequence ever appended to any queue (the engine continues its sequence above it).
  uint64_t highest_sequence = 0;
  uint64_t keys_read_on_open = 0;  // recovery cost: keys read by open() (no queue scans)
  std::string repair_outcome;      // empty, "repaired" or "moved aside to <path>"
};

class RocksStore final : public core::MessageStore {
 public:
  using Options = RocksStoreOptions;

  // Opens (creating if missing) the store at options.path. Errors: kIoError (cannot create or
  // lock the directory: e.g. another hub uses it), kCorruption (damaged; nothing is changed
  // unless options.repair), kFailedPrecondition (written by an unknown format version).
  static core::Result<std::unique_ptr<RocksStore>> open(const Options& options,
                                                        const core::TimeSource& time);
  ~RocksStore() override;  // stop()
  RocksStore(const RocksStore&) = delete;
  RocksStore& operator=(const RocksStore&) = delete;

  // core::MessageStore
  std::string_view durability() const override;
  // Errors in the completion: kResourceExhausted (store full under the reject policy: the
  // caller closes the publisher; nothing accepted is lost), kInvalidArgument (unknown endpoint
  // index, more than 255 destinations), kUnavailable (stopping), kIoError (the write failed).
  void append(const core::MessageRef& message,
              std::span<const core::StoredDestination> destinations, core::Loop& reply_loop,
              core::StoreCompletion& completion, uint64_t token) override;
  // Marks the (message, endpoint) reference done; order does not matter. Unknown pairs are
  // ignored (already expired or dropped). With the copy's priority class and size (the engine
  // always gives them), a message that had this one reference is removed without a read.
  void release(const core::ReleasedCopy& copy) override;
  // Counted as a ttl_expiry drop (the engine found the copy expired in memory).
  void releaseExpired(const core::ReleasedCopy& copy) override;
  // The same with the class and size unknown (tools, tests): the store reads what it needs.
  void release(uint32_t endpoint, uint64_t sequence) { release(core::ReleasedCopy{endpoint, sequence}); }
  // The engine's backlog (core/engine/message_store.h): every copy is here, so the engine keeps
  // only queue heads in memory and reads the rest back with readQueue().
  bool keepsBacklog() const override { return true; }
  bool hasBacklog(uint32_t endpoint, uint8_t priority_class) const override;
  core::Status readBacklog(uint32_t endpoint, uint8_t priority_class, uint64_t after_sequence, size_t max,
                           std::vector<core::BacklogCopy>& out) override;
  uint64_t lastSequence() const override;
  uint64_t droppedThrough() const override;
  void saveTwin(std::string_view client_id, std::string_view document, core::Loop& reply_loop,
                core::StoreCompletion& completion, uint64_t token) override;
  core::Status loadTwins(std::vector<std::pair<std::string, std::string>>& out) const override;
  core::Status saveSession(std::string_view client_id, std::string_view record) override;
  core::Status loadSessions(std::vector<std::pair<std::string, std::string>>& out) const override;

  // Maps the current manifest's endpoint indexes to stable ids persisted in the store (queues
  // are keyed by endpoint name, because indexes change between manifests). Blocks until the
  // store thread applied it: every append()/release() issued after it returns uses the new
  // mapping. Call before the first append() and on every manifest change (with the engine's
  // producers quiesced, since a request in flight is mapped by whichever mapping it meets).
  core::Status setEndpoints(std::span<const core::EndpointInfo> endpoints);

  // Reads up to `max` entries of a queue with sequence > after_sequence, in order, skipping
  // expired ones. Reads committed data (RocksDB snapshot at the call). Any thread.
  // Damaged entries (garbage or truncated values, a missing body) are skipped, logged and
  // counted (StoreStats::corrupt_skipped); their sequences are appended to `damaged` if given.
  // Errors: RocksDB read failures (kIoError, kCorruption from RocksDB's own checksums).
  core::Status readQueue(uint32_t endpoint, uint8_t priority_class, uint64_t after_sequence,
                         size_t max, std::vector<StoredMessage>& out,
                         std::vector<uint64_t>* damaged = nullptr) const;
  // The same by endpoint name (tools; works in read-only mode).
  core::Status readQueueByName(std::string_view endpoint_name, uint8_t priority_class,
                               uint64_t after_sequence, size_t max,
                               std::vector<StoredMessage>& out) const;
  // Counters of one queue from metadata (no scan), as of the last commit. "First" and "oldest"
  // are in sequence order (sequences are assigned at ingress, so that is arrival order).
  QueueInfo queueInfo(uint32_t endpoint, uint8_t priority_class) const;
  StoreStats stats() const;

  // Stops accepting, finishes in-flight requests and their completions, flushes and closes.
  // Idempotent. REQUIRES: not on the store thread.
  void stop();

  // Wakes the store thread to run an expiry pass now (tests with a simulated clock).
  void runExpiryForTest();

  // Internal: one request to the store thread. Public only so that the helpers in
  // rocks_store.cc can name it; it is not part of the API.
  struct Request;

 private:
  RocksStore(const Options& options, const core::TimeSource& time);
  core::Status openDb();
  core::Status moveAside(std::string_view reason);
  rocksdb::Options rocksOptions() const;
  core::Status recover();
  void threadMain();
  void wake();
  bool push(Request&& request);
  void releaseWithReason(const core::ReleasedCopy& copy, uint8_t reason);

  const Options options_;
  const core::TimeSource& time_;
  std::unique_ptr<Db> db_;
  std::unique_ptr<StoreThreadState> state_;  // touched by the store thread only (and open())

  // Producer gate (like LoopThread): producers announce themselves before checking accepting_,
  // so stop() can close the gate and wait for in-flight pushes before draining.
  std::atomic<bool> accepting_{false};
  std::atomic<uint32_t> producers_{0};

  std::unique_ptr<core::MpscQueue<Request>> queue_;
  // Sleep/wake of the store thread only (documented above): never held per message.
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> expiry_requested_{false};
  std::atomic<bool> exit_requested_{false};

  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace edgehub::store
