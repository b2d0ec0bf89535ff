#include "store/rocks_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/cache.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdarg>
#include <deque>
#include <filesystem>
#include <map>
#include <tuple>
#include <unordered_map>

#include "core/log/logger.h"
#include "store/keys.h"

namespace edgehub::store {

namespace {

constexpr uint32_t kUnmapped = UINT32_MAX;
constexpr size_t kInlineDestinations = 4;
constexpr int kSpinsBeforeSleep = 64;

core::Status fromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return core::Status::ok();
  std::string msg(context);
  msg.append(": ");
  msg.append(s.ToString());
  if (s.IsCorruption()) return core::corruption(std::move(msg));
  if (s.IsNotFound()) return core::notFound(std::move(msg));
  if (s.IsInvalidArgument()) return core::invalidArgument(std::move(msg));
  return core::ioError(std::move(msg));
}

uint64_t queueId(uint32_t endpoint_id, uint8_t priority) {
  return (uint64_t{endpoint_id} << 8) | priority;
}

int64_t toMs(core::SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

rocksdb::Slice slice(const std::string& s) { return rocksdb::Slice(s.data(), s.size()); }

// Read-only inspection must not write a LOG file into a store it only looks at.
class NullLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

}  // namespace

// --- shared state -------------------------------------------------------------------------------

// The RocksDB handle plus what the store thread publishes for other threads (stats, queue
// info, the endpoint mapping). `mu` is taken once per batch by the store thread and by the
// cold readers; never by append()/release().
class Db {
 public:
  struct QueueSnapshot {
    keys::QueueMeta meta;
    uint64_t head_seq = 0;
    int64_t head_enqueued_ms = 0;
  };

  std::unique_ptr<rocksdb::DB> db;
  // Column families of db (owned; destroyed before db closes), in keys::kColumnFamilies order:
  // one per kind of sequence-ordered key, "default" for the rest (see columnFamilies()).
  std::vector<rocksdb::ColumnFamilyHandle*> handles;

  // The column family of a key, by its kind (first byte).
  rocksdb::ColumnFamilyHandle* cf(char prefix) const { return handles[keys::columnFamilyOf(prefix)]; }
  rocksdb::ColumnFamilyHandle* cf(const std::string& key) const { return cf(key.empty() ? '\0' : key[0]); }
  rocksdb::WriteOptions write_options;

  // Destroys the handles and closes (or just drops, if Close() is not wanted) the database.
  rocksdb::Status close(bool call_close) {
    rocksdb::Status s;
    if (db) {
      for (rocksdb::ColumnFamilyHandle* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
      if (call_close) s = db->Close();
    }
    handles.clear();
    db.reset();
    return s;
  }

  mutable std::mutex mu;
  std::vector<uint32_t> index_to_id;             // guarded by mu
  std::map<uint32_t, std::string> id_to_name;    // guarded by mu
  std::map<uint64_t, QueueSnapshot> queues;      // guarded by mu; key queueId()
  keys::Totals totals;                           // guarded by mu
  std::string repair_outcome;                    // set in open()

  std::atomic<uint64_t> appends{0}, releases{0}, commits{0}, batched{0};
  std::atomic<uint64_t> rejected_full{0};
  std::atomic<uint64_t> corrupt_skipped{0};  // damaged entries skipped by readers
  std::atomic<uint64_t> appended_bytes{0};   // message bytes stored since open
  std::atomic<uint64_t> dropped_through{0};  // highest sequence drop-oldest removed (this run)
  // RocksDB's counters (bytes written to the WAL, by flushes, by compactions): the write
  // amplification figure of issue 04. Tickers only; no histograms or timers.
  std::shared_ptr<rocksdb::Statistics> statistics;
  uint64_t keys_read_on_open = 0;  // written in open() only
};

// --- requests -----------------------------------------------------------------------------------

struct SetEndpointsWaiter {
  std::vector<std::string> names;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  core::Status status;
};

struct RocksStore::Request {
  enum class Kind : uint8_t { kAppend, kRelease, kSetEndpoints, kPut };
  Kind kind = Kind::kRelease;
  uint8_t inline_count = 0;
  uint8_t release_reason = 0;  // release: 0 delivered, 1 expired (BatchProcessor::removal_reason_)
  uint8_t release_class = core::kUnknownPriorityClass;  // release: the copy's priority class
  uint32_t endpoint = 0;  // release: endpoint index
  uint32_t release_bytes = 0;  // release: the copy's size (0: unknown)
  uint64_t sequence = 0;  // release
  uint64_t token = 0;
  core::MessageRef message;
  core::Loop* loop = nullptr;
  core::StoreCompletion* completion = nullptr;
  SetEndpointsWaiter* waiter = nullptr;
  // Destinations: up to four inline (no allocation for the common fan-out), more in `cold`.
  std::array<core::StoredDestination, kInlineDestinations> inline_dests{};
  // What few requests carry, kept out of line: every cell of the request queue is resident
  // (queue_capacity of them), so each byte here costs queue_capacity bytes of RSS.
  struct Cold {
    std::string put_key, put_value;  // kPut: a record of the default family (twins)
    std::vector<core::StoredDestination> extra_dests;  // appends with more than four
  };
  std::unique_ptr<Cold> cold;

  std::span<const core::StoredDestination> destinations() const {
    if (cold != nullptr && !cold->extra_dests.empty()) return cold->extra_dests;
    return {inline_dests.data(), inline_count};
  }
};

// Guards the queue's resident size (see Request::Cold).
static_assert(sizeof(RocksStore::Request) <= 144, "keep rarely used request fields in Request::Cold");

namespace {

// Posts completions to a loop; Loop::post() refuses when its queue is full and destroys what it
// was given, so each attempt gets its own copy and we retry until accepted (a completion is
// never dropped: the publisher would wait forever for its PUBACK).
void postCompletions(core::Loop* loop, core::StoreCompletion* completion,
                     const std::vector<uint64_t>& tokens, const core::Status& status) {
  while (true) {
    std::vector<uint64_t> copy = tokens;
    core::Status s = status;
    if (loop->post([completion, t = std::move(copy), s = std::move(s)]() {
          for (uint64_t token : t) completion->onStored(token, s);
        })) {
      return;
    }
    std::this_thread::yield();
  }
}

}  // namespace

// --- store-thread state -------------------------------------------------------------------------

// The single-reference messages of one queue written in this run and still stored, one bit per
// sequence. Such a message has no refs record (keys.cc, format 3): its one queue entry says
// everything, so it costs no record at append and, when its queue's set says it is still there,
// no read and no record tombstone at release (every upstream copy is one; docs/store.md). Kept
// per queue, so that a release naming another queue can never take it for its own. Sequences
// below known_from_ (written before this run, or evicted to keep all sets within their shared
// budget) are unknown: their release reads the queue entry instead, slower but as exact.
// Store thread only.
class SoleSet {
 public:
  enum class State : uint8_t { kLive, kAbsent, kUnknown };

  // Sequences from `first` on belong to this run (the engine numbers after the store's
  // highest): they start known and absent.
  void startAt(uint64_t first) {
    known_from_ = first;
    base_word_ = first / 64;
    words_.clear();
  }
  State state(uint64_t sequence) const {
    if (sequence < known_from_) return State::kUnknown;
    const uint64_t w = sequence / 64;
    if (w < base_word_ || w - base_word_ >= words_.size()) return State::kAbsent;
    return (words_[w - base_word_] >> (sequence % 64)) & 1 ? State::kLive : State::kAbsent;
  }
  // Returns how many words were added (the shared budget's count).
  size_t add(uint64_t sequence) {
    if (sequence < known_from_) return 0;  // stays unknown: exact through the read path
    const uint64_t w = sequence / 64;
    const size_t before = words_.size();
    if (words_.empty()) base_word_ = w;
    // Sequences reach the store nearly in order (two IO loops): growing at the front is rare.
    while (w < base_word_) {
      words_.push_front(0);
      --base_word_;
    }
    while (w - base_word_ >= words_.size()) words_.push_back(0);
    words_[w - base_word_] |= uint64_t{1} << (sequence % 64);
    return words_.size() - before;
  }
  void remove(uint64_t sequence) {
    if (state(sequence) != State::kLive) return;
    words_[sequence / 64 - base_word_] &= ~(uint64_t{1} << (sequence % 64));
  }
  // Drops the leading words that no longer hold a live message; returns how many.
  size_t trim() {
    size_t n = 0;
    while (!words_.empty() && words_.front() == 0) {
      words_.pop_front();
      ++base_word_;
      ++n;
    }
    return n;
  }
  // Forgets the oldest word (its messages become unknown); returns 1, or 0 when empty.
  size_t evictOldest() {
    if (words_.empty()) return 0;
    words_.pop_front();
    ++base_word_;
    known_from_ = std::max(known_from_, base_word_ * 64);
    return 1;
  }
  // After a failed write nothing in memory describes the disk: every sequence becomes unknown.
  size_t forget() {
    const size_t n = words_.size();
    known_from_ = UINT64_MAX;
    words_.clear();
    return n;
  }
  size_t words() const { return words_.size(); }

 private:
  uint64_t known_from_ = UINT64_MAX;  // unknown until the store thread starts this run
  uint64_t base_word_ = 0;
  std::deque<uint64_t> words_;
};

class StoreThreadState {
 public:
  struct QueueState {
    uint32_t endpoint_id = 0;
    uint8_t priority = 0;
    keys::QueueMeta meta;
    bool head_valid = true;
    uint64_t head_seq = 0;
    int64_t head_enqueued_ms = 0;
    bool dirty = false;
    // Smallest sequence appended to this queue in the current batch (not yet visible to
    // iterators), for recomputing the head before the write.
    uint64_t batch_min_seq = UINT64_MAX;
    int64_t batch_min_enqueued_ms = 0;
    SoleSet sole;  // this queue's single-reference messages of this run
  };
  struct BatchRecord {
    keys::RefsRecord record;
    bool dirty = false;
    bool deleted = false;
    bool appended = false;      // appended in this batch (not visible to iterators yet)
    // Appended with one destination: if that reference is still pending at the end of its
    // batch (and has no expiry_key), no refs record is written for it (keys.cc, format 3).
    bool single_destination = false;
    bool sole = false;          // has no refs record: its one queue entry describes it
    int64_t enqueued_ms = 0;    // set when appended
    // Appended in this batch: its body, written at the end of the batch with the references
    // still pending then. A copy released within its own batch (over half of them when the
    // consumer keeps up) is never written at all: no Put, no Delete, no compaction.
    core::MessageRef message;
    bool holds(uint32_t endpoint_id, uint8_t priority) const {
      return !deleted && std::any_of(record.refs.begin(), record.refs.end(),
                                     [&](const keys::Ref& ref) {
                                       return ref.endpoint_id == endpoint_id &&
                                              ref.priority == priority;
                                     });
    }
  };
  struct Group {
    core::Loop* loop;
    core::StoreCompletion* completion;
    std::vector<uint64_t> tokens;
    core::Status status;
  };

  std::vector<uint32_t> index_to_id;
  std::unordered_map<std::string, uint32_t> name_to_id;
  uint32_t next_endpoint_id = 1;
  std::unordered_map<uint64_t, QueueState> queues;
  keys::Totals totals;
  bool failed = false;  // a write failed: RocksDB is in an error state, refuse appends
  core::Status failure;

  // Reference records of recent messages, kept across batches so that the release of a
  // message appended a moment ago finds its record without a read (a consumer that keeps up
  // acknowledges within a few batches). `touched` lists what this batch created or changed;
  // after the write those are cleaned (deleted ones erased, flags reset), and the cache is
  // dropped whole when it outgrows max_cached_records (a backlog drain reads records back with
  // MultiGet and erases them as they go, so it never grows there).
  std::unordered_map<uint64_t, BatchRecord> records;
  std::vector<uint64_t> touched;
  // The queues' sole sets (QueueState::sole) share one budget: 2 MiB of bits, i.e. 16 Mi
  // sequences over all queues, whatever the backlog (RSS bounded, issue 04). Past it the set
  // with the most words forgets its oldest.
  static constexpr size_t kMaxSoleWords = 256 * 1024;
  size_t sole_words = 0;
  uint64_t first_sequence_of_run = UINT64_MAX;  // set when the store thread starts
  void addSole(QueueState& q, uint64_t sequence) {
    sole_words += q.sole.add(sequence);
    while (sole_words > kMaxSoleWords) {
      QueueState* largest = &q;
      for (auto& [qid, other] : queues) {
        if (other.sole.words() > largest->sole.words()) largest = &other;
      }
      const size_t n = largest->sole.evictOldest();
      if (n == 0) break;
      sole_words -= n;
    }
  }
  // Per batch (cleared after each write).
  std::vector<QueueState*> dirty_queues;
  std::vector<Group> groups;
  std::vector<SetEndpointsWaiter*> waiters;
  bool totals_dirty = false;

  int64_t expiry_cursor_ms = INT64_MIN;  // every committed expiry key below it is gone
  // Smallest expiry appended in the current batch: those keys are invisible to this batch's
  // expiry pass, so the cursor must not move past them.
  int64_t batch_min_expiry_ms = INT64_MAX;
  uint64_t drop_cursor = 0;              // every message below it is gone
  bool disk_low = false;
  std::chrono::steady_clock::time_point next_disk_check{};
  std::chrono::steady_clock::time_point next_expiry{};

  // Scratch, reused per key (no allocation at steady state).
  std::string key, value, key2, key3;

  QueueState& queue(uint32_t endpoint_id, uint8_t priority) {
    auto [it, inserted] = queues.try_emplace(queueId(endpoint_id, priority));
    if (inserted) {
      it->second.endpoint_id = endpoint_id;
      it->second.priority = priority;
      it->second.sole.startAt(first_sequence_of_run);
    }
    return it->second;
  }
  void markDirty(QueueState& q) {
    if (!q.dirty) {
      q.dirty = true;
      dirty_queues.push_back(&q);
    }
  }
  void addCompletion(core::Loop* loop, core::StoreCompletion* completion, uint64_t token,
                     core::Status status) {
    if (status.isOk()) {
      for (Group& g : groups) {
        if (g.loop == loop && g.completion == completion && g.status.isOk()) {
          g.tokens.push_back(token);
          return;
        }
      }
    }
    groups.push_back(Group{loop, completion, {token}, std::move(status)});
  }
};

// --- open / recover -----------------------------------------------------------------------------

RocksStore::RocksStore(const Options& options, const core::TimeSource& time)
    : options_(options),
      time_(time),
      db_(std::make_unique<Db>()),
      state_(std::make_unique<StoreThreadState>()) {}

RocksStore::~RocksStore() { stop(); }

std::string_view RocksStore::durability() const {
  return options_.durability == Options::Durability::kSync ? "sync" : "async";
}

core::Result<std::unique_ptr<RocksStore>> RocksStore::open(const Options& options,
                                                           const core::TimeSource& time) {
  if (options.path.empty()) return core::invalidArgument("store path is empty");
  auto store = std::unique_ptr<RocksStore>(new RocksStore(options, time));
  HUB_RETURN_IF_ERROR(store->openDb());
  core::Status recovered = store->recover();
  if (recovered.code() == core::StatusCode::kCorruption && options.repair && !options.read_only) {
    // RocksDB opened but our own records are damaged: nothing to repair them from.
    store->state_ = std::make_unique<StoreThreadState>();
    store->db_->id_to_name.clear();
    store->db_->queues.clear();
    HUB_RETURN_IF_ERROR(store->moveAside(recovered.message()));
    recovered = store->recover();
  }
  HUB_RETURN_IF_ERROR(recovered);
  if (!options.read_only) {
    store->queue_ = std::make_unique<core::MpscQueue<Request>>(options.queue_capacity);
    store->db_->write_options.sync = options.durability == Options::Durability::kSync;
    store->accepting_.store(true, std::memory_order_release);
    store->thread_ = std::thread([s = store.get()] { s->threadMain(); });
  }
  return store;
}

rocksdb::Options RocksStore::rocksOptions() const {
  rocksdb::Options ro;
  ro.create_if_missing = !options_.read_only;
  // Info logs: RocksDB rolls LOG at max_log_file_size and keeps keep_log_file_num files, so the
  // total stays within max_info_log_bytes (an edge device's disk is small and nobody rotates).
  ro.keep_log_file_num = 4;
  ro.max_log_file_size = std::max<uint64_t>(options_.max_info_log_bytes / 4, 64 * 1024);
  ro.recycle_log_file_num = 0;
  ro.max_background_jobs = 2;  // the machines have two cores shared with the IO loops
  // Open table files (each with its reader and metadata) are bounded too: a backlog of ten
  // million messages is a thousand files, and keeping all of them open made RSS grow with it.
  ro.max_open_files = 256;
  // Start writeback every MiB instead of letting gigabytes of a backlog pile up as dirty pages
  // for the kernel to flush in bursts. sync_file_range only starts the writeback; nothing
  // waits. (It did not cure the ingest slowing over a ten-million backlog: docs/benchmarks.md.)
  ro.bytes_per_sync = 1024 * 1024;
  ro.wal_bytes_per_sync = 1024 * 1024;
  // Keys of one kind arrive in increasing order (sequences grow), so a memtable insert can start
  // where the previous key of that kind went instead of searching the skip list from the top:
  // the skip-list search was most of the store thread's time per message.
  ro.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
  // Memory: RocksDB's defaults (64 MiB memtables, a 32 MiB block cache) alone exceed what the
  // weakest gateway can give the whole hub. Memtables are sized by memtable_bytes (two of them,
  // so one can flush while the other fills) and the block cache by block_cache_bytes.
  ro.write_buffer_size = std::max<uint64_t>(options_.memtable_bytes, 1024 * 1024);
  ro.max_write_buffer_number = 2;
  // Compaction output files as small as a flush: where keys of a family do overlap (the expiry
  // index, whose order across IO loops is only nearly the sequence order), a drain's tombstones
  // then meet a few small files instead of rewriting 64 MiB ones each time.
  ro.target_file_size_base = ro.write_buffer_size;
  // All column families together: the largest one flushes when their memtables exceed this.
  ro.db_write_buffer_size = 2 * ro.write_buffer_size;
  // No block compression: a backlog drain reads back every block it wrote, and with snappy
  // decompression was an eighth of the hub's CPU on two cores; a store holds messages for
  // hours, not years, so the disk it saves does not pay for the CPU.
  ro.compression = rocksdb::kNoCompression;
  ro.create_missing_column_families = !options_.read_only;
  // A WAL file is deleted only once every column family with data in it flushed; this makes
  // RocksDB flush a quiet family instead of keeping old logs around.
  ro.max_total_wal_size = 4 * ro.db_write_buffer_size;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(std::max<uint64_t>(options_.block_cache_bytes, 1024 * 1024));
  // Index and filter blocks in the (capped) block cache, not beside it: with a large backlog
  // they would otherwise grow with the data (memory bounded whatever the backlog, issue 04).
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (options_.read_only) ro.info_log = std::make_shared<NullLogger>();
  if (!options_.read_only) {
    if (!db_->statistics) {
      db_->statistics = rocksdb::CreateDBStatistics();
      db_->statistics->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
    }
    ro.statistics = db_->statistics;
  }
  if (options_.env_for_test != nullptr) ro.env = options_.env_for_test;
  return ro;
}

namespace {

// The store's column families (keys::kColumnFamilies), all with the options of `o`. Why each
// growing key kind lives apart: its keys (led by the hub-wide sequence or the expiry) only ever
// grow, so each flushed file covers a key range after every older file's, and RocksDB moves
// such files down the levels without rewriting them (trivial moves); a backlog of millions
// costs no compaction rewrites. Mixed in one family with the other kinds and the metadata,
// every file overlapped every other and compaction rewrote the bodies level after level, which
// made ingest slow down as the backlog grew.
std::vector<rocksdb::ColumnFamilyDescriptor> columnFamilies(const rocksdb::Options& o) {
  std::vector<rocksdb::ColumnFamilyDescriptor> out;
  for (std::string_view name : keys::kColumnFamilies) {
    out.emplace_back(std::string(name), rocksdb::ColumnFamilyOptions(o));
  }
  return out;
}

}  // namespace

core::Status RocksStore::openDb() {
  namespace fs = std::filesystem;
  const std::string& path = options_.path;
  std::error_code ec;
  if (options_.read_only) {
    if (!fs::exists(path, ec)) {
      std::string msg = "no store at ";
      msg.append(path);
      return core::notFound(std::move(msg));
    }
  } else {
    fs::create_directories(path, ec);
    if (ec) {
      std::string msg = "cannot create the store directory ";
      msg.append(path).append(": ").append(ec.message());
      return core::ioError(std::move(msg));
    }
  }

  rocksdb::Options ro = rocksOptions();

  const std::vector<rocksdb::ColumnFamilyDescriptor> families = columnFamilies(ro);
  auto doOpen = [&](Db& out) {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::Status s = options_.read_only
                            ? rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(ro), path, families, &handles, &raw)
                            : rocksdb::DB::Open(rocksdb::DBOptions(ro), path, families, &handles, &raw);
    out.db.reset(raw);
    out.handles = std::move(handles);
    return s;
  };

  rocksdb::Status s = doOpen(*db_);
  if (s.ok()) return core::Status::ok();

  const std::string rocks_msg = s.ToString();
  if (s.IsIOError() && rocks_msg.find("lock") != std::string::npos) {
    std::string msg = "store ";
    msg.append(path).append(
        " is in use by another process (RocksDB lock held); stop the other hub or use another "
        "data directory: ");
    msg.append(rocks_msg);
    return core::ioError(std::move(msg));
  }
  if (!s.IsCorruption()) {
    std::string msg = "cannot open the store at ";
    msg.append(path).append(": ").append(rocks_msg);
    return core::ioError(std::move(msg));
  }
  if (!options_.repair || options_.read_only) {
    std::string msg = "store ";
    msg.append(path).append(" is damaged (").append(rocks_msg).append(
        "); its data files were left as they are. Restart with store repair enabled to run RocksDB's repair; a "
        "store that cannot be repaired is then moved aside and an empty one created.");
    return core::corruption(std::move(msg));
  }

  HUB_LOG_WARN("store", "store %s is damaged (%s); running RocksDB repair", path.c_str(),
               rocks_msg.c_str());
  rocksdb::Status rs = rocksdb::RepairDB(path, rocksdb::DBOptions(ro), families);
  if (rs.ok()) {
    s = doOpen(*db_);
    if (s.ok()) {
      db_->repair_outcome = "repaired";
      HUB_LOG_WARN("store", "store %s repaired; messages in damaged files may be lost",
                   path.c_str());
      return core::Status::ok();
    }
  }
  return moveAside(rocks_msg);
}

core::Status RocksStore::moveAside(std::string_view reason) {
  // Beyond repair: keep the damaged files for forensics, start empty.
  namespace fs = std::filesystem;
  const std::string& path = options_.path;
  db_->close(false).PermitUncheckedError();
  std::error_code ec;
  const int64_t ms = toMs(time_.systemTime());
  std::string aside = path;
  aside.append(".damaged-").append(std::to_string(ms));
  fs::rename(path, aside, ec);
  if (ec) {
    std::string msg = "store ";
    msg.append(path).append(" is damaged beyond repair and could not be moved aside to ");
    msg.append(aside).append(": ").append(ec.message());
    return core::ioError(std::move(msg));
  }
  const std::string why(reason);
  HUB_LOG_ERROR("store", "store %s is damaged beyond repair (%s); moved aside to %s, starting empty",
                path.c_str(), why.c_str(), aside.c_str());
  fs::create_directories(path, ec);
  rocksdb::Options ro = rocksOptions();
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(rocksdb::DBOptions(ro), path, columnFamilies(ro), &handles, &raw);
  db_->db.reset(raw);
  db_->handles = std::move(handles);
  if (!s.ok()) return fromRocks(s, "opening a fresh store after moving the damaged one aside");
  db_->repair_outcome = "moved aside to ";
  db_->repair_outcome.append(aside);
  return core::Status::ok();
}

core::Status RocksStore::recover() {
  // Recovery reads only metadata: the format, the endpoint names, one record per queue and the
  // totals, then one seek per non-empty queue for its head. Messages and queue entries are read
  // lazily (readQueue), so opening does not depend on how much is stored.
  rocksdb::DB* db = db_->db.get();
  StoreThreadState& st = *state_;
  uint64_t keys_read = 0;
  auto damaged = [&](std::string_view what) {
    std::string msg = "store ";
    msg.append(options_.path).append(" is damaged: ").append(what).append(
        ". Restart with store repair enabled to move it aside and start empty.");
    return core::corruption(std::move(msg));
  };
  std::string value;

  keys::metaKey(st.key, keys::kMetaFormat);
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), slice(st.key), &value);
  ++keys_read;
  if (s.ok()) {
    auto v = keys::decodeFixed32(value);
    if (!v) return damaged("its format record is malformed");
    if (*v < keys::kOldestReadableFormat || *v > keys::kFormatVersion) {
      std::string msg = "store ";
      msg.append(options_.path).append(" has format version ").append(std::to_string(*v));
      msg.append(", this hub reads versions ").append(std::to_string(keys::kOldestReadableFormat));
      msg.append(" to ").append(std::to_string(keys::kFormatVersion));
      return core::failedPrecondition(std::move(msg));
    }
    if (*v != keys::kFormatVersion && !options_.read_only) {
      // Everything format 2 wrote reads the same in format 3; marking the store 3 before the
      // first new write keeps a format 2 hub from misreading messages without a refs record.
      keys::encodeFixed32(value, keys::kFormatVersion);
      HUB_RETURN_IF_ERROR(fromRocks(db->Put(rocksdb::WriteOptions(), slice(st.key), slice(value)),
                                    "upgrading the store format"));
    }
  } else if (s.IsNotFound()) {
    if (!options_.read_only) {
      keys::encodeFixed32(value, keys::kFormatVersion);
      HUB_RETURN_IF_ERROR(fromRocks(db->Put(rocksdb::WriteOptions(), slice(st.key), slice(value)),
                                    "writing the store format"));
    }
  } else {
    return fromRocks(s, "reading the store format");
  }

  keys::metaKey(st.key, keys::kMetaNextEndpointId);
  s = db->Get(rocksdb::ReadOptions(), slice(st.key), &value);
  ++keys_read;
  if (s.ok()) {
    auto v = keys::decodeFixed32(value);
    if (!v) return damaged("its endpoint counter is malformed");
    st.next_endpoint_id = *v;
  }
  keys::metaKey(st.key, keys::kMetaTotals);
  s = db->Get(rocksdb::ReadOptions(), slice(st.key), &value);
  ++keys_read;
  if (s.ok()) {
    auto v = keys::decodeTotals(value);
    if (!v) return damaged("its totals record is malformed");
    st.totals = *v;
  }

  auto scanPrefix = [&](char prefix, auto&& fn) -> core::Status {
    rocksdb::ReadOptions ro;
    std::string lower(1, prefix), upper(1, static_cast<char>(prefix + 1));
    rocksdb::Slice ub(upper);
    ro.iterate_upper_bound = &ub;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
    for (it->Seek(lower); it->Valid(); it->Next()) {
      ++keys_read;
      fn(std::string_view(it->key().data(), it->key().size()),
         std::string_view(it->value().data(), it->value().size()));
    }
    return fromRocks(it->status(), "reading store metadata");
  };
  bool malformed = false;
  HUB_RETURN_IF_ERROR(scanPrefix(keys::kEndpointPrefix, [&](std::string_view k, std::string_view v) {
    auto name = keys::parseEndpointKey(k);
    auto id = keys::decodeFixed32(v);
    if (!name || !id) {
      malformed = true;
      return;
    }
    st.name_to_id[*name] = *id;
    db_->id_to_name[*id] = *name;
    st.next_endpoint_id = std::max(st.next_endpoint_id, *id + 1);
  }));
  HUB_RETURN_IF_ERROR(scanPrefix(keys::kQueueMetaPrefix, [&](std::string_view k, std::string_view v) {
    uint8_t prio = 0;
    auto id = keys::parseQueueMetaKey(k, &prio);
    auto meta = keys::decodeQueueMeta(v);
    if (!id || !meta) {
      malformed = true;
      return;
    }
    auto& q = st.queue(*id, prio);
    q.meta = *meta;
  }));
  if (malformed) return damaged("an endpoint or queue record is malformed");

  // Heads: one seek per non-empty queue, starting at its checkpoint.
  for (auto& [qid, q] : st.queues) {
    q.head_valid = true;
    if (q.meta.count == 0) continue;
    rocksdb::ReadOptions ro;
    keys::queueUpperBound(st.key2, q.endpoint_id, q.priority);
    rocksdb::Slice ub(st.key2);
    ro.iterate_upper_bound = &ub;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, db_->cf(keys::kQueuePrefix)));
    keys::queueKey(st.key, q.endpoint_id, q.priority, q.meta.checkpoint);
    it->Seek(slice(st.key));
    ++keys_read;
    if (it->Valid()) {
      auto qk = keys::parseQueueKey(std::string_view(it->key().data(), it->key().size()));
      auto e = keys::decodeQueueEntry(std::string_view(it->value().data(), it->value().size()));
      if (qk && e) {
        q.head_seq = qk->sequence;
        q.head_enqueued_ms = e->enqueued_ms;
      }
    }
    HUB_RETURN_IF_ERROR(fromRocks(it->status(), "reading a queue head"));
  }

  // Publish.
  {
    std::lock_guard lock(db_->mu);
    db_->totals = st.totals;
    for (auto& [qid, q] : st.queues) {
      db_->queues[qid] = Db::QueueSnapshot{q.meta, q.head_seq, q.head_enqueued_ms};
    }
  }
  db_->keys_read_on_open = keys_read;
  return core::Status::ok();
}

// --- producers ----------------------------------------------------------------------------------

void RocksStore::wake() {
  // An exchange, not a load: read-modify-writes of one atomic are totally ordered, so either we
  // see the store thread's `true` (and notify under the mutex), or its exchange comes after ours
  // and synchronises with it, so it sees our request before it sleeps. (A fence pair would do
  // too, but ThreadSanitizer does not model fences.)
  if (sleeping_.exchange(false, std::memory_order_acq_rel)) {
    std::lock_guard lock(wake_mu_);
    wake_cv_.notify_one();
  }
}

bool RocksStore::push(Request&& request) {
  producers_.fetch_add(1, std::memory_order_seq_cst);
  if (!accepting_.load(std::memory_order_seq_cst)) {
    producers_.fetch_sub(1, std::memory_order_release);
    return false;
  }
  // A full queue is backpressure: wait for the store thread rather than drop or grow.
  while (!queue_->tryPush(std::move(request))) {
    wake();
    std::this_thread::yield();
  }
  producers_.fetch_sub(1, std::memory_order_release);
  wake();
  return true;
}

void RocksStore::append(const core::MessageRef& message,
                        std::span<const core::StoredDestination> destinations,
                        core::Loop& reply_loop, core::StoreCompletion& completion, uint64_t token) {
  if (options_.read_only || queue_ == nullptr) {
    postCompletions(&reply_loop, &completion, {token}, core::failedPrecondition("store is read-only"));
    return;
  }
  if (destinations.size() > 255) {
    postCompletions(&reply_loop, &completion, {token},
                    core::invalidArgument("a message may have at most 255 stored destinations"));
    return;
  }
  Request r;
  r.kind = Request::Kind::kAppend;
  r.message = message;
  r.loop = &reply_loop;
  r.completion = &completion;
  r.token = token;
  if (destinations.size() <= kInlineDestinations) {
    std::copy(destinations.begin(), destinations.end(), r.inline_dests.begin());
    r.inline_count = static_cast<uint8_t>(destinations.size());
  } else {
    r.cold = std::make_unique<Request::Cold>();
    r.cold->extra_dests.assign(destinations.begin(), destinations.end());
  }
  if (!push(std::move(r))) {
    postCompletions(&reply_loop, &completion, {token}, core::unavailable("store is stopping"));
  }
}

void RocksStore::release(const core::ReleasedCopy& copy) { releaseWithReason(copy, 0); }

void RocksStore::releaseExpired(const core::ReleasedCopy& copy) { releaseWithReason(copy, 1); }

void RocksStore::releaseWithReason(const core::ReleasedCopy& copy, uint8_t reason) {
  if (queue_ == nullptr) return;
  Request r;
  r.kind = Request::Kind::kRelease;
  r.endpoint = copy.endpoint;
  r.sequence = copy.sequence;
  r.release_class = copy.priority_class;
  r.release_bytes = copy.bytes;
  r.release_reason = reason;
  // After stop() a release is dropped: the reference stays stored and is delivered again after
  // the restart (at-least-once), which is the contract anyway.
  if (!push(std::move(r))) return;
}

core::Status RocksStore::setEndpoints(std::span<const core::EndpointInfo> endpoints) {
  if (queue_ == nullptr) return core::failedPrecondition("store is read-only");
  SetEndpointsWaiter waiter;
  for (const auto& e : endpoints) waiter.names.push_back(e.name);
  Request r;
  r.kind = Request::Kind::kSetEndpoints;
  r.waiter = &waiter;
  if (!push(std::move(r))) return core::unavailable("store is stopping");
  std::unique_lock lock(waiter.mu);
  waiter.cv.wait(lock, [&] { return waiter.done; });
  return waiter.status;
}

void RocksStore::runExpiryForTest() {
  expiry_requested_.store(true, std::memory_order_release);
  wake();
}

void RocksStore::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    accepting_.store(false, std::memory_order_seq_cst);
    // Wait for producers that passed the gate to finish their push (short: a push is a few
    // instructions unless the queue is full, and the store thread is still draining it).
    while (producers_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    exit_requested_.store(true, std::memory_order_release);
    {
      std::lock_guard lock(wake_mu_);
      wake_cv_.notify_one();
    }
    thread_.join();
  }
  if (db_->db && options_.read_only) {
    db_->close(true).PermitUncheckedError();  // read-only: nothing to lose
  }
  if (db_->db) {
    // Flush so that the next open replays no WAL; errors are logged, the WAL still has it all.
    rocksdb::FlushOptions fo;
    fo.wait = true;
    rocksdb::Status s = db_->db->Flush(fo, db_->handles);
    if (!s.ok()) HUB_LOG_WARN("store", "flush at stop failed: %s", s.ToString().c_str());
    s = db_->close(true);
    if (!s.ok()) HUB_LOG_WARN("store", "close failed: %s", s.ToString().c_str());
  }
}

// --- the store thread ---------------------------------------------------------------------------

namespace {

class BatchProcessor {
 public:
  BatchProcessor(StoreThreadState& st, Db& shared, const RocksStoreOptions& options,
                 const core::TimeSource& time)
      : st_(st), shared_(shared), options_(options), time_(time) {}

  void process(std::vector<RocksStore::Request>& requests, bool run_expiry);

 private:
  // What the caller knows of the reference it is after: its endpoint id (kAnyEndpoint when
  // unknown), its priority (-1 when unknown), the message's size (0 when unknown). Enough to
  // describe a single-reference message, which has no refs record, without reading it.
  static constexpr uint32_t kAnyEndpoint = 0xFFFFFFFFu;
  struct RefHint {
    uint32_t endpoint_id = kAnyEndpoint;
    int priority = -1;
    uint32_t size = 0;
  };
  StoreThreadState::BatchRecord* record(uint64_t sequence, const RefHint& hint);
  // The refs record of `sequence`; *absent is set when there is none (a read error leaves it).
  StoreThreadState::BatchRecord* readRefs(uint64_t sequence, bool* absent);
  static bool mayHold(const StoreThreadState::QueueState& q, uint64_t sequence, const RefHint& hint);
  StoreThreadState::QueueState* liveSoleQueue(uint64_t sequence, const RefHint& hint, bool* unknown);
  StoreThreadState::BatchRecord* soleFromEntry(uint64_t sequence, StoreThreadState::QueueState& q,
                                               uint32_t size_hint);
  StoreThreadState::BatchRecord* cacheSole(uint64_t sequence, uint32_t endpoint_id, uint8_t priority,
                                           uint32_t size, int64_t expiry_ms);
  bool removeRef(uint64_t sequence, const RefHint& hint);
  void doAppend(RocksStore::Request& r);
  void doRelease(const RocksStore::Request& r);
  void doSetEndpoints(RocksStore::Request& r);
  void expiryPass(int64_t now_ms);
  bool dropOldest();
  void recomputeHeads();
  void checkDisk();
  void prefetchRecords(const std::vector<RocksStore::Request>& requests);
  void prefetchSoleEntries(const std::vector<RocksStore::Request>& requests);
  template <class MakeKey>
  void multiGetSorted(char prefix, size_t n, MakeKey make_key);
  void writeAppended(uint64_t seq, StoreThreadState::BatchRecord& br);

  StoreThreadState& st_;
  Db& shared_;
  const RocksStoreOptions& options_;
  const core::TimeSource& time_;
  rocksdb::WriteBatch wb_;
  int removal_reason_ = 0;  // 0 release, 1 ttl, 2 store full
  // prefetchRecords() scratch, reused across batches.
  std::vector<uint64_t> prefetch_seqs_;
  std::vector<std::string> prefetch_keys_;
  std::vector<rocksdb::Slice> prefetch_slices_;
  std::vector<rocksdb::PinnableSlice> prefetch_values_;
  std::vector<rocksdb::Status> prefetch_statuses_;
  std::vector<uint64_t> absent_refs_;  // sequences whose refs record the prefetch did not find
  struct SolePrefetch {
    uint32_t endpoint_id;
    uint8_t priority;
    uint64_t sequence;
  };
  std::vector<SolePrefetch> sole_prefetch_;
};

}  // namespace

void RocksStore::threadMain() {
  std::vector<Request> batch;
  batch.reserve(options_.max_batch);
  BatchProcessor processor(*state_, *db_, options_, time_);
  StoreThreadState& st = *state_;
  const auto interval = std::chrono::milliseconds(std::max<uint32_t>(options_.expiry_interval_ms, 1));
  st.next_expiry = std::chrono::steady_clock::now();
  // Everything up to the highest sequence any queue ever held may be stored from an earlier run;
  // the engine numbers this run's messages after it.
  uint64_t highest = 0;
  for (const auto& [qid, q] : st.queues) highest = std::max(highest, q.meta.tail);
  st.first_sequence_of_run = highest + 1;
  for (auto& [qid, q] : st.queues) q.sole.startAt(st.first_sequence_of_run);
  while (true) {
    const bool exiting = exit_requested_.load(std::memory_order_acquire);
    batch.clear();
    Request r;
    while (batch.size() < options_.max_batch && queue_->tryPop(r)) batch.push_back(std::move(r));
    const auto now = std::chrono::steady_clock::now();
    bool run_expiry = expiry_requested_.exchange(false, std::memory_order_acq_rel);
    if (now >= st.next_expiry) {
      run_expiry = true;
    }
    if (run_expiry) st.next_expiry = now + interval;
    if (batch.empty() && !run_expiry) {
      if (exiting) break;
      // Under load the next request follows within microseconds, and a condvar sleep plus
      // wake-up costs tens of microseconds on these machines: look again a few times, yielding
      // the core, before sleeping.
      bool more = false;
      for (int i = 0; i < kSpinsBeforeSleep && !more; ++i) {
        std::this_thread::yield();
        more = !queue_->empty();
      }
      if (more) continue;
      sleeping_.exchange(true, std::memory_order_acq_rel);  // pairs with wake()
      if (queue_->empty()) {
        std::unique_lock lock(wake_mu_);
        wake_cv_.wait_until(lock, st.next_expiry, [&] {
          return !sleeping_.load(std::memory_order_acquire) ||
                 exit_requested_.load(std::memory_order_acquire) ||
                 expiry_requested_.load(std::memory_order_acquire);
        });
      }
      sleeping_.store(false, std::memory_order_relaxed);
      continue;
    }
    processor.process(batch, run_expiry);
    batch.clear();  // drop our MessageRef copies now, not when the next request arrives
  }
}

StoreThreadState::BatchRecord* BatchProcessor::record(uint64_t sequence, const RefHint& hint) {
  auto it = st_.records.find(sequence);
  if (it != st_.records.end()) {
    st_.touched.push_back(sequence);
    return &it->second;
  }
  bool unknown = false;
  if (StoreThreadState::QueueState* q = liveSoleQueue(sequence, hint, &unknown)) {
    if (hint.size != 0) {
      return cacheSole(sequence, q->endpoint_id, q->priority, hint.size, core::kNoExpiry);
    }
    return soleFromEntry(sequence, *q, hint.size);
  }
  bool absent = false;
  if (StoreThreadState::BatchRecord* br = readRefs(sequence, &absent)) return br;  // several references
  // A read error is no proof that the message has a single reference: leave it (as before).
  if (!absent || !unknown) return nullptr;  // or every queue it may be in knows it holds none
  // Written before this run (or forgotten by a full sole budget): its queue entry, if any.
  for (auto& [qid, q] : st_.queues) {
    if (!mayHold(q, sequence, hint) || q.sole.state(sequence) != SoleSet::State::kUnknown) continue;
    if (StoreThreadState::BatchRecord* br = soleFromEntry(sequence, q, hint.size)) return br;
  }
  return nullptr;
}

bool BatchProcessor::mayHold(const StoreThreadState::QueueState& q, uint64_t sequence,
                             const RefHint& hint) {
  if (hint.endpoint_id != kAnyEndpoint && q.endpoint_id != hint.endpoint_id) return false;
  if (hint.priority >= 0 && q.priority != hint.priority) return false;
  return q.meta.count != 0 && sequence >= q.meta.checkpoint && sequence <= q.meta.tail;
}

StoreThreadState::QueueState* BatchProcessor::liveSoleQueue(uint64_t sequence, const RefHint& hint,
                                                           bool* unknown) {
  if (hint.endpoint_id != kAnyEndpoint && hint.priority >= 0) {  // the engine's releases
    auto found = st_.queues.find(queueId(hint.endpoint_id, static_cast<uint8_t>(hint.priority)));
    if (found == st_.queues.end()) return nullptr;
    const SoleSet::State state = found->second.sole.state(sequence);
    *unknown = state == SoleSet::State::kUnknown;
    return state == SoleSet::State::kLive ? &found->second : nullptr;
  }
  for (auto& [qid, q] : st_.queues) {
    if (!mayHold(q, sequence, hint)) continue;
    const SoleSet::State state = q.sole.state(sequence);
    if (state == SoleSet::State::kLive) return &q;
    if (state == SoleSet::State::kUnknown) *unknown = true;
  }
  return nullptr;
}

StoreThreadState::BatchRecord* BatchProcessor::cacheSole(uint64_t sequence, uint32_t endpoint_id,
                                                         uint8_t priority, uint32_t size,
                                                         int64_t expiry_ms) {
  StoreThreadState::BatchRecord br;
  br.record.size = size;
  br.record.refs.push_back(keys::Ref{endpoint_id, priority, expiry_ms, false});
  br.single_destination = true;
  br.sole = true;
  st_.touched.push_back(sequence);
  return &st_.records.insert_or_assign(sequence, std::move(br)).first->second;
}

// A message without a refs record, described from its entry in queue q (nullptr: no entry).
StoreThreadState::BatchRecord* BatchProcessor::soleFromEntry(uint64_t sequence,
                                                             StoreThreadState::QueueState& q,
                                                             uint32_t size_hint) {
  keys::queueKey(st_.key, q.endpoint_id, q.priority, sequence);
  rocksdb::PinnableSlice v;
  rocksdb::Status s =
      shared_.db->Get(rocksdb::ReadOptions(), shared_.cf(keys::kQueuePrefix), slice(st_.key), &v);
  if (!s.ok()) {
    if (!s.IsNotFound()) HUB_LOG_ERROR("store", "reading a queue entry: %s", s.ToString().c_str());
    if (q.sole.state(sequence) == SoleSet::State::kLive) {
      HUB_LOG_ERROR("store", "message %llu is marked stored but has no queue entry",
                    static_cast<unsigned long long>(sequence));
      q.sole.remove(sequence);
    }
    return nullptr;
  }
  const auto entry = keys::decodeQueueEntry(std::string_view(v.data(), v.size()));
  // A damaged entry (the backlog reader removes those) still goes, with the size the release
  // gave, if it gave one.
  return cacheSole(sequence, q.endpoint_id, q.priority, entry ? entry->size : size_hint,
                   entry ? entry->expiry_ms : core::kNoExpiry);
}

StoreThreadState::BatchRecord* BatchProcessor::readRefs(uint64_t sequence, bool* absent) {
  keys::refsKey(st_.key, sequence);
  rocksdb::PinnableSlice v;
  rocksdb::Status s =
      shared_.db->Get(rocksdb::ReadOptions(), shared_.cf(keys::kRefsPrefix), slice(st_.key), &v);
  if (!s.ok()) {
    if (s.IsNotFound()) {
      *absent = true;
    } else {
      HUB_LOG_ERROR("store", "reading refs: %s", s.ToString().c_str());
    }
    return nullptr;
  }
  StoreThreadState::BatchRecord br;
  if (!keys::decodeRefs(std::string_view(v.data(), v.size()), br.record)) {
    HUB_BUG("malformed refs record");
    return nullptr;
  }
  st_.touched.push_back(sequence);
  return &st_.records.emplace(sequence, std::move(br)).first->second;
}

// Removes the reference (sequence, endpoint_id[, priority]) and the message with its last
// reference. priority < 0 means any (release() does not know it). Returns false if absent.
bool BatchProcessor::removeRef(uint64_t sequence, const RefHint& hint) {
  StoreThreadState::BatchRecord* br = record(sequence, hint);
  if (br == nullptr || br->deleted) return false;
  auto& refs = br->record.refs;
  auto it = std::find_if(refs.begin(), refs.end(), [&](const keys::Ref& ref) {
    return (hint.endpoint_id == kAnyEndpoint || ref.endpoint_id == hint.endpoint_id) &&
           (hint.priority < 0 || ref.priority == hint.priority);
  });
  if (it == refs.end()) return false;
  const keys::Ref ref = *it;
  refs.erase(it);
  br->dirty = true;
  if (!br->appended) {  // appended in this batch: nothing of it is written yet
    keys::queueKey(st_.key, ref.endpoint_id, ref.priority, sequence);
    wb_.Delete(shared_.cf(st_.key), slice(st_.key));
    if (ref.indexed) {
      keys::expiryKey(st_.key, ref.expiry_ms, sequence, ref.endpoint_id, ref.priority);
      wb_.Delete(shared_.cf(st_.key), slice(st_.key));
    }
  }
  auto& q = st_.queue(ref.endpoint_id, ref.priority);
  q.meta.count -= std::min<uint64_t>(q.meta.count, 1);
  q.meta.bytes -= std::min<uint64_t>(q.meta.bytes, br->record.size);
  if (q.head_valid && q.head_seq == sequence) q.head_valid = false;
  if (q.meta.count == 0) {
    q.head_valid = true;
    q.head_seq = 0;
    q.meta.checkpoint = q.meta.tail + 1;
  }
  st_.markDirty(q);
  if (removal_reason_ == 1) {
    ++st_.totals.dropped_ttl;
    st_.totals_dirty = true;
  } else if (removal_reason_ == 2) {
    ++st_.totals.dropped_full;
    st_.totals_dirty = true;
  }
  if (refs.empty()) {
    if (!br->appended) {
      keys::messageKey(st_.key, sequence);
      wb_.Delete(shared_.cf(st_.key), slice(st_.key));
      if (br->sole) {
        st_.queue(ref.endpoint_id, ref.priority).sole.remove(sequence);
      } else {
        keys::refsKey(st_.key, sequence);
        wb_.Delete(shared_.cf(st_.key), slice(st_.key));
      }
    }
    br->deleted = true;
    br->message = core::MessageRef();
    st_.totals.messages -= std::min<uint64_t>(st_.totals.messages, 1);
    st_.totals.bytes -= std::min<uint64_t>(st_.totals.bytes, br->record.size);
    st_.totals_dirty = true;
  }
  return true;
}

void BatchProcessor::checkDisk() {
  if (options_.min_free_disk_bytes == 0) return;
  // statvfs is a syscall: at most ten per second, whatever the batch rate.
  const auto now = std::chrono::steady_clock::now();
  if (now < st_.next_disk_check) return;
  st_.next_disk_check = now + std::chrono::milliseconds(100);
  struct statvfs vfs {};
  if (::statvfs(options_.path.c_str(), &vfs) != 0) return;
  const uint64_t free_bytes = uint64_t{vfs.f_bavail} * vfs.f_frsize;
  st_.disk_low = free_bytes < options_.min_free_disk_bytes;
}

bool BatchProcessor::dropOldest() {
  // The oldest message is the lowest sequence still stored; a cursor skips what we already
  // dropped so that repeated drops do not re-walk tombstones.
  rocksdb::ReadOptions ro;
  std::string upper(1, static_cast<char>(keys::kMessagePrefix + 1));
  rocksdb::Slice ub(upper);
  ro.iterate_upper_bound = &ub;
  std::unique_ptr<rocksdb::Iterator> it(shared_.db->NewIterator(ro, shared_.cf(keys::kMessagePrefix)));
  keys::messageKey(st_.key2, st_.drop_cursor);
  for (it->Seek(slice(st_.key2)); it->Valid(); it->Next()) {
    auto seq = keys::parseMessageKey(std::string_view(it->key().data(), it->key().size()));
    if (!seq) continue;
    StoreThreadState::BatchRecord* br =
        record(*seq, RefHint{kAnyEndpoint, -1, static_cast<uint32_t>(it->value().size())});
    if (br == nullptr || br->deleted) continue;
    st_.drop_cursor = *seq;
    if (*seq > shared_.dropped_through.load(std::memory_order_relaxed)) {
      shared_.dropped_through.store(*seq, std::memory_order_release);
    }
    removal_reason_ = 2;
    while (!br->record.refs.empty()) {
      const keys::Ref ref = br->record.refs.front();
      removeRef(*seq, RefHint{ref.endpoint_id, ref.priority, br->record.size});
    }
    removal_reason_ = 0;
    return true;
  }
  return false;
}

void BatchProcessor::doAppend(RocksStore::Request& r) {
  shared_.appends.fetch_add(1, std::memory_order_relaxed);
  if (st_.failed) {
    st_.addCompletion(r.loop, r.completion, r.token, st_.failure);
    return;
  }
  const auto dests = r.destinations();
  const auto bytes = r.message.bytes();
  const uint64_t sequence = r.message->sequence();
  const uint32_t size = static_cast<uint32_t>(bytes.size());

  keys::RefsRecord rec;
  rec.size = size;
  rec.refs.reserve(dests.size());
  for (const auto& d : dests) {
    if (d.endpoint >= st_.index_to_id.size() || st_.index_to_id[d.endpoint] == kUnmapped) {
      std::string msg = "unknown endpoint index ";
      msg.append(std::to_string(d.endpoint)).append(" (setEndpoints() not called?)");
      st_.addCompletion(r.loop, r.completion, r.token, core::invalidArgument(std::move(msg)));
      return;
    }
    if (d.priority_class >= core::kPriorityClasses) {
      st_.addCompletion(r.loop, r.completion, r.token,
                        core::invalidArgument("priority class out of range"));
      return;
    }
    const uint32_t id = st_.index_to_id[d.endpoint];
    if (std::any_of(rec.refs.begin(), rec.refs.end(),
                    [&](const keys::Ref& ref) { return ref.endpoint_id == id; })) {
      // The engine queues a message once per endpoint (router.h); two references of one
      // endpoint would make release() ambiguous.
      st_.addCompletion(r.loop, r.completion, r.token,
                        core::invalidArgument("endpoint listed twice in the destinations"));
      return;
    }
    rec.refs.push_back(keys::Ref{id, d.priority_class, d.expiry_ms});
  }
  if (rec.refs.empty()) {  // routed nowhere durable: nothing to keep
    st_.addCompletion(r.loop, r.completion, r.token, core::Status::ok());
    return;
  }

  // Limits. The bound is on stored body bytes (each message once).
  checkDisk();
  auto over = [&] {
    return st_.disk_low ||
           (options_.max_store_bytes != 0 && st_.totals.bytes + size > options_.max_store_bytes);
  };
  if (over()) {
    bool fits = false;
    if (options_.full_policy == RocksStoreOptions::FullPolicy::kDropOldest &&
        (options_.max_store_bytes == 0 || size <= options_.max_store_bytes)) {
      // Drop the oldest messages until the new one fits the byte bound and, when the disk is
      // low, until at least as many bytes were freed as the new message takes.
      uint64_t freed = 0;
      while (true) {
        const bool bytes_ok = options_.max_store_bytes == 0 ||
                              st_.totals.bytes + size <= options_.max_store_bytes;
        const bool disk_ok = !st_.disk_low || freed >= size;
        if (bytes_ok && disk_ok) {
          fits = true;
          break;
        }
        const uint64_t before = st_.totals.bytes;
        if (!dropOldest()) break;
        freed += before - st_.totals.bytes;
      }
    }
    if (!fits) {
      shared_.rejected_full.fetch_add(1, std::memory_order_relaxed);
      st_.addCompletion(r.loop, r.completion, r.token,
                        core::resourceExhausted(st_.disk_low
                                                    ? "store full: free disk space below the minimum"
                                                    : "store full: max store bytes reached"));
      return;
    }
  }

  shared_.appended_bytes.fetch_add(size, std::memory_order_relaxed);
  // The body, queue entries and expiry keys are written by writeAppended() at the end of the
  // batch, for the references still pending then (a copy released within the batch never is).
  const int64_t enqueued_ms = r.message->enqueued_time_ms();
  for (keys::Ref& ref : rec.refs) {
    auto& q = st_.queue(ref.endpoint_id, ref.priority);
    // Only a reference expiring earlier than one queued before it (a shorter route TTL behind
    // a longer one) gets an expiry_key; the head scan of the expiry pass finds the others.
    if (q.meta.count == 0) q.meta.max_expiry_ms = INT64_MIN;
    ref.indexed = ref.expiry_ms != core::kNoExpiry && ref.expiry_ms < q.meta.max_expiry_ms;
    if (ref.indexed) st_.batch_min_expiry_ms = std::min(st_.batch_min_expiry_ms, ref.expiry_ms);
    q.meta.max_expiry_ms = std::max(q.meta.max_expiry_ms, ref.expiry_ms);
    if (q.meta.count == 0) {
      q.head_valid = true;
      q.head_seq = sequence;
      q.head_enqueued_ms = enqueued_ms;
      q.meta.checkpoint = sequence;
    } else if (q.head_valid && sequence < q.head_seq) {
      q.head_seq = sequence;
      q.head_enqueued_ms = enqueued_ms;
    }
    if (sequence < q.batch_min_seq) {
      q.batch_min_seq = sequence;
      q.batch_min_enqueued_ms = enqueued_ms;
    }
    if (sequence < q.meta.checkpoint) q.meta.checkpoint = sequence;
    ++q.meta.count;
    q.meta.bytes += size;
    q.meta.tail = std::max(q.meta.tail, sequence);
    st_.markDirty(q);
  }
  if (sequence < st_.drop_cursor) st_.drop_cursor = sequence;
  st_.totals.messages += 1;
  st_.totals.bytes += size;
  st_.totals_dirty = true;
  auto& br = st_.records[sequence];
  st_.touched.push_back(sequence);
  br.single_destination = rec.refs.size() == 1;
  br.sole = false;
  br.record = std::move(rec);
  br.dirty = true;
  br.deleted = false;
  br.appended = true;
  br.enqueued_ms = enqueued_ms;
  br.message = r.message;
  st_.addCompletion(r.loop, r.completion, r.token, core::Status::ok());
}

void BatchProcessor::doRelease(const RocksStore::Request& r) {
  shared_.releases.fetch_add(1, std::memory_order_relaxed);
  if (r.endpoint >= st_.index_to_id.size() || st_.index_to_id[r.endpoint] == kUnmapped) return;
  removal_reason_ = r.release_reason;
  const int priority = r.release_class < core::kPriorityClasses ? r.release_class : -1;
  removeRef(r.sequence, RefHint{st_.index_to_id[r.endpoint], priority, r.release_bytes});
  removal_reason_ = 0;
}

void BatchProcessor::doSetEndpoints(RocksStore::Request& r) {
  st_.index_to_id.clear();
  bool added = false;
  for (const std::string& name : r.waiter->names) {
    auto it = st_.name_to_id.find(name);
    uint32_t id;
    if (it != st_.name_to_id.end()) {
      id = it->second;
    } else {
      id = st_.next_endpoint_id++;
      st_.name_to_id.emplace(name, id);
      keys::endpointKey(st_.key, name);
      keys::encodeFixed32(st_.value, id);
      wb_.Put(shared_.cf(st_.key), slice(st_.key), slice(st_.value));
      added = true;
    }
    st_.index_to_id.push_back(id);
  }
  if (added) {
    keys::metaKey(st_.key, keys::kMetaNextEndpointId);
    keys::encodeFixed32(st_.value, st_.next_endpoint_id);
    wb_.Put(shared_.cf(st_.key), slice(st_.key), slice(st_.value));
  }
  {
    std::lock_guard lock(shared_.mu);
    shared_.index_to_id = st_.index_to_id;
    for (const auto& [name, id] : st_.name_to_id) shared_.id_to_name[id] = name;
  }
  st_.waiters.push_back(r.waiter);
}

void BatchProcessor::expiryPass(int64_t now_ms) {
  // Visits only expiry keys with expiry <= now, starting from a cursor below which everything
  // is already gone: the cost is proportional to what expires.
  rocksdb::ReadOptions ro;
  keys::expiryBound(st_.key2, now_ms == INT64_MAX ? now_ms : now_ms + 1);
  rocksdb::Slice ub(st_.key2);
  ro.iterate_upper_bound = &ub;
  std::unique_ptr<rocksdb::Iterator> it(shared_.db->NewIterator(ro, shared_.cf(keys::kExpiryPrefix)));
  std::string start;
  keys::expiryBound(start, st_.expiry_cursor_ms);
  size_t n = 0;
  bool exhausted = true;
  removal_reason_ = 1;
  for (it->Seek(slice(start)); it->Valid(); it->Next()) {
    if (n >= options_.max_expiry_per_pass) {
      exhausted = false;
      break;
    }
    auto xk = keys::parseExpiryKey(std::string_view(it->key().data(), it->key().size()));
    if (!xk) continue;
    ++n;
    if (!removeRef(xk->sequence, RefHint{xk->endpoint_id, xk->priority, 0})) {
      // Stale index entry (reference already gone): remove it too.
      wb_.Delete(shared_.cf(keys::kExpiryPrefix), it->key());
    }
    st_.expiry_cursor_ms = xk->expiry_ms;
  }
  if (exhausted && it->status().ok()) st_.expiry_cursor_ms = std::min(now_ms, INT64_MAX - 1);
  it.reset();

  // Unindexed references: each queue's expired head, one seek per non-empty queue.
  for (auto& [qid, q] : st_.queues) {
    if (q.meta.count == 0 || n >= options_.max_expiry_per_pass) continue;
    rocksdb::ReadOptions hro;
    keys::queueUpperBound(st_.key2, q.endpoint_id, q.priority);
    rocksdb::Slice hub(st_.key2);
    hro.iterate_upper_bound = &hub;
    std::unique_ptr<rocksdb::Iterator> hit(shared_.db->NewIterator(hro, shared_.cf(keys::kQueuePrefix)));
    keys::queueKey(st_.key3, q.endpoint_id, q.priority, q.meta.checkpoint);
    for (hit->Seek(slice(st_.key3)); hit->Valid(); hit->Next()) {
      if (n >= options_.max_expiry_per_pass) {
        exhausted = false;
        break;
      }
      auto qk = keys::parseQueueKey(std::string_view(hit->key().data(), hit->key().size()));
      auto e = keys::decodeQueueEntry(std::string_view(hit->value().data(), hit->value().size()));
      if (!qk || !e) break;  // damaged: the backlog reader reports and removes it
      auto rec = st_.records.find(qk->sequence);
      if (rec != st_.records.end() && !rec->second.holds(q.endpoint_id, q.priority)) continue;  // gone in this batch
      if (e->expiry_ms > now_ms) break;
      ++n;
      removeRef(qk->sequence, RefHint{q.endpoint_id, q.priority, e->size});
    }
  }
  removal_reason_ = 0;
  if (!exhausted) st_.next_expiry = std::chrono::steady_clock::now();  // continue soon
}

void BatchProcessor::recomputeHeads() {
  // A queue whose head was removed in this batch finds its new head with one seek from its
  // checkpoint over committed entries, skipping those removed in this batch; entries appended in
  // this batch (not yet visible) compete through batch_min_seq.
  for (StoreThreadState::QueueState* q : st_.dirty_queues) {
    if (q->head_valid || q->meta.count == 0) continue;
    // The best candidate appended in this batch: usually batch_min_seq, unless that one was
    // removed again in the same batch (then look through the batch's records).
    uint64_t head = UINT64_MAX;
    int64_t head_ms = 0;
    if (q->batch_min_seq != UINT64_MAX) {
      auto it = st_.records.find(q->batch_min_seq);
      if (it != st_.records.end() && it->second.holds(q->endpoint_id, q->priority)) {
        head = q->batch_min_seq;
        head_ms = q->batch_min_enqueued_ms;
      } else {
        // Appended in this batch means touched in this batch: no walk over the whole cache.
        for (uint64_t seq : st_.touched) {
          auto found = st_.records.find(seq);
          if (found == st_.records.end()) continue;
          const StoreThreadState::BatchRecord& br = found->second;
          if (br.appended && seq < head && br.holds(q->endpoint_id, q->priority)) {
            head = seq;
            head_ms = br.enqueued_ms;
          }
        }
      }
    }
    rocksdb::ReadOptions ro;
    keys::queueUpperBound(st_.key2, q->endpoint_id, q->priority);
    rocksdb::Slice ub(st_.key2);
    ro.iterate_upper_bound = &ub;
    std::unique_ptr<rocksdb::Iterator> it(shared_.db->NewIterator(ro, shared_.cf(keys::kQueuePrefix)));
    keys::queueKey(st_.key, q->endpoint_id, q->priority, q->meta.checkpoint);
    for (it->Seek(slice(st_.key)); it->Valid(); it->Next()) {
      auto qk = keys::parseQueueKey(std::string_view(it->key().data(), it->key().size()));
      if (!qk) continue;
      if (qk->sequence >= head) break;
      auto rec = st_.records.find(qk->sequence);
      if (rec != st_.records.end() && !rec->second.holds(q->endpoint_id, q->priority)) {
        continue;  // removed in this batch
      }
      auto e = keys::decodeQueueEntry(std::string_view(it->value().data(), it->value().size()));
      head = qk->sequence;
      head_ms = e ? e->enqueued_ms : 0;
      break;
    }
    if (head != UINT64_MAX) {
      q->head_seq = head;
      q->head_enqueued_ms = head_ms;
      q->meta.checkpoint = head;
      q->head_valid = true;
    }
  }
}

// Reads the n keys of one family that make_key(i, key) builds, in key order, with one sorted
// MultiGet into prefetch_values_ and prefetch_statuses_ (scratch reused across batches).
template <class MakeKey>
void BatchProcessor::multiGetSorted(char prefix, size_t n, MakeKey make_key) {
  if (prefetch_keys_.size() < n) prefetch_keys_.resize(n);
  prefetch_slices_.clear();
  for (size_t i = 0; i < n; ++i) {
    make_key(i, prefetch_keys_[i]);
    prefetch_slices_.emplace_back(prefetch_keys_[i]);
  }
  prefetch_values_.resize(n);
  prefetch_statuses_.resize(n);
  shared_.db->MultiGet(rocksdb::ReadOptions(), shared_.cf(prefix), n, prefetch_slices_.data(), prefetch_values_.data(),
                       prefetch_statuses_.data(), /*sorted_input=*/true);
}

// The records that this batch's releases will need, read with one sorted MultiGet instead of
// one Get each: a backlog drain releases thousands of old messages per batch, and point lookups
// through the LSM levels were a third of the store thread's time.
void BatchProcessor::prefetchRecords(const std::vector<RocksStore::Request>& requests) {
  prefetch_seqs_.clear();
  for (const RocksStore::Request& r : requests) {
    if (r.kind != RocksStore::Request::Kind::kRelease || st_.records.contains(r.sequence)) continue;
    // A single-reference message of this run has no record to read (record()).
    if (r.release_class < core::kPriorityClasses && r.endpoint < st_.index_to_id.size()) {
      auto q = st_.queues.find(queueId(st_.index_to_id[r.endpoint], r.release_class));
      if (q != st_.queues.end() && q->second.sole.state(r.sequence) == SoleSet::State::kLive) continue;
    }
    prefetch_seqs_.push_back(r.sequence);
  }
  if (prefetch_seqs_.size() < 2) return;  // record() does one Get as well as a MultiGet
  std::sort(prefetch_seqs_.begin(), prefetch_seqs_.end());
  prefetch_seqs_.erase(std::unique(prefetch_seqs_.begin(), prefetch_seqs_.end()), prefetch_seqs_.end());
  const size_t n = prefetch_seqs_.size();
  multiGetSorted(keys::kRefsPrefix, n, [&](size_t i, std::string& key) { keys::refsKey(key, prefetch_seqs_[i]); });
  for (size_t i = 0; i < n; ++i) {
    if (prefetch_statuses_[i].ok()) {
      StoreThreadState::BatchRecord br;
      if (keys::decodeRefs(std::string_view(prefetch_values_[i].data(), prefetch_values_[i].size()), br.record)) {
        st_.records.emplace(prefetch_seqs_[i], std::move(br));
      }
    }
    // Anything else (not found: already gone; a read error) is left to record(), which
    // reports it as before.
    if (prefetch_statuses_[i].IsNotFound()) absent_refs_.push_back(prefetch_seqs_[i]);
    prefetch_values_[i].Reset();
  }
  prefetchSoleEntries(requests);
}

// After a restart every sole message is of an earlier run: its release finds no refs record and
// reads its queue entry (record()). Those entries are read here with one more sorted MultiGet,
// for the releases that name their queue and whose refs record the first one did not find.
void BatchProcessor::prefetchSoleEntries(const std::vector<RocksStore::Request>& requests) {
  sole_prefetch_.clear();
  if (!absent_refs_.empty()) {  // sorted: taken in prefetch_seqs_ order
    for (const RocksStore::Request& r : requests) {
      if (r.kind != RocksStore::Request::Kind::kRelease || r.release_class >= core::kPriorityClasses ||
          r.endpoint >= st_.index_to_id.size() || st_.index_to_id[r.endpoint] == kUnmapped) {
        continue;
      }
      if (!std::binary_search(absent_refs_.begin(), absent_refs_.end(), r.sequence)) continue;
      const uint32_t id = st_.index_to_id[r.endpoint];
      auto q = st_.queues.find(queueId(id, r.release_class));
      if (q == st_.queues.end() || q->second.sole.state(r.sequence) != SoleSet::State::kUnknown ||
          !mayHold(q->second, r.sequence, RefHint{id, r.release_class, 0})) {
        continue;
      }
      sole_prefetch_.push_back(SolePrefetch{id, r.release_class, r.sequence});
    }
  }
  absent_refs_.clear();
  if (sole_prefetch_.size() < 2) return;
  // Queue keys order by (endpoint id, priority, sequence).
  std::sort(sole_prefetch_.begin(), sole_prefetch_.end(), [](const SolePrefetch& a, const SolePrefetch& b) {
    return std::tie(a.endpoint_id, a.priority, a.sequence) < std::tie(b.endpoint_id, b.priority, b.sequence);
  });
  sole_prefetch_.erase(std::unique(sole_prefetch_.begin(), sole_prefetch_.end(),
                                   [](const SolePrefetch& a, const SolePrefetch& b) {
                                     return a.endpoint_id == b.endpoint_id && a.priority == b.priority &&
                                            a.sequence == b.sequence;
                                   }),
                       sole_prefetch_.end());
  const size_t n = sole_prefetch_.size();
  multiGetSorted(keys::kQueuePrefix, n, [&](size_t i, std::string& key) {
    keys::queueKey(key, sole_prefetch_[i].endpoint_id, sole_prefetch_[i].priority, sole_prefetch_[i].sequence);
  });
  for (size_t i = 0; i < n; ++i) {
    const SolePrefetch& p = sole_prefetch_[i];
    if (prefetch_statuses_[i].ok() && !st_.records.contains(p.sequence)) {
      const auto entry = keys::decodeQueueEntry(std::string_view(prefetch_values_[i].data(), prefetch_values_[i].size()));
      // A damaged entry is left to record(), which removes it with the size the release gives.
      if (entry) cacheSole(p.sequence, p.endpoint_id, p.priority, entry->size, entry->expiry_ms);
    }
    prefetch_values_[i].Reset();
  }
}

// What this batch appended and did not release again: the body, and the queue entry (and
// expiry key) of each reference still pending.
void BatchProcessor::writeAppended(uint64_t seq, StoreThreadState::BatchRecord& br) {
  // Only a message appended with one destination goes without a refs record: a message with
  // several whose others were released within the batch keeps one, so that a late release for
  // one of those endpoints can never be mistaken for the remaining reference.
  br.sole = br.single_destination && br.record.refs.size() == 1 && !br.record.refs[0].indexed;
  if (br.sole) st_.addSole(st_.queue(br.record.refs[0].endpoint_id, br.record.refs[0].priority), seq);
  const auto bytes = br.message.bytes();
  keys::messageKey(st_.key, seq);
  wb_.Put(shared_.cf(st_.key), slice(st_.key), rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  for (const keys::Ref& ref : br.record.refs) {
    keys::queueKey(st_.key, ref.endpoint_id, ref.priority, seq);
    keys::encodeQueueEntry(st_.value, keys::QueueEntry{ref.expiry_ms, br.enqueued_ms, br.record.size});
    wb_.Put(shared_.cf(st_.key), slice(st_.key), slice(st_.value));
    if (ref.indexed) {
      keys::expiryKey(st_.key, ref.expiry_ms, seq, ref.endpoint_id, ref.priority);
      wb_.Put(shared_.cf(st_.key), slice(st_.key), rocksdb::Slice());
    }
  }
  br.message = core::MessageRef();  // the WriteBatch holds a copy of the bytes now
}

void BatchProcessor::process(std::vector<RocksStore::Request>& requests, bool run_expiry) {
  wb_.Clear();
  prefetchRecords(requests);
  for (RocksStore::Request& r : requests) {
    switch (r.kind) {
      case RocksStore::Request::Kind::kAppend: doAppend(r); break;
      case RocksStore::Request::Kind::kRelease: doRelease(r); break;
      case RocksStore::Request::Kind::kSetEndpoints: doSetEndpoints(r); break;
      case RocksStore::Request::Kind::kPut:
        if (st_.failed) {
          st_.addCompletion(r.loop, r.completion, r.token, st_.failure);
        } else {
          wb_.Put(shared_.cf(r.cold->put_key), slice(r.cold->put_key), slice(r.cold->put_value));
          st_.addCompletion(r.loop, r.completion, r.token, core::Status::ok());
        }
        break;
    }
  }
  if (run_expiry && !st_.failed) expiryPass(toMs(time_.systemTime()));
  recomputeHeads();

  // Per-message and per-queue records, in the same batch as the entries they describe.
  std::sort(st_.touched.begin(), st_.touched.end());
  st_.touched.erase(std::unique(st_.touched.begin(), st_.touched.end()), st_.touched.end());
  for (uint64_t seq : st_.touched) {
    auto found = st_.records.find(seq);
    if (found == st_.records.end()) continue;
    StoreThreadState::BatchRecord& br = found->second;
    if (!br.dirty || br.deleted) continue;
    if (br.appended) writeAppended(seq, br);
    if (br.sole) continue;  // its queue entry is its record (keys.cc, format 3)
    keys::refsKey(st_.key, seq);
    keys::encodeRefs(st_.value, br.record);
    wb_.Put(shared_.cf(st_.key), slice(st_.key), slice(st_.value));
  }
  for (StoreThreadState::QueueState* q : st_.dirty_queues) {
    keys::queueMetaKey(st_.key, q->endpoint_id, q->priority);
    keys::encodeQueueMeta(st_.value, q->meta);
    wb_.Put(shared_.cf(st_.key), slice(st_.key), slice(st_.value));
  }
  if (st_.totals_dirty) {
    keys::metaKey(st_.key, keys::kMetaTotals);
    keys::encodeTotals(st_.value, st_.totals);
    wb_.Put(shared_.cf(st_.key), slice(st_.key), slice(st_.value));
  }

  core::Status write_status;
  if (wb_.Count() > 0 && !st_.failed) {
    rocksdb::Status s = shared_.db->Write(shared_.write_options, &wb_);
    shared_.commits.fetch_add(1, std::memory_order_relaxed);
    shared_.batched.fetch_add(requests.size(), std::memory_order_relaxed);
    if (!s.ok()) {
      // RocksDB stops accepting writes after a failed WAL write; our in-memory counters now
      // describe a batch that did not happen, so refuse everything from here on (the hub
      // restarts and recovers from what is on disk).
      write_status = fromRocks(s, "store write failed");
      HUB_LOG_ERROR("store", "%s", write_status.toString().c_str());
      st_.failed = true;
      st_.failure = write_status;
    }
  }

  // Publish before completing, so that whoever sees a completion sees its effect in stats().
  {
    std::lock_guard lock(shared_.mu);
    for (StoreThreadState::QueueState* q : st_.dirty_queues) {
      shared_.queues[queueId(q->endpoint_id, q->priority)] =
          Db::QueueSnapshot{q->meta, q->head_seq, q->head_enqueued_ms};
    }
    shared_.totals = st_.totals;
  }

  // Completions only after the write returned.
  for (auto& g : st_.groups) {
    const core::Status& status = g.status.isOk() && !write_status.isOk() ? write_status : g.status;
    postCompletions(g.loop, g.completion, g.tokens, status);
  }
  for (SetEndpointsWaiter* w : st_.waiters) {
    std::lock_guard lock(w->mu);
    w->status = write_status;
    w->done = true;
    w->cv.notify_one();
  }

  for (StoreThreadState::QueueState* q : st_.dirty_queues) {
    q->dirty = false;
    q->batch_min_seq = UINT64_MAX;
    st_.sole_words -= q->sole.trim();  // only a dirty queue's set changed
  }
  st_.dirty_queues.clear();
  for (uint64_t seq : st_.touched) {
    auto found = st_.records.find(seq);
    if (found == st_.records.end()) continue;
    if (found->second.deleted || st_.failed) {
      st_.records.erase(found);
    } else {
      found->second.dirty = false;
      found->second.appended = false;
    }
  }
  st_.touched.clear();
  if (st_.failed || st_.records.size() > options_.max_cached_records) st_.records.clear();
  if (st_.failed) {
    for (auto& [qid, q] : st_.queues) st_.sole_words -= q.sole.forget();
  }
  st_.groups.clear();
  st_.waiters.clear();
  st_.totals_dirty = false;
  st_.expiry_cursor_ms = std::min(st_.expiry_cursor_ms, st_.batch_min_expiry_ms);
  st_.batch_min_expiry_ms = INT64_MAX;
}

// --- readers ------------------------------------------------------------------------------------

namespace {

// Damaged entries (a queue value, or a body that is missing or fails flatbuffer verification)
// are skipped, counted and logged, and their sequences reported in `damaged` so that the caller
// can remove them: one bad value must not stop a queue from draining. Read errors of RocksDB
// itself still end the read with an error (they may be transient).
void noteDamaged(Db& shared, uint32_t id, uint8_t prio, uint64_t sequence, std::string_view what) {
  const uint64_t n = shared.corrupt_skipped.fetch_add(1, std::memory_order_relaxed) + 1;
  // Logged for the first few and then every 1,000th: a damaged file can hold millions.
  if (n <= 10 || n % 1000 == 0) {
    HUB_LOG_ERROR("store", "skipping damaged entry %llu of queue %u/%u: %.*s (%llu skipped so far)",
                  static_cast<unsigned long long>(sequence), id, static_cast<unsigned>(prio),
                  static_cast<int>(what.size()), what.data(), static_cast<unsigned long long>(n));
  }
}

core::Status readById(Db& shared, const core::TimeSource& time, uint32_t id, uint8_t prio,
                      uint64_t after_sequence, size_t max, std::vector<StoredMessage>& out,
                      std::vector<uint64_t>* damaged) {
  rocksdb::DB* db = shared.db.get();
  if (db == nullptr) return core::failedPrecondition("store is closed");
  const rocksdb::Snapshot* snap = db->GetSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  std::string upper, start, mkey;
  keys::queueUpperBound(upper, id, prio);
  rocksdb::Slice ub(upper);
  ro.iterate_upper_bound = &ub;
  const int64_t now_ms = toMs(time.systemTime());
  core::Status status;
  // Bodies are read with a second iterator moving forward alongside the queue: a queue's
  // sequences are increasing and mostly dense in the message range, so the next body is
  // usually a Next() away, where a Get would search every level again.
  rocksdb::ReadOptions mro;
  mro.snapshot = snap;
  const std::string message_upper(1, static_cast<char>(keys::kMessagePrefix + 1));
  rocksdb::Slice mub(message_upper);
  mro.iterate_upper_bound = &mub;
  std::unique_ptr<rocksdb::Iterator> bodies(db->NewIterator(mro, shared.cf(keys::kMessagePrefix)));
  auto findBody = [&](const std::string& key) -> bool {
    const rocksdb::Slice target(key);
    if (bodies->Valid() && bodies->key().compare(target) < 0) {
      for (int step = 0; step < 4 && bodies->Valid() && bodies->key().compare(target) < 0; ++step) bodies->Next();
    }
    if (!bodies->Valid() || bodies->key().compare(target) != 0) {
      if (!bodies->status().ok()) return false;
      bodies->Seek(target);
    }
    return bodies->Valid() && bodies->key().compare(target) == 0;
  };
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, shared.cf(keys::kQueuePrefix)));
    keys::queueKey(start, id, prio, after_sequence == UINT64_MAX ? after_sequence : after_sequence + 1);
    size_t n = 0;
    for (it->Seek(slice(start)); it->Valid() && n < max; it->Next()) {
      auto qk = keys::parseQueueKey(std::string_view(it->key().data(), it->key().size()));
      if (!qk) {
        // Inside the queue's key range but not a queue key: nothing to name or remove.
        noteDamaged(shared, id, prio, 0, "malformed queue key");
        continue;
      }
      auto e = keys::decodeQueueEntry(std::string_view(it->value().data(), it->value().size()));
      if (!e) {
        noteDamaged(shared, id, prio, qk->sequence, "malformed queue entry");
        if (damaged != nullptr) damaged->push_back(qk->sequence);
        continue;
      }
      if (e->expiry_ms <= now_ms) continue;  // expired: the expiry pass removes it
      keys::messageKey(mkey, qk->sequence);
      if (!findBody(mkey)) {
        if (!bodies->status().ok()) {
          status = fromRocks(bodies->status(), "reading a message");
          break;
        }
        noteDamaged(shared, id, prio, qk->sequence, "message body missing");
        if (damaged != nullptr) damaged->push_back(qk->sequence);
        continue;
      }
      const rocksdb::Slice body = bodies->value();
      auto ref = core::MessageRef::fromBytes(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
      if (!ref.isOk()) {
        noteDamaged(shared, id, prio, qk->sequence, ref.status().message());
        if (damaged != nullptr) damaged->push_back(qk->sequence);
        continue;
      }
      out.push_back(StoredMessage{std::move(ref).value(), e->expiry_ms, qk->sequence});
      ++n;
    }
    if (status.isOk()) status = fromRocks(it->status(), "reading a queue");
  }
  bodies.reset();
  db->ReleaseSnapshot(snap);
  return status;
}

}  // namespace

core::Status RocksStore::readQueue(uint32_t endpoint, uint8_t priority_class,
                                   uint64_t after_sequence, size_t max,
                                   std::vector<StoredMessage>& out,
                                   std::vector<uint64_t>* damaged) const {
  uint32_t id;
  {
    std::lock_guard lock(db_->mu);
    if (endpoint >= db_->index_to_id.size()) return core::invalidArgument("unknown endpoint index");
    id = db_->index_to_id[endpoint];
  }
  return readById(*db_, time_, id, priority_class, after_sequence, max, out, damaged);
}

core::Status RocksStore::readQueueByName(std::string_view endpoint_name, uint8_t priority_class,
                                         uint64_t after_sequence, size_t max,
                                         std::vector<StoredMessage>& out) const {
  std::optional<uint32_t> id;
  {
    std::lock_guard lock(db_->mu);
    for (const auto& [i, name] : db_->id_to_name) {
      if (name == endpoint_name) id = i;
    }
  }
  if (!id) {
    std::string msg = "no queue for endpoint '";
    msg.append(endpoint_name).append("' in the store");
    return core::notFound(std::move(msg));
  }
  return readById(*db_, time_, *id, priority_class, after_sequence, max, out, nullptr);
}

QueueInfo RocksStore::queueInfo(uint32_t endpoint, uint8_t priority_class) const {
  std::lock_guard lock(db_->mu);
  if (endpoint >= db_->index_to_id.size()) return {};
  auto it = db_->queues.find(queueId(db_->index_to_id[endpoint], priority_class));
  if (it == db_->queues.end() || it->second.meta.count == 0) return {};
  return QueueInfo{it->second.meta.count, it->second.meta.bytes, it->second.head_seq,
                   it->second.head_enqueued_ms};
}

uint64_t RocksStore::droppedThrough() const { return db_->dropped_through.load(std::memory_order_acquire); }

StoreStats RocksStore::stats() const {
  StoreStats s;
  const int64_t now_ms = toMs(time_.systemTime());
  {
    std::lock_guard lock(db_->mu);
    for (const auto& [qid, snap] : db_->queues) {
      const uint32_t id = static_cast<uint32_t>(qid >> 8);
      auto name = db_->id_to_name.find(id);
      s.highest_sequence = std::max(s.highest_sequence, snap.meta.tail);
      QueueStats q;
      if (name != db_->id_to_name.end()) {
        q.endpoint = name->second;
      } else {
        q.endpoint = "#";
        q.endpoint.append(std::to_string(id));
      }
      q.priority_class = static_cast<uint8_t>(qid & 0xff);
      q.count = snap.meta.count;
      q.bytes = snap.meta.bytes;
      if (q.count > 0) {
        q.first_sequence = snap.head_seq;
        q.oldest_age_ms = std::max<int64_t>(0, now_ms - snap.head_enqueued_ms);
      }
      s.queues.push_back(std::move(q));
    }
    s.messages = db_->totals.messages;
    s.bytes = db_->totals.bytes;
    // The drop counters come from the same published totals as the message count (after the
    // batch that dropped them committed), so a reader never sees a drop whose removal is not
    // yet in `messages` (store_policies_test polls one and then checks the other).
    s.dropped_ttl_expiry = db_->totals.dropped_ttl;
    s.dropped_store_full = db_->totals.dropped_full;
    s.repair_outcome = db_->repair_outcome;
  }
  std::sort(s.queues.begin(), s.queues.end(), [](const QueueStats& a, const QueueStats& b) {
    return a.endpoint != b.endpoint ? a.endpoint < b.endpoint : a.priority_class < b.priority_class;
  });
  s.rejected_store_full = db_->rejected_full.load(std::memory_order_relaxed);
  s.corrupt_skipped = db_->corrupt_skipped.load(std::memory_order_relaxed);
  s.appended_bytes = db_->appended_bytes.load(std::memory_order_relaxed);
  if (db_->statistics) {
    s.wal_bytes = db_->statistics->getTickerCount(rocksdb::WAL_FILE_BYTES);
    s.flush_bytes = db_->statistics->getTickerCount(rocksdb::FLUSH_WRITE_BYTES);
    s.compaction_bytes = db_->statistics->getTickerCount(rocksdb::COMPACT_WRITE_BYTES);
  }
  s.appends = db_->appends.load(std::memory_order_relaxed);
  s.releases = db_->releases.load(std::memory_order_relaxed);
  s.commits = db_->commits.load(std::memory_order_relaxed);
  s.batched_requests = db_->batched.load(std::memory_order_relaxed);
  s.average_batch = s.commits ? static_cast<double>(s.batched_requests) / s.commits : 0.0;
  s.keys_read_on_open = db_->keys_read_on_open;
  return s;
}

}  // namespace edgehub::store

namespace edgehub::store {

// Session records are written straight to RocksDB on the caller's (IO loop's) thread rather than
// through the group commit: they change only at CONNECT/SUBSCRIBE/UNSUBSCRIBE, and the caller
// needs them durable before it answers (a SUBACK promises the subscription).
core::Status RocksStore::saveSession(std::string_view client_id, std::string_view record) {
  if (options_.read_only) return core::failedPrecondition("the store is open read-only");
  std::string key = "S";
  key.append(client_id);
  rocksdb::Status s = record.empty()
                          ? db_->db->Delete(db_->write_options, rocksdb::Slice(key))
                          : db_->db->Put(db_->write_options, rocksdb::Slice(key),
                                         rocksdb::Slice(record.data(), record.size()));
  return fromRocks(s, "writing a session record");
}

void RocksStore::saveTwin(std::string_view client_id, std::string_view document, core::Loop& reply_loop,
                          core::StoreCompletion& completion, uint64_t token) {
  if (options_.read_only || queue_ == nullptr) {
    postCompletions(&reply_loop, &completion, {token}, core::failedPrecondition("store is read-only"));
    return;
  }
  Request r;
  r.kind = Request::Kind::kPut;
  r.cold = std::make_unique<Request::Cold>();
  r.cold->put_key.push_back(keys::kTwinPrefix);
  r.cold->put_key.append(client_id);
  r.cold->put_value.assign(document);
  r.loop = &reply_loop;
  r.completion = &completion;
  r.token = token;
  if (!push(std::move(r))) postCompletions(&reply_loop, &completion, {token}, core::unavailable("store is stopping"));
}

core::Status RocksStore::loadTwins(std::vector<std::pair<std::string, std::string>>& out) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(rocksdb::ReadOptions()));
  const char prefix[] = {keys::kTwinPrefix, 0};
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    out.emplace_back(it->key().ToString().substr(1), it->value().ToString());
  }
  return fromRocks(it->status(), "reading twins");
}

core::Status RocksStore::loadSessions(std::vector<std::pair<std::string, std::string>>& out) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("S"); it->Valid() && it->key().starts_with("S"); it->Next()) {
    out.emplace_back(it->key().ToString().substr(1), it->value().ToString());
  }
  return fromRocks(it->status(), "reading session records");
}

}  // namespace edgehub::store
