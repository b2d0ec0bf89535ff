// The engine without MQTT: a fake router, real loops (LoopThread), simulated time.
#include "core/engine/engine.h"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>

#include "core/engine/memory_store.h"
#include "core/identity.h"
#include "core/loop/loop_thread.h"

namespace edgehub::core {
namespace {

// Routes by the message's output name: "to-<n>" goes to endpoint n with priority class = the
// "prio" property (default class otherwise) and TTL from the "ttl" property (seconds).
class FakeRouter final : public Router {
 public:
  explicit FakeRouter(std::vector<EndpointInfo> endpoints) : endpoints_(std::move(endpoints)) {}
  std::unique_ptr<RouterContext> newContext() const override { return std::make_unique<RouterContext>(); }
  uint32_t route(const fb::Message& m, RouterContext&, std::vector<RouteDestination>& out) const override {
    out.clear();
    auto on = systemFieldValue(m, SystemField::kOutputName);
    if (!on || on->rfind("to-", 0) != 0) return 0;
    RouteDestination d;
    d.endpoint = static_cast<uint32_t>(std::stoul(std::string(on->substr(3))));
    d.ttl_secs = std::numeric_limits<int64_t>::max();
    if (const fb::Property* p = findProperty(m, "prio")) d.priority_class = static_cast<uint8_t>(std::stoi(p->value()->str()));
    if (const fb::Property* p = findProperty(m, "ttl")) d.ttl_secs = std::stoll(p->value()->str());
    out.push_back(d);
    return 0;
  }
  std::span<const EndpointInfo> endpoints() const override { return endpoints_; }

 private:
  std::vector<EndpointInfo> endpoints_;
};

EndpointInfo input(std::string module, std::string in) {
  EndpointInfo e;
  e.kind = EndpointInfo::Kind::kModuleInput;
  e.module_id = std::move(module);
  e.input = std::move(in);
  e.name = e.module_id + "/" + e.input;
  return e;
}

struct Acks final : StoreCompletion {
  void onStored(uint64_t token, const Status& s) override {
    EXPECT_TRUE(s.isOk());
    tokens.push_back(token);
  }
  std::vector<uint64_t> tokens;
};

struct Wakeups final : DeliveryConsumer {
  void onDeliveryAvailable() override { ++count; }
  int count = 0;
};

// A durable store in miniature: keeps every copy per (endpoint, class) in sequence order, makes
// appends visible to readBacklog() only once commit() ran (an asynchronous store's window), and
// can pretend it was opened with copies already stored (recovery).
class FakeDurableStore final : public MessageStore {
 public:
  std::string_view durability() const override { return "fake"; }
  void append(const MessageRef& message, std::span<const StoredDestination> destinations, Loop&,
              StoreCompletion& completion, uint64_t token) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const StoredDestination& d : destinations) {
      (auto_commit ? committed_ : pending_)[{d.endpoint, d.priority_class}].push_back({message, d.expiry_ms});
    }
    completion.onStored(token, Status::ok());
  }
  void release(const ReleasedCopy&) override { released.fetch_add(1); }
  bool keepsBacklog() const override { return true; }
  uint64_t lastSequence() const override {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t last = 0;
    for (auto& [key, copies] : committed_) {
      for (auto& c : copies) last = std::max(last, c.message->sequence());
    }
    return last;
  }
  bool hasBacklog(uint32_t endpoint, uint8_t c) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = committed_.find({endpoint, c});
    return it != committed_.end() && !it->second.empty();
  }
  Status readBacklog(uint32_t endpoint, uint8_t c, uint64_t after, size_t max, std::vector<BacklogCopy>& out) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reads;
    for (const BacklogCopy& copy : committed_[{endpoint, c}]) {
      if (copy.message->sequence() <= after) continue;
      if (out.size() == max) break;
      out.push_back(copy);
    }
    return Status::ok();
  }
  void commit() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, copies] : pending_) {
      auto& into = committed_[key];
      into.insert(into.end(), copies.begin(), copies.end());
    }
    pending_.clear();
  }
  bool auto_commit = true;
  std::atomic<uint64_t> released{0};
  int reads = 0;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<uint32_t, uint8_t>, std::vector<BacklogCopy>> committed_, pending_;
};

class EngineTest : public ::testing::Test {
 protected:
  void start(size_t loops, EngineOptions options = {}, MessageStore* store = nullptr) {
    for (size_t i = 0; i < loops; ++i) {
      threads_.push_back(std::make_unique<LoopThread>("engine-test-" + std::to_string(i)));
      ASSERT_TRUE(threads_.back()->start().isOk());
    }
    std::vector<Loop*> ptrs;
    for (auto& t : threads_) ptrs.push_back(t->loop());
    options.device_id = "dev";
    router_ = std::make_shared<FakeRouter>(std::vector<EndpointInfo>{input("b", "in"), input("c", "in"), input("b", "other")});
    engine_ = std::make_unique<Engine>(options, router_, store != nullptr ? *store : store_, time_, ptrs);
  }
  void TearDown() override {
    for (auto& t : threads_) t->stop();
    engine_.reset();
  }

  // Runs fn on shard i's loop and waits.
  template <typename Fn>
  void on(uint32_t i, Fn fn) {
    std::promise<void> done;
    ASSERT_TRUE(threads_[i]->post([&] {
      fn(engine_->shard(i));
      done.set_value();
    }));
    done.get_future().wait();
  }

  MessageRef message(const std::string& output, const std::string& body,
                     std::vector<std::pair<std::string, std::string>> props = {}) {
    MessageBuilder b;
    b.setOrigin(Identity::module("dev", "a"));
    b.setSequence(engine_->nextSequence());
    b.setEnqueuedTimeMs(std::chrono::duration_cast<std::chrono::milliseconds>(time_.systemTime().time_since_epoch()).count());
    b.setSystem(SystemField::kOutputName, output);
    for (auto& [k, v] : props) b.addProperty(k, v);
    b.setBody(body);
    auto m = b.finish();
    EXPECT_TRUE(m.isOk());
    return std::move(m).value();
  }

  std::string body(const Delivery& d) {
    return std::string(reinterpret_cast<const char*>(d.message->body()->data()), d.message->body()->size());
  }

  SimulatedTimeSource time_;
  MemoryStore store_;
  std::shared_ptr<FakeRouter> router_;
  std::vector<std::unique_ptr<LoopThread>> threads_;
  std::unique_ptr<Engine> engine_;
};

TEST(EndpointQueueTest, StrictPriorityThenFifoAndRequeueAtTheFront) {
  EndpointQueue q;
  auto d = [](uint8_t prio, int tag) {
    Delivery x;
    x.priority_class = prio;
    x.endpoint = static_cast<uint32_t>(tag);
    return x;
  };
  q.push(d(kDefaultPriorityClass, 1));
  q.push(d(5, 2));
  q.push(d(0, 3));
  q.push(d(5, 4));
  q.pushFront(d(5, 5));
  std::vector<uint32_t> order;
  Delivery out;
  while (q.popBest(out)) order.push_back(out.endpoint);
  EXPECT_EQ(order, (std::vector<uint32_t>{3, 5, 2, 4, 1}));
  EXPECT_TRUE(q.empty());
}

TEST_F(EngineTest, MessagesReachTheHomeShardOfTheirModuleAndAreCompletedOnce) {
  start(2);
  const uint32_t home_b = engine_->homeShardOf("dev/b");
  const uint32_t producer = 1 - home_b;  // the other loop: forces a cross-loop hand-off
  Acks acks;
  on(producer, [&](Shard& s) {
    for (int i = 0; i < 100; ++i) {
      auto r = s.ingest(message("to-0", std::to_string(i)), acks, static_cast<uint64_t>(i + 1));
      EXPECT_EQ(r.destinations, 1u);
      EXPECT_FALSE(r.over_budget);
    }
  });
  EXPECT_EQ(acks.tokens.size(), 100u);
  // The batch is posted at the producer's turn end; the home shard's queue then holds all.
  std::vector<std::string> got;
  for (int attempt = 0; attempt < 1000 && got.size() < 100; ++attempt) {
    on(home_b, [&](Shard& s) {
      ModuleMailbox* box = s.mailbox("dev/b");
      ASSERT_NE(box, nullptr);
      Delivery d;
      while (s.pop(*box, d)) {
        got.push_back(body(d));
        s.acknowledge(d);
      }
    });
  }
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], std::to_string(i));
  EXPECT_EQ(engine_->accountedMessages(0), 0u);
  EXPECT_EQ(engine_->counters()[Counter::k_messages_acknowledged], 100u);
  EXPECT_EQ(store_.releasedForTest(), 100u);
}

TEST_F(EngineTest, UnroutedMessagesAreCountedAndCompleted) {
  start(1);
  Acks acks;
  on(0, [&](Shard& s) { EXPECT_EQ(s.ingest(message("nowhere", "x"), acks, 7).destinations, 0u); });
  EXPECT_EQ(acks.tokens, (std::vector<uint64_t>{7}));
  EXPECT_EQ(engine_->counters()[Counter::k_dropped_no_route], 1u);
}

TEST_F(EngineTest, ConsumerIsWokenAndExpiredMessagesAreDroppedNotDelivered) {
  start(1);
  Acks acks;
  Wakeups wake;
  on(0, [&](Shard& s) {
    ModuleMailbox* box = s.mailbox("dev/b");
    ASSERT_NE(box, nullptr);
    box->consumer = &wake;
    s.ingest(message("to-0", "short", {{"ttl", "10"}}), acks, 1);
    s.ingest(message("to-0", "long", {{"ttl", "1000"}}), acks, 2);
    EXPECT_EQ(wake.count, 2);
  });
  time_.advance(std::chrono::seconds(60));
  on(0, [&](Shard& s) {
    ModuleMailbox* box = s.mailbox("dev/b");
    Delivery d;
    ASSERT_TRUE(s.pop(*box, d));
    EXPECT_EQ(body(d), "long");
    s.acknowledge(d);
    EXPECT_FALSE(s.pop(*box, d));
    box->consumer = nullptr;
  });
  EXPECT_EQ(engine_->counters()[Counter::k_dropped_ttl_expiry], 1u);
  EXPECT_EQ(engine_->accountedMessages(0), 0u);
}

TEST_F(EngineTest, SweepDropsExpiredCopiesOfQueuesNobodyReads) {
  start(1);
  Acks acks;
  on(0, [&](Shard& s) {
    s.ingest(message("to-1", "a", {{"ttl", "5"}}), acks, 0);
    s.ingest(message("to-1", "b", {{"ttl", "5"}}), acks, 0);
    s.ingest(message("to-1", "c", {{"ttl", "500"}}), acks, 0);
    EXPECT_EQ(s.sweepExpired(), 0u);
  });
  time_.advance(std::chrono::seconds(10));
  on(0, [&](Shard& s) {
    EXPECT_EQ(s.sweepExpired(), 2u);
    EXPECT_EQ(s.queuedOn(1), 1u);
  });
  EXPECT_EQ(engine_->counters()[Counter::k_dropped_ttl_expiry], 2u);
  EXPECT_EQ(engine_->accountedMessages(1), 1u);
}

TEST_F(EngineTest, MailboxRoundRobinsOverTheModulesInputsWithPriorityInEach) {
  start(1);
  Acks acks;
  on(0, [&](Shard& s) {
    s.ingest(message("to-0", "in-low", {{"prio", "9"}}), acks, 0);
    s.ingest(message("to-0", "in-high", {{"prio", "1"}}), acks, 0);
    s.ingest(message("to-2", "other-1"), acks, 0);
    s.ingest(message("to-2", "other-2"), acks, 0);
    ModuleMailbox* box = s.mailbox("dev/b");
    ASSERT_NE(box, nullptr);
    std::vector<std::string> got;
    Delivery d;
    while (s.pop(*box, d)) got.push_back(body(d));
    EXPECT_EQ(got, (std::vector<std::string>{"in-high", "other-1", "in-low", "other-2"}));
  });
}

TEST_F(EngineTest, OverBudgetReportsTheEndpointAndResumesTheWaiterWhenDrained) {
  EngineOptions o;
  o.endpoint_max_messages = 8;
  start(1, o);
  Acks acks;
  std::vector<uint64_t> resumed;
  std::promise<void> resumed_once;
  on(0, [&](Shard& s) {
    s.setResumeHandler([&](uint64_t id) {
      resumed.push_back(id);
      resumed_once.set_value();
    });
    Shard::IngestResult r;
    for (int i = 0; i < 8; ++i) r = s.ingest(message("to-1", "x"), acks, 0);
    EXPECT_TRUE(r.over_budget);
    EXPECT_EQ(r.blocked_endpoint, 1u);
    s.waitForCapacity(1, 42);
  });
  EXPECT_TRUE(resumed.empty()) << "still full";
  on(0, [&](Shard& s) {
    ModuleMailbox* box = s.mailbox("dev/c");
    Delivery d;
    for (int i = 0; i < 3 && s.pop(*box, d); ++i) s.acknowledge(d);  // 8 -> 5: below 3/4
  });
  resumed_once.get_future().wait();
  on(0, [&](Shard&) {});  // the resume ran before this
  EXPECT_EQ(resumed, (std::vector<uint64_t>{42}));
}

TEST_F(EngineTest, RequeuedDeliveriesComeFirstMarkedAsRedeliveries) {
  start(1);
  Acks acks;
  on(0, [&](Shard& s) {
    s.ingest(message("to-0", "1"), acks, 0);
    s.ingest(message("to-0", "2"), acks, 0);
    s.ingest(message("to-0", "3"), acks, 0);
    ModuleMailbox* box = s.mailbox("dev/b");
    Delivery one, two;
    ASSERT_TRUE(s.pop(*box, one));
    ASSERT_TRUE(s.pop(*box, two));
    s.requeue(std::move(two));  // reverse send order, as a session does
    s.requeue(std::move(one));
    std::vector<std::pair<std::string, bool>> got;
    Delivery d;
    while (s.pop(*box, d)) got.emplace_back(body(d), d.redelivery);
    EXPECT_EQ(got, (std::vector<std::pair<std::string, bool>>{{"1", true}, {"2", true}, {"3", false}}));
  });
}

// With a durable store an endpoint over its memory budget spills instead of pausing producers,
// and its consumer later gets everything, in order, read back in batches.
TEST_F(EngineTest, DurableStoreSpillsOverBudgetCopiesAndReadsThemBackInOrder) {
  FakeDurableStore store;
  EngineOptions o;
  o.endpoint_max_messages = 10;
  o.backlog_batch = 7;
  start(1, o, &store);
  Acks acks;
  on(0, [&](Shard& s) {
    for (int i = 0; i < 100; ++i) {
      EXPECT_FALSE(s.ingest(message("to-0", std::to_string(i)), acks, 0).over_budget)
          << "producers are not paused: the store takes what memory does not";
    }
    EXPECT_EQ(s.queuedOn(0), 10u) << "only the budget stays in memory";
  });
  EXPECT_EQ(engine_->counters()[Counter::k_spilled_to_store], 90u);
  EXPECT_LE(engine_->accountedMessages(0), 10u);
  // A message queued while the backlog drains still comes after it.
  std::vector<std::string> got;
  on(0, [&](Shard& s) {
    ModuleMailbox* box = s.mailbox("dev/b");
    Delivery d;
    for (int i = 0; i < 50 && s.pop(*box, d); ++i) {
      got.push_back(body(d));
      s.acknowledge(d);
    }
    s.ingest(message("to-0", "late"), acks, 0);
    while (s.pop(*box, d)) {
      got.push_back(body(d));
      s.acknowledge(d);
    }
  });
  ASSERT_EQ(got.size(), 101u);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(got[i], std::to_string(i)) << i;
  EXPECT_EQ(got[100], "late");
  EXPECT_GE(store.reads, 90 / 7);
  EXPECT_EQ(store.released.load(), 101u);
  EXPECT_EQ(engine_->accountedMessages(0), 0u);
}

TEST_F(EngineTest, BacklogWaitsForSpilledCopiesThatAreNotCommittedYet) {
  FakeDurableStore store;
  store.auto_commit = false;
  EngineOptions o;
  o.endpoint_max_messages = 2;
  start(1, o, &store);
  Acks acks;
  Wakeups wake;
  std::vector<std::string> got;
  on(0, [&](Shard& s) {
    for (int i = 0; i < 5; ++i) s.ingest(message("to-0", std::to_string(i)), acks, 0);
    ModuleMailbox* box = s.mailbox("dev/b");
    box->consumer = &wake;
    Delivery d;
    while (s.pop(*box, d)) {
      got.push_back(body(d));
      s.acknowledge(d);
    }
  });
  EXPECT_EQ(got, (std::vector<std::string>{"0", "1"})) << "spilled copies are not visible before the commit";
  // The failed read scheduled a wake-up for the end of the turn: the consumer will pull again.
  int wakes = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (wakes == 0 && std::chrono::steady_clock::now() < deadline) on(0, [&](Shard&) { wakes = wake.count; });
  EXPECT_GE(wakes, 1);
  store.commit();
  on(0, [&](Shard& s) {
    ModuleMailbox* box = s.mailbox("dev/b");
    Delivery d;
    while (s.pop(*box, d)) {
      got.push_back(body(d));
      s.acknowledge(d);
    }
    box->consumer = nullptr;
  });
  EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
}

TEST_F(EngineTest, CopiesFoundInTheStoreAtStartAreDeliveredFirst) {
  FakeDurableStore store;
  {
    // A previous run left three copies for b/in in the store.
    start(1, {}, &store);
    Acks acks;
    on(0, [&](Shard& s) {
      for (int i = 0; i < 3; ++i) s.ingest(message("to-0", "old" + std::to_string(i)), acks, 0);
    });
    for (auto& t : threads_) t->stop();
    threads_.clear();
    engine_.reset();
  }
  start(1, {}, &store);  // recovery: the queue starts as a backlog
  EXPECT_EQ(engine_->nextSequence(), 4u) << "numbering continues after the stored messages";
  Acks acks;
  std::vector<std::string> got;
  on(0, [&](Shard& s) {
    s.ingest(message("to-0", "new"), acks, 0);
    ModuleMailbox* box = s.mailbox("dev/b");
    Delivery d;
    while (s.pop(*box, d)) {
      got.push_back(body(d));
      s.acknowledge(d);
    }
  });
  EXPECT_EQ(got, (std::vector<std::string>{"old0", "old1", "old2", "new"}));
}

}  // namespace
}  // namespace edgehub::core
