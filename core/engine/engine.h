#pragma once
// Engine: moves messages from the connections that publish them to the queues of the endpoints
// they are routed to, and from those queues to the consumers (module sessions) that take them.
//
// Sharding. There is one Shard per IO loop. Every identity has a home shard (a hash of its
// client id), and the transport runs an identity's session on its home loop; every endpoint
// lives on the home shard of the module it delivers to (an identity's upstream endpoint on that
// identity's home shard, the unused plain $upstream on shard 0). So a module's
// session, its endpoint queues and its delivery window share one thread: delivery, PUBACK
// handling and redelivery never cross threads. Only the hand-off from a producer's shard to a
// destination's home shard does: each shard gathers what it produced for each other shard
// during one loop turn into one batch and posts it once at the end of the turn.
//
// Flow control. Each endpoint queue has a budget (messages and bytes). Producers account
// copies against it when they accept a message (atomics, no lock) and consumers credit it when
// a copy is acknowledged or expires. A producer whose message lands on a queue over budget is
// told so by ingest(); the transport then stops reading that producer's socket and calls
// waitForCapacity(), and the resume handler fires once the queue drained below 3/4 of its
// budget. Nothing accepted is dropped; the overshoot is bounded by what was read already.
//
// Thread-safety: Engine's accessors are safe from any thread; each Shard REQUIRES its own
// loop's thread, except where a method says otherwise.
// Ownership: the Engine owns the shards, their queues and router contexts. It must outlive
// every loop turn that can touch it: destroy it after the IO loops stopped.
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/engine/counters.h"
#include "core/engine/message_store.h"
#include "core/engine/router.h"
#include "core/loop/loop.h"
#include "core/message/message.h"
#include "core/time_source.h"

namespace edgehub::core {

class Engine;
class Shard;

// One queued copy of a message for one endpoint.
struct Delivery {
  MessageRef message;
  int64_t expiry_ms = kNoExpiry;
  uint32_t endpoint = 0;
  uint8_t priority_class = kDefaultPriorityClass;
  bool redelivery = false;  // sent before without an acknowledgement: send with DUP

  // What the store is told when this copy is done (message_store.h).
  ReleasedCopy released() const {
    return ReleasedCopy{endpoint, message->sequence(), priority_class,
                        static_cast<uint32_t>(message.bytes().size())};
  }
};

// Implemented by whoever takes messages from a mailbox (a module's MQTT session).
class DeliveryConsumer {
 public:
  // A message was queued on one of the mailbox's endpoints. Called on the home loop, possibly
  // from inside another connection's callback: record it and pull later (e.g. at turn end).
  virtual void onDeliveryAvailable() = 0;

 protected:
  ~DeliveryConsumer() = default;
};

// Strict priority classes, FIFO within a class (routing-language.md §14.2-3).
//
// With a durable store a class may also have a backlog: copies that are only in the store
// (spilled while the endpoint was over its memory budget, or found there at start). All backlog
// copies of a class are newer than its in-memory head and older than anything queued in memory
// after the backlog drained, so the class serves memory first, then the backlog (read back in
// batches), then memory again.
class EndpointQueue {
 public:
  void push(Delivery delivery);
  void pushFront(Delivery delivery);  // for redelivery: keeps the original order
  // For a store that keeps a backlog: keeps the copy in memory (in sequence order, so that memory
  // and store agree on what "after the cursor" means) unless the class is over budget or behind
  // a backlog, in which case only its place is kept and the store has it. Returns whether the
  // copy stayed in memory (it is then moved from).
  bool admit(Delivery& delivery, bool over_budget);
  // Pops the best in-memory copy, ignoring backlogs (tests and MemoryStore-only paths).
  bool popBest(Delivery& out);
  // The best class with memory copies or a backlog; -1 when there is nothing.
  int bestClass() const { return busy_ == 0 ? -1 : __builtin_ctz(busy_); }
  bool popMemory(uint8_t priority_class, Delivery& out);
  // Pops a class head that expired at `now_ms` (kNoExpiry never does).
  bool popExpiredHead(int64_t now_ms, Delivery& out);
  bool memoryEmpty(uint8_t priority_class) const { return classes_[priority_class].empty(); }
  bool backlog(uint8_t priority_class) const { return backlog_[priority_class].active; }
  // Marks a class as having (more) copies only in the store, up to `sequence` (0: unknown, at start).
  void spill(uint8_t priority_class, uint64_t sequence);
  // Records what a backlog read returned; ends the backlog once everything spilled was read.
  void backlogRead(uint8_t priority_class, uint64_t last_sequence, bool exhausted);
  uint64_t backlogCursor(uint8_t priority_class) const { return backlog_[priority_class].cursor; }
  // Copies in memory.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Backlog {
    bool active = false;
    uint64_t cursor = 0;        // copies up to here are in memory, in flight or done
    uint64_t last_spilled = 0;  // sequence of the newest copy spilled
    uint64_t max_memory = 0;    // newest sequence ever queued in memory
  };
  void updateBusy(uint8_t c) {
    if (!classes_[c].empty() || backlog_[c].active) {
      busy_ |= 1u << c;
    } else {
      busy_ &= ~(1u << c);
    }
  }
  std::array<std::deque<Delivery>, kPriorityClasses> classes_;
  std::array<Backlog, kPriorityClasses> backlog_{};
  uint32_t busy_ = 0;  // bit per class: memory copies or a backlog
  size_t size_ = 0;
};

// The endpoints (inputs) of one module, and its current consumer. Lives on the home shard.
struct ModuleMailbox {
  std::string client_id;            // "{deviceId}/{moduleId}"
  std::vector<uint32_t> endpoints;  // endpoint indexes of its inputs
  DeliveryConsumer* consumer = nullptr;
  size_t cursor = 0;  // round-robin position among endpoints
};

struct EngineOptions {
  // The edge device whose modules the module-input endpoints address.
  std::string device_id;
  // Budget of each endpoint queue; producers are paused above it (see above).
  uint64_t endpoint_max_messages = 1'000'000;
  uint64_t endpoint_max_bytes = 256ull * 1024 * 1024;
  // With a store that keeps a backlog: copies read back per store read.
  size_t backlog_batch = 256;
};

class Shard final : private TurnEndHook {
 public:
  struct IngestResult {
    size_t destinations = 0;
    // Some destination queue is over its budget: the producer should pause and call
    // waitForCapacity(blocked_endpoint, ...). Never set with a store that keeps a backlog
    // (over-budget copies spill to it instead).
    bool over_budget = false;
    uint32_t blocked_endpoint = 0;
  };

  Shard(Engine& engine, uint32_t index, Loop& loop);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  uint32_t index() const { return index_; }
  Loop& loop() { return loop_; }
  Engine& engine() { return engine_; }
  HubCounters& counters() { return counters_; }
  const HubCounters& counters() const { return counters_; }

  // ---- producers (any shard, on its own loop) ----
  // Routes a message built by this loop's connection, appends it to the store and queues a
  // copy on every destination. The store's completion (the PUBACK) runs on this loop. A
  // message routed nowhere is counted (dropped_no_route) and completed at once.
  IngestResult ingest(const MessageRef& message, StoreCompletion& completion, uint64_t token);
  // Asks the endpoint's home shard to call the resume handler of this shard with `waiter_id`
  // once the endpoint is below 3/4 of its budget (at once if it already is).
  void waitForCapacity(uint32_t endpoint, uint64_t waiter_id);
  // Called with a waiter id on this loop when its endpoint has room again.
  void setResumeHandler(std::function<void(uint64_t)> handler) { resume_handler_ = std::move(handler); }

  // ---- consumers (the home shard of the module) ----
  // The mailbox of a module homed here, or nullptr if no route delivers to it. An identity's
  // upstream endpoint has the mailbox kUpstreamMailboxPrefix + client id.
  ModuleMailbox* mailbox(std::string_view client_id);
  // Whether any endpoint of the mailbox has copies in memory or a backlog in the store.
  bool hasPending(const ModuleMailbox& box) const;
  // Takes the next message for the mailbox (round robin over its endpoints, best priority
  // first in each). Expired messages are dropped on the way (dropped_ttl_expiry).
  bool pop(ModuleMailbox& box, Delivery& out);
  // The consumer acknowledged the delivery: credit the budget, release it in the store.
  void acknowledge(const Delivery& delivery);
  // The consumer went away before acknowledging: back to the front of its queue, as DUP.
  void requeue(Delivery delivery);
  // Queued copies for an endpoint homed here (tests, stats).
  size_t queuedOn(uint32_t endpoint) const;
  // Drops expired copies from the heads of this shard's queues, so that a queue nobody reads
  // does not keep expired messages in memory (the store expires its own copies). Cost: the
  // expired copies plus one look per class. Returns how many were dropped. Call periodically.
  size_t sweepExpired();

 private:
  friend class Engine;
  struct Waiter {
    uint32_t shard;
    uint64_t id;
  };
  struct LocalEndpoint {
    EndpointQueue queue;
    ModuleMailbox* mailbox = nullptr;
    std::vector<Waiter> waiters;
  };

  void onTurnEnd() override;
  void receive(Delivery delivery);
  void receiveBatch(std::vector<Delivery>& batch);
  void addWaiter(uint32_t endpoint, Waiter waiter);
  void credit(const Delivery& delivery);
  void resume(uint64_t waiter_id);
  bool overMemoryBudget(uint32_t endpoint) const;
  // Reads the next backlog batch of (endpoint, class) into memory. False when nothing could be
  // read yet (spilled copies not committed): the mailbox is retried at the end of the turn.
  bool refill(uint32_t endpoint, uint8_t priority_class, ModuleMailbox& box);

  Engine& engine_;
  const uint32_t index_;
  Loop& loop_;
  HubCounters counters_;
  std::unique_ptr<RouterContext> router_context_;
  std::vector<RouteDestination> routes_scratch_;
  std::vector<StoredDestination> stored_scratch_;
  // Endpoints homed here, by endpoint index (nullptr for other shards' endpoints).
  std::vector<std::unique_ptr<LocalEndpoint>> endpoints_;
  std::unordered_map<std::string, std::unique_ptr<ModuleMailbox>> mailboxes_;
  // What this turn produced for each shard (index = target shard).
  std::vector<std::vector<Delivery>> outboxes_;
  std::vector<BacklogCopy> backlog_scratch_;
  std::vector<ModuleMailbox*> refill_retry_;  // mailboxes to wake again next turn
  std::function<void(uint64_t)> resume_handler_;
};

class Engine {
 public:
  // `loops[i]` is the loop of shard i. Every pointer must outlive the Engine.
  Engine(EngineOptions options, std::shared_ptr<const Router> router, MessageStore& store,
         const TimeSource& time, std::vector<Loop*> loops);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  uint32_t shardCount() const { return static_cast<uint32_t>(shards_.size()); }
  Shard& shard(uint32_t index) { return *shards_[index]; }
  // The home shard of an identity (its MQTT client id). Any thread.
  uint32_t homeShardOf(std::string_view client_id) const;
  uint32_t homeShardOfEndpoint(uint32_t endpoint) const { return endpoint_home_[endpoint]; }
  const Router& router() const { return *router_; }
  std::span<const EndpointInfo> endpoints() const { return router_->endpoints(); }
  MessageStore& store() { return store_; }
  const TimeSource& time() const { return time_; }
  const EngineOptions& options() const { return options_; }
  // Hub-wide message sequence numbers (unique, increasing per publisher). Any thread.
  uint64_t nextSequence() { return next_sequence_.fetch_add(1, std::memory_order_relaxed); }
  // Sum of every shard's counters. Any thread.
  CounterSnapshot counters() const;
  // Copies accounted on an endpoint's budget (queued, in flight, in hand-off). Any thread.
  uint64_t accountedMessages(uint32_t endpoint) const;

 private:
  friend class Shard;
  struct Budget {
    std::atomic<uint64_t> messages{0};
    std::atomic<uint64_t> bytes{0};
  };

  const EngineOptions options_;
  std::shared_ptr<const Router> router_;
  MessageStore& store_;
  const TimeSource& time_;
  std::vector<uint32_t> endpoint_home_;
  std::unique_ptr<Budget[]> budgets_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> next_sequence_;
};

}  // namespace edgehub::core
