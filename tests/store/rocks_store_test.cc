#include "store/rocks_store.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include "core/loop/loop_thread.h"
#include "store/keys.h"
#include "store/tools/store_tools.h"
#include "tests/store/store_test_util.h"

namespace edgehub::store {
namespace {

using testing::makeMessage;
using testing::RecordingCompletion;
using testing::TempDir;
using testing::waitUntil;
using Durability = RocksStoreOptions::Durability;

// The store's RocksDB opened directly, behind the store's back (damage tests).
struct RawStore {
  explicit RawStore(const std::string& path) {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (std::string_view name : keys::kColumnFamilies) families.emplace_back(std::string(name), rocksdb::ColumnFamilyOptions());
    status = rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &raw);
    db.reset(raw);
  }
  ~RawStore() {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    if (db) db->Close().PermitUncheckedError();
  }
  rocksdb::ColumnFamilyHandle* meta() { return handles[keys::columnFamilyOf(keys::kMetaPrefix)]; }
  rocksdb::ColumnFamilyHandle* messages() { return handles[keys::columnFamilyOf(keys::kMessagePrefix)]; }
  rocksdb::ColumnFamilyHandle* queues() { return handles[keys::columnFamilyOf(keys::kQueuePrefix)]; }
  rocksdb::Status status;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
};

std::string bodyOf(const core::MessageRef& m) {
  return std::string(reinterpret_cast<const char*>(m.bytes().data()), m.bytes().size());
}

class RocksStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.start().isOk());
    endpoints_ = {testing::upstreamEndpoint(), testing::moduleEndpoint("a", "in"),
                  testing::moduleEndpoint("b", "in")};
  }
  void TearDown() override {
    store_.reset();
    loop_.stop();
  }

  RocksStore::Options options(Durability d = Durability::kAsync) {
    RocksStore::Options o;
    o.path = dir_.sub("store");
    o.durability = d;
    o.expiry_interval_ms = 10;
    return o;
  }
  void open(const RocksStore::Options& o) {
    auto r = RocksStore::open(o, time_);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    store_ = std::move(r).value();
    ASSERT_TRUE(store_->setEndpoints(endpoints_).isOk());
  }
  void reopen(const RocksStore::Options& o) {
    store_->stop();
    store_.reset();
    open(o);
  }
  // Appends and waits for the completion; returns its status.
  core::Status appendSync(const core::MessageRef& m, std::vector<core::StoredDestination> dests) {
    const size_t before = completion_.count();
    store_->append(m, dests, *loop_.loop(), completion_, m->sequence());
    EXPECT_TRUE(completion_.waitFor(before + 1));
    return completion_.status(m->sequence());
  }
  // Every request issued before returns processed and committed (setEndpoints waits for its
  // batch's write).
  void barrier() { ASSERT_TRUE(store_->setEndpoints(endpoints_).isOk()); }
  std::vector<StoredMessage> read(uint32_t endpoint, uint8_t prio, size_t max = 1'000'000) {
    std::vector<StoredMessage> out;
    EXPECT_TRUE(store_->readQueue(endpoint, prio, 0, max, out).isOk());
    return out;
  }
  int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               time_.systemTime().time_since_epoch())
        .count();
  }

  TempDir dir_;
  core::SimulatedTimeSource time_{std::chrono::milliseconds(testing::kEnqueuedMs + 1000)};
  RecordingCompletion completion_;  // outlives the loop (posted completions point at it)
  core::LoopThread loop_{"store-test"};
  std::vector<core::EndpointInfo> endpoints_;
  std::unique_ptr<RocksStore> store_;
};

TEST_F(RocksStoreTest, CompletionArrivesOnReplyLoopAfterTheWrite) {
  open(options(Durability::kSync));
  EXPECT_EQ(store_->durability(), "sync");
  std::atomic<int> checked{0};
  completion_.check = [&](uint64_t token, const core::Status& status) {
    EXPECT_TRUE(loop_.loop()->isThreadSafe()) << "completion not on the reply loop";
    EXPECT_TRUE(status.isOk()) << status.toString();
    // The write has returned: the message is readable and counted by then.
    std::vector<StoredMessage> out;
    EXPECT_TRUE(store_->readQueue(1, 3, token - 1, 1, out).isOk());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].sequence, token);
    EXPECT_GE(store_->stats().commits, 1u);
    checked.fetch_add(1);
  };
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    store_->append(makeMessage(seq, "hello"), std::vector<core::StoredDestination>{{1, 3, core::kNoExpiry}},
                   *loop_.loop(), completion_, seq);
  }
  ASSERT_TRUE(completion_.waitFor(20));
  EXPECT_EQ(checked.load(), 20);
  EXPECT_EQ(store_->queueInfo(1, 3).count, 20u);
  EXPECT_EQ(store_->queueInfo(1, 3).first_sequence, 1u);
}

TEST_F(RocksStoreTest, GroupCommitGroupsConcurrentAppends) {
  open(options(Durability::kSync));
  constexpr uint64_t kPerThread = 4000;
  auto producer = [&](uint64_t base) {
    for (uint64_t i = 0; i < kPerThread; ++i) {
      const uint64_t seq = base + i;
      store_->append(makeMessage(seq, "payload"),
                     std::vector<core::StoredDestination>{{0, 0, core::kNoExpiry}}, *loop_.loop(),
                     completion_, seq);
    }
  };
  std::thread t1(producer, 1), t2(producer, 1 + kPerThread);
  t1.join();
  t2.join();
  ASSERT_TRUE(completion_.waitFor(2 * kPerThread));
  const StoreStats s = store_->stats();
  EXPECT_EQ(s.appends, 2 * kPerThread);
  EXPECT_EQ(s.messages, 2 * kPerThread);
  // One fsync per group, not per message.
  EXPECT_LT(s.commits, 2 * kPerThread / 8) << "average batch " << s.average_batch;
  EXPECT_GT(s.average_batch, 8.0);
  EXPECT_EQ(store_->queueInfo(0, 0).count, 2 * kPerThread);
}

TEST_F(RocksStoreTest, SyncAndAsyncBothOpenAndStore) {
  for (Durability d : {Durability::kSync, Durability::kAsync}) {
    TempDir dir;
    RocksStore::Options o = options(d);
    o.path = dir.sub("store");
    open(o);
    EXPECT_EQ(store_->durability(), d == Durability::kSync ? "sync" : "async");
    EXPECT_TRUE(appendSync(makeMessage(7, "x"), {{2, 1, core::kNoExpiry}}).isOk());
    EXPECT_EQ(read(2, 1).size(), 1u);
    store_.reset();
  }
}

TEST_F(RocksStoreTest, ReopenRecoversMetadataAndContentExactly) {
  open(options());
  std::map<uint64_t, std::string> bytes;
  const int64_t expiry = nowMs() + 3'600'000;
  for (uint64_t seq = 1; seq <= 60; ++seq) {
    std::string body = "body-";
    body.append(std::to_string(seq));
    core::MessageRef m = makeMessage(seq, body);
    bytes[seq] = bodyOf(m);
    std::vector<core::StoredDestination> d;
    d.push_back({static_cast<uint32_t>(seq % 3), static_cast<uint8_t>(seq % 2 ? 0 : 10),
                 seq % 4 == 0 ? expiry : core::kNoExpiry});
    if (seq % 5 == 0) d.push_back({(static_cast<uint32_t>(seq) + 1) % 3, 4, core::kNoExpiry});
    store_->append(m, d, *loop_.loop(), completion_, seq);
  }
  ASSERT_TRUE(completion_.waitFor(60));
  store_->release(0, 3);  // out of order, one of several references
  barrier();
  const StoreStats before = store_->stats();

  // Reopen with the endpoints in another order: indexes change, names do not.
  std::rotate(endpoints_.begin(), endpoints_.begin() + 1, endpoints_.end());
  reopen(options());
  const StoreStats after = store_->stats();
  EXPECT_EQ(after.highest_sequence, 60u);
  EXPECT_EQ(after.messages, before.messages);
  EXPECT_EQ(after.bytes, before.bytes);
  ASSERT_EQ(after.queues.size(), before.queues.size());
  for (size_t i = 0; i < after.queues.size(); ++i) {
    EXPECT_EQ(after.queues[i].endpoint, before.queues[i].endpoint);
    EXPECT_EQ(after.queues[i].priority_class, before.queues[i].priority_class);
    EXPECT_EQ(after.queues[i].count, before.queues[i].count);
    EXPECT_EQ(after.queues[i].bytes, before.queues[i].bytes);
    EXPECT_EQ(after.queues[i].first_sequence, before.queues[i].first_sequence);
  }
  // Old index k is new index (k + 2) % 3.
  for (uint32_t old_ep = 0; old_ep < 3; ++old_ep) {
    const uint32_t new_ep = (old_ep + 2) % 3;
    for (uint8_t prio : {0, 4, 10}) {
      std::vector<StoredMessage> got = read(new_ep, prio);
      uint64_t last = 0;
      size_t expected = 0;
      for (uint64_t seq = 1; seq <= 60; ++seq) {
        const bool main = seq % 3 == old_ep && (seq % 2 ? 0 : 10) == prio && !(seq == 3 && old_ep == 0);
        const bool extra = seq % 5 == 0 && (seq + 1) % 3 == old_ep && prio == 4;
        if (main || extra) ++expected;
      }
      EXPECT_EQ(got.size(), expected) << "endpoint " << old_ep << " prio " << int(prio);
      EXPECT_EQ(store_->queueInfo(new_ep, prio).count, expected);
      for (const StoredMessage& m : got) {
        EXPECT_GT(m.sequence, last);  // sequence order
        last = m.sequence;
        EXPECT_EQ(m.message->sequence(), m.sequence);
        EXPECT_EQ(bodyOf(m.message), bytes[m.sequence]);  // byte-identical flatbuffer
        if (prio != 4) {
          EXPECT_EQ(m.expiry_ms, m.sequence % 4 == 0 ? expiry : core::kNoExpiry);
        }
      }
    }
  }
  // Appends keep working with the new mapping and land in the same named queue.
  EXPECT_TRUE(appendSync(makeMessage(100, "new"), {{2, 0, core::kNoExpiry}}).isOk());  // was 0
  EXPECT_EQ(read(2, 0).back().sequence, 100u);
}

TEST_F(RocksStoreTest, OutOfOrderReleasesDeleteOnlyAfterEveryReference) {
  open(options());
  for (uint64_t seq = 1; seq <= 10; ++seq) {
    store_->append(makeMessage(seq, "fan-out"),
                   std::vector<core::StoredDestination>{{0, 0, core::kNoExpiry},
                                                        {1, 5, core::kNoExpiry},
                                                        {2, 10, core::kNoExpiry}},
                   *loop_.loop(), completion_, seq);
  }
  ASSERT_TRUE(completion_.waitFor(10));
  EXPECT_EQ(store_->stats().messages, 10u);

  // Endpoint 0 acknowledges everything in a scrambled order; bodies stay (others need them).
  for (uint64_t seq : {5, 2, 9, 1, 10, 3, 7, 4, 8, 6}) store_->release(0, seq);
  barrier();
  EXPECT_EQ(store_->stats().messages, 10u);
  EXPECT_EQ(store_->queueInfo(0, 0).count, 0u);
  EXPECT_TRUE(read(0, 0).empty());
  EXPECT_EQ(read(1, 5).size(), 10u);

  // Endpoint 1 acknowledges a window out of order, leaving a gap at the head.
  for (uint64_t seq : {4, 3, 6, 2}) store_->release(1, seq);
  barrier();
  EXPECT_EQ(store_->queueInfo(1, 5).count, 6u);
  EXPECT_EQ(store_->queueInfo(1, 5).first_sequence, 1u);
  store_->release(1, 1);  // the head: the checkpoint moves past the contiguous run to 5
  barrier();
  EXPECT_EQ(store_->queueInfo(1, 5).first_sequence, 5u);
  EXPECT_EQ(store_->stats().messages, 10u);

  // Endpoint 2 releases 1-4: those messages have no reference left and go.
  for (uint64_t seq : {2, 4, 1, 3}) store_->release(2, seq);
  barrier();
  EXPECT_EQ(store_->stats().messages, 6u);
  // A duplicate or unknown release is ignored.
  store_->release(2, 2);
  store_->release(0, 999);
  barrier();
  EXPECT_EQ(store_->stats().messages, 6u);

  // After a restart the state is the same, and finishing the releases empties the store.
  reopen(options());
  EXPECT_EQ(store_->stats().messages, 6u);
  EXPECT_EQ(store_->queueInfo(1, 5).first_sequence, 5u);
  EXPECT_EQ(store_->queueInfo(2, 10).first_sequence, 5u);
  for (uint64_t seq = 5; seq <= 10; ++seq) {
    store_->release(2, seq);
    store_->release(1, seq);
  }
  barrier();
  const StoreStats s = store_->stats();
  EXPECT_EQ(s.messages, 0u);
  EXPECT_EQ(s.bytes, 0u);
  for (const QueueStats& q : s.queues) EXPECT_EQ(q.count, 0u) << q.endpoint;
}

// Keys of one column family, counted behind the store's back (the store must be stopped).
size_t countKeys(RawStore& raw, rocksdb::ColumnFamilyHandle* family) {
  std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(rocksdb::ReadOptions(), family));
  size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  return n;
}

// Format 3: a message appended with one destination has no refs record; its queue entry says
// all. Whichever way its release arrives (with the engine's class and size or without, in the
// run that wrote it or after a reopen, with the record cache or without it), the message leaves
// exactly once, and a repeated or misdirected release changes nothing.
TEST_F(RocksStoreTest, SingleDestinationMessagesHaveNoRefsRecordAndLeaveExactlyOnce) {
  for (size_t cache : {size_t{16 * 1024}, size_t{0}}) {
    SCOPED_TRACE("record cache " + std::to_string(cache));
    RocksStore::Options o = options();
    o.path = dir_.sub("store-" + std::to_string(cache));
    o.max_cached_records = cache;
    open(o);
    const size_t completed_before = completion_.count();
    struct Copy {
      uint32_t endpoint;
      uint8_t prio;
      uint32_t size;
    };
    std::map<uint64_t, std::vector<Copy>> model;  // what must still be stored
    auto append = [&](uint64_t seq) {
      core::MessageRef m = makeMessage(seq, "single-" + std::to_string(seq));
      const auto size = static_cast<uint32_t>(m.bytes().size());
      std::vector<core::StoredDestination> d;
      if (seq % 4 == 0) {  // fanned out: keeps its refs record
        d = {{0, 0, core::kNoExpiry}, {1, 5, core::kNoExpiry}};
      } else {
        d = {{static_cast<uint32_t>(seq % 3), static_cast<uint8_t>(seq % 2 ? 0 : 10), core::kNoExpiry}};
      }
      for (const auto& x : d) model[seq].push_back(Copy{x.endpoint, x.priority_class, size});
      store_->append(m, d, *loop_.loop(), completion_, seq);
    };
    auto hinted = [&](uint64_t seq, const Copy& c) {
      store_->release(core::ReleasedCopy{c.endpoint, seq, c.prio, c.size});
    };
    auto forget = [&](uint64_t seq, uint32_t endpoint) {
      auto& copies = model[seq];
      copies.erase(std::remove_if(copies.begin(), copies.end(), [&](const Copy& c) { return c.endpoint == endpoint; }),
                   copies.end());
      if (copies.empty()) model.erase(seq);
    };
    auto check = [&] {
      barrier();
      const StoreStats st = store_->stats();
      uint64_t bytes = 0;
      std::map<std::pair<uint32_t, uint8_t>, uint64_t> counts;
      for (const auto& [seq, copies] : model) {
        bytes += copies.front().size;
        for (const Copy& c : copies) ++counts[{c.endpoint, c.prio}];
      }
      EXPECT_EQ(st.messages, model.size());
      EXPECT_EQ(st.bytes, bytes);
      for (uint32_t e = 0; e < 3; ++e) {
        for (uint8_t prio : {0, 5, 10}) {
          const uint64_t want = counts[{e, prio}];
          EXPECT_EQ(store_->queueInfo(e, prio).count, want) << e << "/" << int(prio);
          std::vector<StoredMessage> got = read(e, prio);
          EXPECT_EQ(got.size(), want) << e << "/" << int(prio);
          for (const StoredMessage& m : got) {
            auto it = model.find(m.sequence);
            EXPECT_TRUE(it != model.end()) << "released message " << m.sequence << " still read";
          }
        }
      }
    };

    for (uint64_t seq = 1; seq <= 40; ++seq) append(seq);
    ASSERT_TRUE(completion_.waitFor(completed_before + 40));
    check();

    // This run: with the engine's class and size, without them, repeated, misdirected.
    for (uint64_t seq : {1, 2, 3}) {
      hinted(seq, model[seq].front());
      forget(seq, model[seq].front().endpoint);
    }
    store_->release(static_cast<uint32_t>(5 % 3), 5);
    forget(5, 5 % 3);
    hinted(1, Copy{1 % 3, 0, 100});                                   // again: ignored
    store_->release(core::ReleasedCopy{(6 % 3 + 1) % 3, 6, 10, 100});  // not its endpoint
    store_->release((7 % 3 + 2) % 3, 7);                              // not its endpoint
    hinted(4, model[4][0]);  // one of a fanned-out message's two
    forget(4, 0);
    check();

    store_->stop();
    store_.reset();
    {
      RawStore raw(o.path);
      ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
      // Refs records only for the fanned-out messages (4, 8, ..., 40).
      EXPECT_EQ(countKeys(raw, raw.handles[keys::columnFamilyOf(keys::kRefsPrefix)]), 10u);
      EXPECT_EQ(countKeys(raw, raw.messages()), model.size());
      std::string key, value;
      keys::metaKey(key, keys::kMetaFormat);
      ASSERT_TRUE(raw.db->Get(rocksdb::ReadOptions(), raw.meta(), key, &value).ok());
      EXPECT_EQ(keys::decodeFixed32(value), keys::kFormatVersion);
    }

    // After a reopen (written by an earlier run): the same ways again.
    open(o);
    check();
    hinted(9, model[9].front());
    forget(9, model[9].front().endpoint);
    store_->release(static_cast<uint32_t>(10 % 3), 10);
    forget(10, 10 % 3);
    hinted(9, Copy{0, 0, 100});  // again: ignored
    hinted(4, Copy{1, 5, model[4][0].size});  // the fanned-out message's last reference
    forget(4, 1);
    // And new appends of this run next to the old ones.
    for (uint64_t seq = 41; seq <= 60; ++seq) append(seq);
    ASSERT_TRUE(completion_.waitFor(completed_before + 60));
    for (uint64_t seq = 41; seq <= 60; seq += 3) {
      hinted(seq, model[seq].front());
      forget(seq, model[seq].front().endpoint);
    }
    check();

    // Everything left, with the class and size a backlog read gives: the store ends empty.
    for (uint32_t e = 0; e < 3; ++e) {
      for (uint8_t prio : {0, 5, 10}) {
        for (const StoredMessage& m : read(e, prio)) {
          store_->release(core::ReleasedCopy{e, m.sequence, prio, static_cast<uint32_t>(m.message.bytes().size())});
          forget(m.sequence, e);
        }
      }
    }
    check();
    EXPECT_TRUE(model.empty());
    store_->stop();
    store_.reset();
    {
      RawStore raw(o.path);
      ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
      EXPECT_EQ(countKeys(raw, raw.messages()), 0u);
      EXPECT_EQ(countKeys(raw, raw.queues()), 0u);
      EXPECT_EQ(countKeys(raw, raw.handles[keys::columnFamilyOf(keys::kRefsPrefix)]), 0u);
    }
  }
}

// A backlog of single-destination messages written before a restart, released in bulk as a
// drain does (whole batches of releases, read back with MultiGet), with a few fanned-out
// messages among them: every release lands once, and the store ends empty.
TEST_F(RocksStoreTest, SoleMessagesOfAnEarlierRunAreReleasedInBulkAfterARestart) {
  open(options());
  constexpr uint64_t kMessages = 3000;
  for (uint64_t seq = 1; seq <= kMessages; ++seq) {
    std::vector<core::StoredDestination> d = {{static_cast<uint32_t>(seq % 2), 10, core::kNoExpiry}};
    if (seq % 100 == 0) d.push_back({2, 10, core::kNoExpiry});
    store_->append(makeMessage(seq, "backlog"), d, *loop_.loop(), completion_, seq);
  }
  ASSERT_TRUE(completion_.waitFor(kMessages));
  reopen(options());
  EXPECT_EQ(store_->stats().messages, kMessages);
  for (uint32_t e = 0; e < 3; ++e) {
    for (const StoredMessage& m : read(e, 10)) {
      store_->release(core::ReleasedCopy{e, m.sequence, 10, static_cast<uint32_t>(m.message.bytes().size())});
    }
  }
  // Released again (a consumer's duplicate acknowledgements after a reconnect): ignored.
  for (uint64_t seq = 1; seq <= 50; ++seq) store_->release(core::ReleasedCopy{static_cast<uint32_t>(seq % 2), seq, 10, 100});
  barrier();
  const StoreStats st = store_->stats();
  EXPECT_EQ(st.messages, 0u);
  EXPECT_EQ(st.bytes, 0u);
  for (const QueueStats& q : st.queues) EXPECT_EQ(q.count, 0u) << q.endpoint;
  store_->stop();
  store_.reset();
  RawStore raw(options().path);
  ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
  EXPECT_EQ(countKeys(raw, raw.messages()), 0u);
  EXPECT_EQ(countKeys(raw, raw.queues()), 0u);
  EXPECT_EQ(countKeys(raw, raw.handles[keys::columnFamilyOf(keys::kRefsPrefix)]), 0u);
}

// A format 2 store (a refs record for every message) opens and is marked format 3; a store of a
// format this hub does not know is refused with the versions named, and left as it was.
TEST_F(RocksStoreTest, FormatTwoStoresOpenAndUnknownFormatsAreRefused) {
  open(options());
  ASSERT_TRUE(appendSync(makeMessage(1, "old"), {{1, 0, core::kNoExpiry}}).isOk());
  store_->stop();
  store_.reset();
  std::string key, value;
  keys::metaKey(key, keys::kMetaFormat);
  auto setFormat = [&](uint32_t v) {
    RawStore raw(options().path);
    ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
    keys::encodeFixed32(value, v);
    ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), raw.meta(), key, value).ok());
  };
  auto format = [&]() -> uint32_t {
    RawStore raw(options().path);
    EXPECT_TRUE(raw.status.ok()) << raw.status.ToString();
    EXPECT_TRUE(raw.db->Get(rocksdb::ReadOptions(), raw.meta(), key, &value).ok());
    return keys::decodeFixed32(value).value_or(0);
  };
  setFormat(2);
  open(options());
  EXPECT_EQ(read(1, 0).size(), 1u);
  store_->release(1, 1);
  barrier();
  EXPECT_EQ(store_->stats().messages, 0u);
  store_->stop();
  store_.reset();
  EXPECT_EQ(format(), 3u);

  setFormat(4);
  auto r = RocksStore::open(options(), time_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), core::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("format version 4"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("versions 2 to 3"), std::string::npos) << r.status().message();
  EXPECT_EQ(format(), 4u);
}

TEST_F(RocksStoreTest, ReleaseRightAfterAppendKeepsHeadAndCountsExact) {
  open(options());
  // Releases issued right behind their appends mostly land in the same batch: the head and the
  // counters must account for entries that were added and removed before any write.
  for (uint64_t seq = 1; seq <= 2000; ++seq) {
    store_->append(makeMessage(seq, "quick"),
                   std::vector<core::StoredDestination>{{1, 6, core::kNoExpiry}}, *loop_.loop(),
                   completion_, seq);
    if (seq % 2 == 1 || seq <= 100) store_->release(1, seq);
  }
  ASSERT_TRUE(completion_.waitFor(2000));
  barrier();
  const QueueInfo info = store_->queueInfo(1, 6);
  EXPECT_EQ(info.count, 950u);
  EXPECT_EQ(info.first_sequence, 102u);
  std::vector<StoredMessage> q = read(1, 6);
  ASSERT_EQ(q.size(), 950u);
  EXPECT_EQ(q.front().sequence, 102u);
  for (const StoredMessage& m : q) EXPECT_EQ(m.sequence % 2, 0u);
  EXPECT_EQ(store_->stats().messages, 950u);
  reopen(options());
  EXPECT_EQ(store_->queueInfo(1, 6).count, 950u);
  EXPECT_EQ(store_->queueInfo(1, 6).first_sequence, 102u);
}

TEST_F(RocksStoreTest, TtlExpiryRemovesContinuouslyAndCounts) {
  open(options());
  const int64_t soon = nowMs() + 5'000;
  // 100 messages to a queue nobody reads, expiring soon; 10 that never expire; 5 fanned out
  // with an expiry on one reference only.
  for (uint64_t seq = 1; seq <= 100; ++seq) {
    store_->append(makeMessage(seq, "ttl"), std::vector<core::StoredDestination>{{1, 2, soon}},
                   *loop_.loop(), completion_, seq);
  }
  for (uint64_t seq = 101; seq <= 110; ++seq) {
    store_->append(makeMessage(seq, "keep"),
                   std::vector<core::StoredDestination>{{2, 2, core::kNoExpiry}}, *loop_.loop(),
                   completion_, seq);
  }
  for (uint64_t seq = 111; seq <= 115; ++seq) {
    store_->append(makeMessage(seq, "mixed"),
                   std::vector<core::StoredDestination>{{0, 0, soon}, {2, 2, core::kNoExpiry}},
                   *loop_.loop(), completion_, seq);
  }
  ASSERT_TRUE(completion_.waitFor(115));
  barrier();
  EXPECT_EQ(store_->stats().dropped_ttl_expiry, 0u);  // not yet expired
  EXPECT_EQ(store_->stats().messages, 115u);

  time_.advance(std::chrono::seconds(10));
  // No explicit trigger: the periodic pass (every 10 ms here) finds them.
  ASSERT_TRUE(waitUntil([&] { return store_->stats().dropped_ttl_expiry == 105; }))
      << store_->stats().dropped_ttl_expiry;
  barrier();
  StoreStats s = store_->stats();
  EXPECT_EQ(s.messages, 15u);  // 10 "keep" + 5 "mixed" still wanted by endpoint 2
  EXPECT_EQ(store_->queueInfo(1, 2).count, 0u);
  EXPECT_EQ(store_->queueInfo(0, 0).count, 0u);
  EXPECT_EQ(store_->queueInfo(2, 2).count, 15u);

  // A second wave, later: expiry keeps running, and readers skip expired entries at once.
  const int64_t later = nowMs() + 1'000;
  for (uint64_t seq = 200; seq < 250; ++seq) {
    store_->append(makeMessage(seq, "wave2"), std::vector<core::StoredDestination>{{1, 7, later}},
                   *loop_.loop(), completion_, seq);
  }
  ASSERT_TRUE(completion_.waitFor(165));
  EXPECT_EQ(read(1, 7).size(), 50u);
  time_.advance(std::chrono::seconds(2));
  EXPECT_TRUE(read(1, 7).empty());
  store_->runExpiryForTest();
  ASSERT_TRUE(waitUntil([&] { return store_->stats().dropped_ttl_expiry == 155; }));
  barrier();
  EXPECT_EQ(store_->stats().messages, 15u);
  reopen(options());  // drop counters are persisted with the totals
  EXPECT_EQ(store_->stats().dropped_ttl_expiry, 155u);
  EXPECT_EQ(store_->stats().messages, 15u);
}

// Within one queue, references expiring in queue order need no expiry index (the head scan
// finds them); a shorter TTL queued behind a longer one is indexed and expires first anyway,
// also after a reopen.
TEST_F(RocksStoreTest, ShorterTtlBehindALongerOneExpiresFirstAcrossAReopen) {
  open(options());
  const int64_t t0 = nowMs();
  auto append = [&](uint64_t seq, int64_t expiry) {
    return appendSync(makeMessage(seq, "m" + std::to_string(seq)), {{1, 4, expiry}});
  };
  ASSERT_TRUE(append(1, t0 + 60'000).isOk());  // long
  ASSERT_TRUE(append(2, t0 + 60'000).isOk());  // long, in order: not indexed
  ASSERT_TRUE(append(3, t0 + 1'000).isOk());   // short behind long: indexed
  reopen(options());                             // the latest expiry is recovered from the tail
  ASSERT_TRUE(append(4, t0 + 2'000).isOk());   // short behind long, after the reopen: indexed
  ASSERT_TRUE(append(5, t0 + 90'000).isOk());  // longest: not indexed

  time_.advance(std::chrono::seconds(5));
  store_->runExpiryForTest();
  ASSERT_TRUE(waitUntil([&] { return store_->stats().dropped_ttl_expiry == 2; }))
      << store_->stats().dropped_ttl_expiry;
  barrier();
  std::vector<uint64_t> left;
  for (const StoredMessage& m : read(1, 4)) left.push_back(m.sequence);
  EXPECT_EQ(left, (std::vector<uint64_t>{1, 2, 5}));

  time_.advance(std::chrono::seconds(60));  // past the long ones, not the longest
  store_->runExpiryForTest();
  ASSERT_TRUE(waitUntil([&] { return store_->stats().dropped_ttl_expiry == 4; }))
      << store_->stats().dropped_ttl_expiry;
  barrier();
  EXPECT_EQ(store_->queueInfo(1, 4).count, 1u);
  EXPECT_EQ(store_->stats().messages, 1u) << "the expired bodies left the disk";

  time_.advance(std::chrono::seconds(60));
  store_->runExpiryForTest();
  ASSERT_TRUE(waitUntil([&] { return store_->stats().dropped_ttl_expiry == 5; }));
  barrier();
  EXPECT_EQ(store_->stats().messages, 0u);
}

TEST_F(RocksStoreTest, ExpiredOnArrivalIsRemovedToo) {
  open(options());
  const int64_t past = nowMs() - 1;
  EXPECT_TRUE(appendSync(makeMessage(1, "late"), {{1, 1, past}}).isOk());
  store_->runExpiryForTest();
  ASSERT_TRUE(waitUntil([&] { return store_->stats().dropped_ttl_expiry == 1; }));
  barrier();
  EXPECT_EQ(store_->stats().messages, 0u);
}

TEST_F(RocksStoreTest, RejectPolicyRefusesWhenFullAndAcceptsAfterReleases) {
  const uint64_t size = makeMessage(1, std::string(100, 'r')).bytes().size();
  RocksStore::Options o = options();
  o.max_store_bytes = 5 * size + size / 2;
  o.full_policy = RocksStoreOptions::FullPolicy::kReject;
  open(o);
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    EXPECT_TRUE(appendSync(makeMessage(seq, std::string(100, 'r')), {{0, 0, core::kNoExpiry}}).isOk());
  }
  for (uint64_t seq = 6; seq <= 7; ++seq) {
    core::Status s = appendSync(makeMessage(seq, std::string(100, 'r')), {{0, 0, core::kNoExpiry}});
    EXPECT_EQ(s.code(), core::StatusCode::kResourceExhausted) << s.toString();
  }
  StoreStats st = store_->stats();
  EXPECT_EQ(st.rejected_store_full, 2u);
  EXPECT_EQ(st.messages, 5u);
  EXPECT_EQ(st.dropped_store_full, 0u);  // nothing accepted was lost
  EXPECT_EQ(read(0, 0).size(), 5u);

  store_->release(0, 1);
  store_->release(0, 2);
  barrier();
  EXPECT_TRUE(appendSync(makeMessage(8, std::string(100, 'r')), {{0, 0, core::kNoExpiry}}).isOk());
  EXPECT_TRUE(appendSync(makeMessage(9, std::string(100, 'r')), {{0, 0, core::kNoExpiry}}).isOk());
  EXPECT_EQ(appendSync(makeMessage(10, std::string(100, 'r')), {{0, 0, core::kNoExpiry}}).code(),
            core::StatusCode::kResourceExhausted);
  std::vector<StoredMessage> q = read(0, 0);
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q.front().sequence, 3u);
  EXPECT_EQ(q.back().sequence, 9u);
}

TEST_F(RocksStoreTest, DropOldestDropsTheOldestAndCounts) {
  const uint64_t size = makeMessage(1, std::string(100, 'd')).bytes().size();
  RocksStore::Options o = options();
  o.max_store_bytes = 5 * size + size / 2;
  o.full_policy = RocksStoreOptions::FullPolicy::kDropOldest;
  open(o);
  for (uint64_t seq = 1; seq <= 8; ++seq) {
    EXPECT_TRUE(appendSync(makeMessage(seq, std::string(100, 'd')),
                           {{0, 0, core::kNoExpiry}, {1, 3, core::kNoExpiry}})
                    .isOk());
  }
  const StoreStats s = store_->stats();
  EXPECT_EQ(s.messages, 5u);
  EXPECT_EQ(s.dropped_store_full, 6u);  // three messages, two references each
  EXPECT_EQ(s.rejected_store_full, 0u);
  for (uint32_t ep : {0u, 1u}) {
    std::vector<StoredMessage> q = read(ep, ep == 0 ? 0 : 3);
    ASSERT_EQ(q.size(), 5u);
    EXPECT_EQ(q.front().sequence, 4u);
    EXPECT_EQ(q.back().sequence, 8u);
  }
  EXPECT_EQ(store_->queueInfo(0, 0).first_sequence, 4u);
  reopen(o);
  EXPECT_EQ(store_->stats().dropped_store_full, 6u);
  // A message larger than the whole bound can never fit: refused, nothing dropped for it.
  EXPECT_EQ(appendSync(makeMessage(9, std::string(10 * size, 'd')), {{0, 0, core::kNoExpiry}}).code(),
            core::StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->stats().messages, 5u);
}

// The same policy over single-destination messages (no refs record: the store finds each one's
// queue), with and without the record cache, and after a reopen (messages of an earlier run).
TEST_F(RocksStoreTest, DropOldestFindsTheQueuesOfSingleDestinationMessages) {
  const uint64_t size = makeMessage(1, std::string(100, 'd')).bytes().size();
  for (size_t cache : {size_t{16 * 1024}, size_t{0}}) {
    SCOPED_TRACE("record cache " + std::to_string(cache));
    RocksStore::Options o = options();
    o.path = dir_.sub("drop-" + std::to_string(cache));
    o.max_store_bytes = 5 * size + size / 2;
    o.full_policy = RocksStoreOptions::FullPolicy::kDropOldest;
    o.max_cached_records = cache;
    open(o);
    auto dest = [](uint64_t seq) {
      return std::vector<core::StoredDestination>{{static_cast<uint32_t>(seq % 2), static_cast<uint8_t>(seq % 2 ? 3 : 0), core::kNoExpiry}};
    };
    for (uint64_t seq = 1; seq <= 8; ++seq) {
      EXPECT_TRUE(appendSync(makeMessage(seq, std::string(100, 'd')), dest(seq)).isOk());
    }
    EXPECT_EQ(store_->stats().messages, 5u);
    EXPECT_EQ(store_->stats().dropped_store_full, 3u);
    reopen(o);
    for (uint64_t seq = 9; seq <= 11; ++seq) {
      EXPECT_TRUE(appendSync(makeMessage(seq, std::string(100, 'd')), dest(seq)).isOk());
    }
    const StoreStats st = store_->stats();
    EXPECT_EQ(st.messages, 5u);
    uint64_t bytes = 0;  // of 7-11 (a sequence's digits can change a message's size)
    for (uint64_t seq = 7; seq <= 11; ++seq) bytes += makeMessage(seq, std::string(100, 'd')).bytes().size();
    EXPECT_EQ(st.bytes, bytes);
    EXPECT_EQ(st.dropped_store_full, 6u);
    std::vector<uint64_t> left;
    for (uint32_t ep : {0u, 1u}) {
      for (const StoredMessage& m : read(ep, ep == 0 ? 0 : 3)) left.push_back(m.sequence);
      EXPECT_EQ(store_->queueInfo(ep, ep == 0 ? 0 : 3).count, ep == 0 ? 2u : 3u);
    }
    std::sort(left.begin(), left.end());
    EXPECT_EQ(left, (std::vector<uint64_t>{7, 8, 9, 10, 11}));
    store_->stop();
    store_.reset();
  }
}

TEST_F(RocksStoreTest, MinFreeDiskMakesTheStoreFull) {
  RocksStore::Options o = options();
  o.min_free_disk_bytes = UINT64_MAX / 2;  // no disk has that much free
  open(o);
  EXPECT_EQ(appendSync(makeMessage(1, "x"), {{0, 0, core::kNoExpiry}}).code(),
            core::StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->stats().rejected_store_full, 1u);
}

TEST_F(RocksStoreTest, AppendAfterStopCompletesUnavailable) {
  open(options());
  store_->stop();
  store_->stop();  // idempotent
  store_->append(makeMessage(1, "late"), std::vector<core::StoredDestination>{{0, 0, core::kNoExpiry}},
                 *loop_.loop(), completion_, 1);
  ASSERT_TRUE(completion_.waitFor(1));
  EXPECT_EQ(completion_.status(1).code(), core::StatusCode::kUnavailable);
}

TEST_F(RocksStoreTest, BadDestinationsAreErrors) {
  open(options());
  EXPECT_EQ(appendSync(makeMessage(1, "x"), {{17, 0, core::kNoExpiry}}).code(),
            core::StatusCode::kInvalidArgument);
  EXPECT_EQ(appendSync(makeMessage(2, "x"), {{1, 0, core::kNoExpiry}, {1, 3, core::kNoExpiry}}).code(),
            core::StatusCode::kInvalidArgument);
  EXPECT_EQ(appendSync(makeMessage(3, "x"), {{1, 11, core::kNoExpiry}}).code(),
            core::StatusCode::kInvalidArgument);
  barrier();
  EXPECT_EQ(store_->stats().messages, 0u);  // nothing half-stored
}

TEST_F(RocksStoreTest, StopFinishesInFlightAppends) {
  open(options(Durability::kSync));
  for (uint64_t seq = 1; seq <= 3000; ++seq) {
    store_->append(makeMessage(seq, "inflight"),
                   std::vector<core::StoredDestination>{{0, 0, core::kNoExpiry}}, *loop_.loop(),
                   completion_, seq);
  }
  store_->stop();  // returns after every accepted append was written and its completion posted
  ASSERT_TRUE(completion_.waitFor(3000));
  for (uint64_t seq = 1; seq <= 3000; ++seq) ASSERT_TRUE(completion_.status(seq).isOk()) << seq;
  open(options());
  EXPECT_EQ(store_->stats().messages, 3000u);
}

// --- damaged and unusable stores ----------------------------------------------------------------

std::map<std::string, std::string> snapshotDir(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    // RocksDB writes its info LOG on every open attempt, failed or not; the data files count.
    const std::string name = e.path().filename().string();
    if (name.rfind("LOG", 0) == 0 || name == "LOCK") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    files[e.path().filename().string()] = ss.str();
  }
  return files;
}

TEST_F(RocksStoreTest, DamagedStoreIsAnErrorAndUntouchedWithoutRepair) {
  open(options());
  for (uint64_t seq = 1; seq <= 10; ++seq) {
    ASSERT_TRUE(appendSync(makeMessage(seq, "precious"), {{0, 0, core::kNoExpiry}}).isOk());
  }
  store_.reset();
  // Damage the MANIFEST (RocksDB's file list).
  const std::string path = options().path;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0) {
      std::ofstream out(e.path(), std::ios::binary | std::ios::trunc);
      out << std::string(300, '\x7f');
    }
  }
  const auto before = snapshotDir(path);
  auto r = RocksStore::open(options(), time_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), core::StatusCode::kCorruption) << r.status().toString();
  EXPECT_NE(r.status().message().find(path), std::string_view::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("repair"), std::string_view::npos) << r.status().message();
  EXPECT_EQ(snapshotDir(path), before);  // nothing changed

  // With repair: RocksDB rebuilds the file list from the table and log files.
  RocksStore::Options o = options();
  o.repair = true;
  open(o);
  const StoreStats s = store_->stats();
  EXPECT_FALSE(s.repair_outcome.empty());
  if (s.repair_outcome == "repaired") {
    EXPECT_EQ(read(0, 0).size(), 10u);
  } else {
    EXPECT_TRUE(std::filesystem::exists(s.repair_outcome.substr(std::string("moved aside to ").size())));
  }
}

TEST_F(RocksStoreTest, BeyondRepairIsMovedAsideOnlyWithRepair) {
  open(options());
  ASSERT_TRUE(appendSync(makeMessage(1, "old"), {{0, 0, core::kNoExpiry}}).isOk());
  store_.reset();
  // RocksDB itself is fine, but the store's own format record is garbage: nothing to rebuild
  // it from.
  const std::string path = options().path;
  {
    RawStore raw(path);
    ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
    std::string key;
    keys::metaKey(key, keys::kMetaFormat);
    ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), raw.meta(), key, "xyz").ok());
  }
  auto r = RocksStore::open(options(), time_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), core::StatusCode::kCorruption) << r.status().toString();
  EXPECT_NE(r.status().message().find(path), std::string_view::npos);
  EXPECT_NE(r.status().message().find("repair"), std::string_view::npos);
  // Without repair nothing moved.
  size_t siblings = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) siblings += e.exists();
  EXPECT_EQ(siblings, 1u);

  RocksStore::Options o = options();
  o.repair = true;
  open(o);
  const std::string outcome = store_->stats().repair_outcome;
  ASSERT_EQ(outcome.rfind("moved aside to ", 0), 0u) << outcome;
  const std::string aside = outcome.substr(std::string("moved aside to ").size());
  EXPECT_TRUE(std::filesystem::exists(aside + "/CURRENT"));  // kept for forensics
  EXPECT_EQ(store_->stats().messages, 0u);                   // started empty
  EXPECT_TRUE(appendSync(makeMessage(2, "fresh"), {{0, 0, core::kNoExpiry}}).isOk());
  reopen(options());
  EXPECT_EQ(store_->stats().messages, 1u);
  EXPECT_TRUE(store_->stats().repair_outcome.empty());
}

TEST_F(RocksStoreTest, DamagedValuesAreSkippedCountedAndRemovedNotFatal) {
  open(options());
  for (uint64_t seq = 1; seq <= 8; ++seq) {
    ASSERT_TRUE(appendSync(makeMessage(seq, "payload-" + std::to_string(seq)), {{1, 0, core::kNoExpiry}}).isOk());
  }
  store_->stop();
  store_.reset();
  // Damage four entries behind the store's back: a garbage body (2), a truncated body (3), a
  // garbage queue entry (4), a body that is gone (5).
  const std::string path = options().path;
  {
    RawStore raw(path);
    ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
    rocksdb::DB* db = raw.db.get();
    const rocksdb::WriteOptions wo;
    std::string key, value;
    keys::messageKey(key, 2);
    ASSERT_TRUE(db->Put(wo, raw.messages(), key, std::string(40, '\x5a')).ok());
    keys::messageKey(key, 3);
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), raw.messages(), key, &value).ok());
    ASSERT_TRUE(db->Put(wo, raw.messages(), key, value.substr(0, value.size() / 2)).ok());
    keys::messageKey(key, 5);
    ASSERT_TRUE(db->Delete(wo, raw.messages(), key).ok());
    bool found = false;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), raw.queues()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto qk = keys::parseQueueKey(std::string_view(it->key().data(), it->key().size()));
      if (qk && qk->sequence == 4) {
        ASSERT_TRUE(db->Put(wo, raw.queues(), it->key(), "?").ok());
        found = true;
      }
    }
    ASSERT_TRUE(found);
  }

  // `edgehub store peek` (read-only, nothing removed) shows the intact ones and says how many
  // it skipped.
  {
    std::ostringstream peek_out, peek_err;
    EXPECT_EQ(runStorePeek(dir_.path(), endpoints_[1].name, 100, peek_out, peek_err), 0) << peek_err.str();
    EXPECT_NE(peek_out.str().find("4 message(s) shown"), std::string::npos) << peek_out.str();
    EXPECT_NE(peek_out.str().find("4 damaged entries skipped"), std::string::npos) << peek_out.str();
  }

  open(options());
  std::vector<core::BacklogCopy> out;
  ASSERT_TRUE(store_->readBacklog(1, 0, 0, 100, out).isOk());
  std::vector<uint64_t> got;
  for (const auto& c : out) got.push_back(c.message->sequence());
  EXPECT_EQ(got, (std::vector<uint64_t>{1, 6, 7, 8}));
  EXPECT_EQ(store_->stats().corrupt_skipped, 4u);
  // The damaged references were released: the queue's counters say what is really deliverable,
  // and the next start does not meet them again.
  barrier();
  EXPECT_EQ(store_->queueInfo(1, 0).count, 4u);
  reopen(options());
  out.clear();
  ASSERT_TRUE(store_->readBacklog(1, 0, 0, 100, out).isOk());
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(store_->stats().corrupt_skipped, 0u);
  // What was intact is intact.
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].message->body()->size(), std::string("payload-1").size());
}

// A queue whose messages interleave with another's (one in six here) has its bodies five keys
// apart, past the body iterator's few Next() steps, so the reader seeks. Damaged bodies are
// skipped and released there too, and a batch is still full unless the queue is exhausted (the
// engine takes a short read for the end of the backlog).
TEST_F(RocksStoreTest, InterleavedQueueReadsInFullBatchesAndSkipsDamagedBodies) {
  open(options());
  std::vector<uint64_t> sparse_expected;
  for (uint64_t seq = 1; seq <= 120; ++seq) {
    const uint32_t endpoint = seq % 6 == 1 ? 1 : 2;
    ASSERT_TRUE(appendSync(makeMessage(seq, "p" + std::to_string(seq)), {{endpoint, 0, core::kNoExpiry}}).isOk());
    if (endpoint == 1 && seq != 43 && seq != 67) sparse_expected.push_back(seq);
  }
  store_->stop();
  store_.reset();
  {
    RawStore raw(options().path);
    ASSERT_TRUE(raw.status.ok()) << raw.status.ToString();
    std::string key;
    keys::messageKey(key, 43);
    ASSERT_TRUE(raw.db->Delete(rocksdb::WriteOptions(), raw.messages(), key).ok());
    keys::messageKey(key, 67);
    ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), raw.messages(), key, std::string(40, '\x5a')).ok());
  }
  open(options());
  std::vector<uint64_t> got;
  std::vector<size_t> batch_sizes;
  uint64_t after = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<core::BacklogCopy> out;
    ASSERT_TRUE(store_->readBacklog(1, 0, after, 4, out).isOk());
    batch_sizes.push_back(out.size());
    for (const auto& c : out) {
      got.push_back(c.message->sequence());
      EXPECT_NE(bodyOf(c.message).find("p" + std::to_string(c.message->sequence())), std::string::npos);
    }
    if (out.size() < 4) break;
    after = out.back().message->sequence();
  }
  EXPECT_EQ(got, sparse_expected);
  EXPECT_EQ(batch_sizes, (std::vector<size_t>{4, 4, 4, 4, 2})) << "only the last read is short";
  EXPECT_EQ(store_->stats().corrupt_skipped, 2u);
  barrier();
  EXPECT_EQ(store_->queueInfo(1, 0).count, sparse_expected.size()) << "the damaged references are released";
  // The dense queue beside it reads whole and in order.
  auto dense = read(2, 0);
  ASSERT_EQ(dense.size(), 100u);
  for (size_t i = 1; i < dense.size(); ++i) EXPECT_LT(dense[i - 1].sequence, dense[i].sequence);
}

TEST_F(RocksStoreTest, UnopenablePathGivesAClearError) {
  const std::string file = dir_.sub("not-a-dir");
  std::ofstream(file) << "x";
  RocksStore::Options o = options();
  o.path = file;
  auto r = RocksStore::open(o, time_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), core::StatusCode::kIoError);
  EXPECT_NE(r.status().message().find(file), std::string_view::npos) << r.status().message();
  EXPECT_TRUE(std::filesystem::is_regular_file(file));  // not moved, not replaced
}

TEST_F(RocksStoreTest, StoreInUseIsReportedAsSuch) {
  open(options());
  auto r = RocksStore::open(options(), time_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), core::StatusCode::kIoError);
  EXPECT_NE(r.status().message().find("in use"), std::string_view::npos) << r.status().message();
}

// --- write failures (fault injection) ----------------------------------------------------------

// Fails appends and syncs of the WAL while `fail` is set.
class FailingWal final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FailingWal(std::unique_ptr<rocksdb::FSWritableFile>&& t, std::atomic<bool>* fail)
      : FSWritableFileOwnerWrapper(std::move(t)), fail_(fail) {}
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected WAL write failure");
    return FSWritableFileOwnerWrapper::Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected WAL write failure");
    return FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected WAL sync failure");
    return FSWritableFileOwnerWrapper::Sync(o, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected WAL sync failure");
    return FSWritableFileOwnerWrapper::Fsync(o, dbg);
  }

 private:
  std::atomic<bool>* fail_;
};

class FailingWalFs final : public rocksdb::FileSystemWrapper {
 public:
  FailingWalFs(const std::shared_ptr<rocksdb::FileSystem>& t, std::atomic<bool>* fail)
      : FileSystemWrapper(t), fail_(fail) {}
  const char* Name() const override { return "FailingWalFs"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok() && f.size() > 4 && f.compare(f.size() - 4, 4, ".log") == 0) {
      *r = std::make_unique<FailingWal>(std::move(*r), fail_);
    }
    return s;
  }

 private:
  std::atomic<bool>* fail_;
};

TEST_F(RocksStoreTest, WriteFailureFailsTheBatchAndEverythingAfterIt) {
  std::atomic<bool> fail{false};
  auto fs = std::make_shared<FailingWalFs>(rocksdb::FileSystem::Default(), &fail);
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  RocksStore::Options o = options(Durability::kSync);
  o.env_for_test = env.get();
  open(o);
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_TRUE(appendSync(makeMessage(seq, "before"), {{0, 0, core::kNoExpiry}}).isOk());
  }
  fail = true;
  core::Status s = appendSync(makeMessage(6, "during"), {{0, 0, core::kNoExpiry}});
  EXPECT_EQ(s.code(), core::StatusCode::kIoError) << s.toString();
  EXPECT_NE(s.message().find("injected"), std::string_view::npos) << s.message();
  fail = false;
  // RocksDB refuses writes after a failed WAL write, and so does the store: no PUBACK for
  // anything it could not make durable.
  EXPECT_EQ(appendSync(makeMessage(7, "after"), {{0, 0, core::kNoExpiry}}).code(),
            core::StatusCode::kIoError);
  store_.reset();  // before the Env it uses

  // A restart recovers exactly what was acknowledged.
  open(options());
  std::vector<StoredMessage> q = read(0, 0);
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q.back().sequence, 5u);
  EXPECT_EQ(store_->stats().messages, 5u);
}

// --- crash safety -------------------------------------------------------------------------------

// The child appends until killed and writes the sequence of every completed append to a pipe.
// It is this test binary re-executed (fork + exec), so that it starts single-threaded with a
// fresh RocksDB: forking a process whose RocksDB thread pool already runs leaves the child with
// a pool that has no threads (and ThreadSanitizer refuses it outright).
[[noreturn]] void crashChild(const std::string& path, Durability durability, int fd) {
  core::LoopThread loop("crash-child");
  if (!loop.start().isOk()) ::_exit(10);
  core::RealTimeSource time;
  RocksStore::Options o;
  o.path = path;
  o.durability = durability;
  auto store = RocksStore::open(o, time);
  if (!store.isOk()) ::_exit(11);
  std::vector<core::EndpointInfo> eps{testing::upstreamEndpoint()};
  if (!store.value()->setEndpoints(eps).isOk()) ::_exit(12);
  struct PipeCompletion final : core::StoreCompletion {
    int fd;
    void onStored(uint64_t token, const core::Status& status) override {
      if (!status.isOk()) ::_exit(13);
      if (::write(fd, &token, sizeof token) != sizeof token) ::_exit(14);
    }
  } completion;
  completion.fd = fd;
  for (uint64_t seq = 1;; ++seq) {
    std::string body = "crash-";
    body.append(std::to_string(seq));
    store.value()->append(makeMessage(seq, body),
                          std::vector<core::StoredDestination>{{0, 0, core::kNoExpiry}},
                          *loop.loop(), completion, seq);
    // Keep the in-flight window bounded so that the parent's kill lands mid-stream.
    if (seq % 256 == 0) {
      while (store.value()->stats().appends + 4096 < seq) std::this_thread::yield();
    }
  }
}

constexpr const char* kCrashChildPath = "HUB_STORE_CRASH_CHILD_PATH";
constexpr const char* kCrashChildMode = "HUB_STORE_CRASH_CHILD_MODE";
constexpr const char* kCrashChildFd = "HUB_STORE_CRASH_CHILD_FD";

// The child's entry point: the re-executed binary runs only this test, with the variables set.
// In a normal run it has nothing to do and says so.
// DISABLED_: not a test of its own; the crash test runs it as its child process.
TEST(RocksStoreCrashChild, DISABLED_AppendUntilKilled) {
  const char* path = std::getenv(kCrashChildPath);
  const char* mode = std::getenv(kCrashChildMode);
  const char* fd = std::getenv(kCrashChildFd);
  if (path == nullptr || mode == nullptr || fd == nullptr) {
    GTEST_SKIP() << "child process of the RocksStoreCrashTest tests";
  }
  crashChild(path, std::string_view(mode) == "sync" ? Durability::kSync : Durability::kAsync,
             std::atoi(fd));
}

void crashTest(Durability durability) {
  TempDir dir;
  const std::string path = dir.sub("store");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // Everything the child needs is built before fork(): after it, only async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kCrashChildPath) + "=" + path);
  env_strings.push_back(std::string(kCrashChildMode) + "=" +
                        (durability == Durability::kSync ? "sync" : "async"));
  env_strings.push_back(std::string(kCrashChildFd) + "=" + std::to_string(fds[1]));
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = "store_tests";
  std::string arg1 = "--gtest_filter=RocksStoreCrashChild.DISABLED_AppendUntilKilled";
  std::string arg2 = "--gtest_also_run_disabled_tests";
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    const int devnull = ::open("/dev/null", O_WRONLY);  // keep the child's gtest chatter out
    if (devnull >= 0) ::dup2(devnull, 1);
    ::execve("/proc/self/exe", argv, envp.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::set<uint64_t> completed;
  auto readSome = [&](int timeout_ms) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    uint64_t buf[512];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) return false;
    EXPECT_EQ(n % 8, 0);
    for (ssize_t i = 0; i < n / 8; ++i) completed.insert(buf[i]);
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (completed.size() < 5000 && std::chrono::steady_clock::now() < deadline) {
    if (!readSome(1000)) break;
  }
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited early with " << WEXITSTATUS(wstatus);
  while (readSome(0)) {
  }
  ::close(fds[0]);
  ASSERT_GE(completed.size(), 5000u);

  core::RealTimeSource time;
  RocksStore::Options o;
  o.path = path;
  o.durability = durability;
  auto store = RocksStore::open(o, time);
  ASSERT_TRUE(store.isOk()) << store.status().toString();
  std::vector<core::EndpointInfo> eps{testing::upstreamEndpoint()};
  ASSERT_TRUE(store.value()->setEndpoints(eps).isOk());
  std::vector<StoredMessage> out;
  ASSERT_TRUE(store.value()->readQueue(0, 0, 0, 10'000'000, out).isOk());
  std::set<uint64_t> found;
  for (const StoredMessage& m : out) {
    found.insert(m.sequence);
    const auto* body = m.message->body();
    ASSERT_NE(body, nullptr);
    std::string expected = "crash-";
    expected.append(std::to_string(m.sequence));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(body->data()), body->size()), expected);
  }
  size_t missing = 0;
  for (uint64_t seq : completed) missing += found.count(seq) == 0;
  EXPECT_EQ(missing, 0u) << "of " << completed.size() << " completed appends";
  // Metadata agrees with content after the crash (counters were in the same batches).
  EXPECT_EQ(store.value()->stats().messages, out.size());
  EXPECT_EQ(store.value()->queueInfo(0, 0).count, out.size());
}

TEST(RocksStoreCrashTest, SigkillLosesNoCompletedAppendSync) { crashTest(Durability::kSync); }
TEST(RocksStoreCrashTest, SigkillLosesNoCompletedAppendAsync) { crashTest(Durability::kAsync); }

// --- restart speed ------------------------------------------------------------------------------

TEST_F(RocksStoreTest, ReopenReadsOnlyMetadataNotQueues) {
  RocksStore::Options o = options();
  open(o);
  constexpr uint64_t kMessages = 200'000;
  for (uint64_t seq = 1; seq <= kMessages; ++seq) {
    store_->append(makeMessage(seq, "restart"),
                   std::vector<core::StoredDestination>{{static_cast<uint32_t>(seq % 3),
                                                         static_cast<uint8_t>(seq % 11),
                                                         core::kNoExpiry}},
                   *loop_.loop(), completion_, seq);
  }
  ASSERT_TRUE(completion_.waitFor(kMessages, std::chrono::seconds(120)));
  // Release a prefix so that the heads start past tombstones.
  for (uint64_t seq = 1; seq <= 1000; ++seq) store_->release(static_cast<uint32_t>(seq % 3), seq);
  barrier();

  const auto t0 = std::chrono::steady_clock::now();
  reopen(o);
  const auto open_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - t0)
                           .count();
  const StoreStats s = store_->stats();
  // 3 meta records + 3 endpoints + 33 queue records + one head seek per queue: independent
  // of the number of messages.
  EXPECT_LE(s.keys_read_on_open, 3u + 3u + 33u + 33u) << "open took " << open_ms << " ms";
  EXPECT_EQ(s.messages, kMessages - 1000);
  uint64_t total = 0;
  for (uint32_t ep = 0; ep < 3; ++ep) {
    for (uint8_t p = 0; p < 11; ++p) total += store_->queueInfo(ep, p).count;
  }
  EXPECT_EQ(total, kMessages - 1000);
  // The backlog is read lazily, from the checkpoint.
  std::vector<StoredMessage> first;
  ASSERT_TRUE(store_->readQueue(1, 1, 0, 1, first).isOk());
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].sequence, store_->queueInfo(1, 1).first_sequence);
  EXPECT_GT(first[0].sequence, 1000u);
  std::printf("[ info ] reopen with %llu messages: %lld ms, %llu keys read\n",
              static_cast<unsigned long long>(s.messages), static_cast<long long>(open_ms),
              static_cast<unsigned long long>(s.keys_read_on_open));
}

TEST_F(RocksStoreTest, InfoLogIsCapped) {
  RocksStore::Options o = options();
  o.max_info_log_bytes = 256 * 1024;
  open(o);
  // Reopen a few times: each open writes a fresh LOG and rolls the old one.
  for (int i = 0; i < 6; ++i) reopen(o);
  uint64_t log_bytes = 0;
  int log_files = 0;
  for (const auto& e : std::filesystem::directory_iterator(o.path)) {
    if (e.path().filename().string().rfind("LOG", 0) == 0) {
      log_bytes += std::filesystem::file_size(e.path());
      ++log_files;
    }
  }
  EXPECT_LE(log_files, 4);
  EXPECT_LE(log_bytes, o.max_info_log_bytes + 64 * 1024);
}

}  // namespace
}  // namespace edgehub::store
