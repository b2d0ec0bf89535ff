#include "core/engine/engine.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <thread>

#include "core/assert.h"
#include "core/log/logger.h"

namespace edgehub::core {

namespace {

int64_t nowMs(const TimeSource& time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.systemTime().time_since_epoch())
      .count();
}

int64_t expiryFor(int64_t enqueued_ms, int64_t ttl_secs) {
  if (ttl_secs == std::numeric_limits<int64_t>::max() || ttl_secs < 0) return kNoExpiry;
  if (ttl_secs > (kNoExpiry - enqueued_ms) / 1000) return kNoExpiry;
  return enqueued_ms + ttl_secs * 1000;
}

bool overBudget(uint64_t value, uint64_t limit) { return value >= limit; }
bool belowResume(uint64_t value, uint64_t limit) { return value < limit - limit / 4; }

}  // namespace

// ---- EndpointQueue -------------------------------------------------------------------------

void EndpointQueue::push(Delivery delivery) {
  const uint8_t c = delivery.priority_class;
  classes_[c].push_back(std::move(delivery));
  busy_ |= 1u << c;
  ++size_;
}

void EndpointQueue::pushFront(Delivery delivery) {
  const uint8_t c = delivery.priority_class;
  classes_[c].push_front(std::move(delivery));
  busy_ |= 1u << c;
  ++size_;
}

bool EndpointQueue::popMemory(uint8_t c, Delivery& out) {
  auto& q = classes_[c];
  if (q.empty()) return false;
  out = std::move(q.front());
  q.pop_front();
  --size_;
  updateBusy(c);
  return true;
}

bool EndpointQueue::popExpiredHead(int64_t now_ms, Delivery& out) {
  for (uint8_t c = 0; c < kPriorityClasses; ++c) {
    auto& q = classes_[c];
    if (!q.empty() && q.front().expiry_ms <= now_ms) return popMemory(c, out);
  }
  return false;
}

bool EndpointQueue::popBest(Delivery& out) {
  for (uint8_t c = 0; c < kPriorityClasses; ++c) {
    if (popMemory(c, out)) return true;
  }
  return false;
}

bool EndpointQueue::admit(Delivery& delivery, bool over_budget) {
  const uint8_t c = delivery.priority_class;
  const uint64_t seq = delivery.message->sequence();
  Backlog& b = backlog_[c];
  if (!b.active && over_budget) {
    // The backlog starts after everything memory has seen.
    b.cursor = std::max(b.cursor, b.max_memory);
  }
  // A copy at or below the cursor (it was in a cross-loop batch while the cursor moved past its
  // sequence) must stay in memory: a backlog read would skip it.
  if ((b.active || over_budget) && seq > b.cursor) {
    spill(c, seq);
    return false;
  }
  auto& q = classes_[c];
  // Sequences arrive nearly in order (one producer is monotonic; producers on other loops
  // interleave by a batch at most): the insertion point is at or next to the back.
  auto it = q.end();
  while (it != q.begin() && std::prev(it)->message->sequence() > seq) --it;
  q.insert(it, std::move(delivery));
  b.max_memory = std::max(b.max_memory, seq);
  busy_ |= 1u << c;
  ++size_;
  return true;
}

void EndpointQueue::spill(uint8_t c, uint64_t sequence) {
  Backlog& b = backlog_[c];
  b.active = true;
  b.last_spilled = std::max(b.last_spilled, sequence);
  busy_ |= 1u << c;
}

void EndpointQueue::backlogRead(uint8_t c, uint64_t last_sequence, bool exhausted) {
  Backlog& b = backlog_[c];
  b.cursor = std::max(b.cursor, last_sequence);
  b.max_memory = std::max(b.max_memory, last_sequence);
  // A short read ends the backlog only if it covered every spilled copy: one spilled a moment
  // ago may not be committed yet, and must not be skipped.
  if (exhausted && b.cursor >= b.last_spilled) b.active = false;
  updateBusy(c);
}

// ---- Shard ---------------------------------------------------------------------------------

Shard::Shard(Engine& engine, uint32_t index, Loop& loop)
    : engine_(engine), index_(index), loop_(loop), router_context_(engine.router().newContext()) {
  const auto endpoints = engine.endpoints();
  endpoints_.resize(endpoints.size());
  outboxes_.resize(engine.shardCount());
  for (uint32_t e = 0; e < endpoints.size(); ++e) {
    if (engine.endpoint_home_[e] != index) continue;
    auto local = std::make_unique<LocalEndpoint>();
    std::string client_id;
    if (endpoints[e].kind == EndpointInfo::Kind::kModuleInput) {
      client_id = engine.options().device_id + "/" + endpoints[e].module_id;
    } else if (!endpoints[e].client_id.empty()) {
      client_id = std::string(kUpstreamMailboxPrefix) + endpoints[e].client_id;
    }
    if (!client_id.empty()) {
      auto& box = mailboxes_[client_id];
      if (!box) {
        box = std::make_unique<ModuleMailbox>();
        box->client_id = client_id;
      }
      box->endpoints.push_back(e);
      local->mailbox = box.get();
    }
    if (engine.store().keepsBacklog()) {
      for (uint8_t c = 0; c < kPriorityClasses; ++c) {
        if (engine.store().hasBacklog(e, c)) local->queue.spill(c, 0);
      }
    }
    endpoints_[e] = std::move(local);
  }
}

// Destroyed only after its loop stopped for good (Engine's contract), so no turn-end hook or
// posted batch can still reach it.
Shard::~Shard() = default;

Shard::IngestResult Shard::ingest(const MessageRef& message, StoreCompletion& completion,
                                  uint64_t token) {
  HUB_ASSERT(loop_.isThreadSafe(), "Shard::ingest off its loop");
  IngestResult result;
  counters_.add(Counter::k_messages_received);
  const uint32_t upstream_dropped = engine_.router().route(message.message(), *router_context_, routes_scratch_);
  if (upstream_dropped != 0) counters_.add(Counter::k_upstream_dropped, upstream_dropped);
  if (routes_scratch_.empty()) {
    // Routed nowhere, or only upstream and dropped there (counted above, not as no_route).
    if (upstream_dropped == 0) counters_.add(Counter::k_dropped_no_route);
    completion.onStored(token, Status::ok());
    return result;
  }
  const int64_t enqueued_ms = message->enqueued_time_ms();
  const uint64_t bytes = message.bytes().size();
  // With a store that keeps a backlog, an endpoint over its memory budget spills (receive()),
  // so the budget is no reason to pause a producer: the store's own limits are. Only the
  // memory-only store pauses producers here.
  const bool budget_pauses = !engine_.store().keepsBacklog();
  stored_scratch_.clear();
  for (const RouteDestination& d : routes_scratch_) {
    stored_scratch_.push_back(StoredDestination{d.endpoint, d.priority_class, expiryFor(enqueued_ms, d.ttl_secs)});
    Engine::Budget& budget = engine_.budgets_[d.endpoint];
    const uint64_t m = budget.messages.fetch_add(1, std::memory_order_relaxed) + 1;
    const uint64_t b = budget.bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (budget_pauses && !result.over_budget &&
        (overBudget(m, engine_.options_.endpoint_max_messages) || overBudget(b, engine_.options_.endpoint_max_bytes))) {
      result.over_budget = true;
      result.blocked_endpoint = d.endpoint;
    }
  }
  result.destinations = stored_scratch_.size();
  counters_.add(Counter::k_messages_enqueued, stored_scratch_.size());
  engine_.store().append(message, stored_scratch_, loop_, completion, token);
  bool handed_off = false;
  for (const StoredDestination& d : stored_scratch_) {
    Delivery delivery{message, d.expiry_ms, d.endpoint, d.priority_class, false};
    const uint32_t home = engine_.endpoint_home_[d.endpoint];
    if (home == index_) {
      receive(std::move(delivery));
    } else {
      outboxes_[home].push_back(std::move(delivery));
      handed_off = true;
    }
  }
  if (handed_off) loop_.callAtTurnEnd(this);
  return result;
}

void Shard::onTurnEnd() {
  std::vector<ModuleMailbox*> retry_boxes;
  retry_boxes.swap(refill_retry_);
  for (ModuleMailbox* box : retry_boxes) {
    if (box->consumer != nullptr) box->consumer->onDeliveryAvailable();
  }
  bool retry = false;
  for (uint32_t target = 0; target < outboxes_.size(); ++target) {
    auto& box = outboxes_[target];
    if (box.empty()) continue;
    Shard* dest = engine_.shards_[target].get();
    auto batch = std::make_unique<std::vector<Delivery>>();
    batch->swap(box);
    box.reserve(batch->size());
    std::vector<Delivery>* raw = batch.get();
    if (!dest->loop_.post([dest, batch = std::move(batch)]() mutable { dest->receiveBatch(*batch); })) {
      // The target's post queue is full (it is stalled or flooded): keep the batch and try
      // again next turn. Dropping it would lose accepted messages.
      box.swap(*raw);
      retry = true;
    }
  }
  if (retry) loop_.callAtTurnEnd(this);
}

void Shard::receiveBatch(std::vector<Delivery>& batch) {
  for (Delivery& d : batch) receive(std::move(d));
}

// The copy being received is already accounted (at ingest), hence "above" rather than "at".
bool Shard::overMemoryBudget(uint32_t endpoint) const {
  const Engine::Budget& budget = engine_.budgets_[endpoint];
  return budget.messages.load(std::memory_order_relaxed) > engine_.options_.endpoint_max_messages ||
         budget.bytes.load(std::memory_order_relaxed) > engine_.options_.endpoint_max_bytes;
}

void Shard::receive(Delivery delivery) {
  LocalEndpoint* local = endpoints_[delivery.endpoint].get();
  HUB_ASSERT(local != nullptr, "delivery for an endpoint homed on another shard");
  if (engine_.store().keepsBacklog()) {
    // The store has every copy; memory keeps the head of the queue. Behind a backlog every newer
    // copy stays in the store too, so that the class is served in order.
    if (!local->queue.admit(delivery, overMemoryBudget(delivery.endpoint))) {
      // Not moved from: the copy's accounting is returned and the reference dropped here.
      counters_.add(Counter::k_spilled_to_store);
      credit(delivery);
    }
  } else {
    local->queue.push(std::move(delivery));
  }
  if (local->mailbox != nullptr && local->mailbox->consumer != nullptr) {
    local->mailbox->consumer->onDeliveryAvailable();
  }
}

bool Shard::hasPending(const ModuleMailbox& box) const {
  for (uint32_t e : box.endpoints) {
    if (endpoints_[e]->queue.bestClass() >= 0) return true;
  }
  return false;
}

ModuleMailbox* Shard::mailbox(std::string_view client_id) {
  auto it = mailboxes_.find(std::string(client_id));
  return it == mailboxes_.end() ? nullptr : it->second.get();
}

bool Shard::pop(ModuleMailbox& box, Delivery& out) {
  const size_t n = box.endpoints.size();
  if (n == 0) return false;
  int64_t now = -1;
  for (size_t tried = 0; tried < n; ++tried) {
    const uint32_t e = box.endpoints[box.cursor];
    box.cursor = (box.cursor + 1) % n;
    LocalEndpoint& local = *endpoints_[e];
    for (int c = local.queue.bestClass(); c >= 0; c = local.queue.bestClass()) {
      const auto cls = static_cast<uint8_t>(c);
      if (local.queue.memoryEmpty(cls)) {
        // Strict priority: a higher class waiting for its backlog holds the lower ones back.
        if (!refill(e, cls, box)) break;
        continue;
      }
      local.queue.popMemory(cls, out);
      if (out.message->sequence() <= engine_.store().droppedThrough()) {
        // Dropped from the store by drop-oldest; a copy appended late with a lower sequence
        // than a dropped one counts as older too (released here, so the store agrees).
        counters_.add(Counter::k_dropped_store_full);
        credit(out);
        engine_.store().release(out.released());
        continue;
      }
      if (out.expiry_ms != kNoExpiry) {
        if (now < 0) now = nowMs(engine_.time_);
        if (out.expiry_ms <= now) {
          counters_.add(Counter::k_dropped_ttl_expiry);
          credit(out);
          engine_.store().releaseExpired(out.released());
          continue;
        }
      }
      return true;
    }
  }
  return false;
}

bool Shard::refill(uint32_t endpoint, uint8_t priority_class, ModuleMailbox& box) {
  LocalEndpoint& local = *endpoints_[endpoint];
  backlog_scratch_.clear();
  const size_t batch = std::max<size_t>(1, engine_.options_.backlog_batch);
  Status s = engine_.store().readBacklog(endpoint, priority_class, local.queue.backlogCursor(priority_class), batch,
                                         backlog_scratch_);
  if (!s.isOk()) {
    HUB_LOG_ERROR("engine", "cannot read the backlog of %s: %s", engine_.endpoints()[endpoint].name.c_str(),
                  s.toString().c_str());
    backlog_scratch_.clear();
  }
  uint64_t last = 0;
  Engine::Budget& budget = engine_.budgets_[endpoint];
  for (BacklogCopy& copy : backlog_scratch_) {
    last = copy.message->sequence();
    // Back in memory: accounted like a fresh copy, credited when acknowledged or expired.
    budget.messages.fetch_add(1, std::memory_order_relaxed);
    budget.bytes.fetch_add(copy.message.bytes().size(), std::memory_order_relaxed);
    local.queue.push(Delivery{std::move(copy.message), copy.expiry_ms, endpoint, priority_class, false});
  }
  const bool got = !backlog_scratch_.empty();
  local.queue.backlogRead(priority_class, last, backlog_scratch_.size() < batch);
  backlog_scratch_.clear();
  if (!got && local.queue.backlog(priority_class) && s.isOk()) {
    // Spilled copies not committed yet: look again next turn.
    if (std::find(refill_retry_.begin(), refill_retry_.end(), &box) == refill_retry_.end()) {
      refill_retry_.push_back(&box);
    }
    loop_.callAtTurnEnd(this);
  }
  return got || !local.queue.backlog(priority_class);
}

void Shard::acknowledge(const Delivery& delivery) {
  counters_.add(Counter::k_messages_acknowledged);
  credit(delivery);
  engine_.store().release(delivery.released());
}

void Shard::requeue(Delivery delivery) {
  delivery.redelivery = true;
  endpoints_[delivery.endpoint]->queue.pushFront(std::move(delivery));
}

size_t Shard::sweepExpired() {
  const int64_t now = nowMs(engine_.time_);
  size_t dropped = 0;
  Delivery d;
  for (auto& local : endpoints_) {
    if (local == nullptr) continue;
    while (local->queue.popExpiredHead(now, d)) {
      counters_.add(Counter::k_dropped_ttl_expiry);
      credit(d);
      engine_.store().releaseExpired(d.released());
      ++dropped;
    }
  }
  return dropped;
}

size_t Shard::queuedOn(uint32_t endpoint) const {
  const LocalEndpoint* local = endpoints_[endpoint].get();
  return local == nullptr ? 0 : local->queue.size();
}

void Shard::credit(const Delivery& delivery) {
  Engine::Budget& budget = engine_.budgets_[delivery.endpoint];
  const uint64_t bytes = delivery.message.bytes().size();
  const uint64_t m = budget.messages.fetch_sub(1, std::memory_order_relaxed) - 1;
  const uint64_t b = budget.bytes.fetch_sub(bytes, std::memory_order_relaxed) - bytes;
  LocalEndpoint& local = *endpoints_[delivery.endpoint];
  if (local.waiters.empty()) return;
  if (!belowResume(m, engine_.options_.endpoint_max_messages) ||
      !belowResume(b, engine_.options_.endpoint_max_bytes)) {
    return;
  }
  std::vector<Waiter> waiters;
  waiters.swap(local.waiters);
  for (const Waiter& w : waiters) {
    Shard* target = engine_.shards_[w.shard].get();
    const uint64_t id = w.id;
    // Posted even to this shard: the resume must not run inside the consumer's call stack.
    if (!target->loop_.post([target, id] { target->resume(id); })) {
      local.waiters.push_back(w);  // Retried at the next credit.
    }
  }
}

void Shard::waitForCapacity(uint32_t endpoint, uint64_t waiter_id) {
  const uint32_t home = engine_.endpoint_home_[endpoint];
  Shard* target = engine_.shards_[home].get();
  Waiter waiter{index_, waiter_id};
  if (home == index_) {
    addWaiter(endpoint, waiter);
    return;
  }
  while (!target->loop_.post([target, endpoint, waiter] { target->addWaiter(endpoint, waiter); })) {
    // Cold and transient (the target drains its queue); a lost registration would leave the
    // producer paused for good.
    std::this_thread::yield();
  }
}

void Shard::addWaiter(uint32_t endpoint, Waiter waiter) {
  Engine::Budget& budget = engine_.budgets_[endpoint];
  if (belowResume(budget.messages.load(std::memory_order_relaxed), engine_.options_.endpoint_max_messages) &&
      belowResume(budget.bytes.load(std::memory_order_relaxed), engine_.options_.endpoint_max_bytes)) {
    Shard* target = engine_.shards_[waiter.shard].get();
    const uint64_t id = waiter.id;
    if (target->loop_.post([target, id] { target->resume(id); })) return;
  }
  LocalEndpoint& local = *endpoints_[endpoint];
  for (const Waiter& w : local.waiters) {
    if (w.shard == waiter.shard && w.id == waiter.id) return;
  }
  local.waiters.push_back(waiter);
}

void Shard::resume(uint64_t waiter_id) {
  if (resume_handler_) resume_handler_(waiter_id);
}

// ---- Engine --------------------------------------------------------------------------------

Engine::Engine(EngineOptions options, std::shared_ptr<const Router> router, MessageStore& store,
               const TimeSource& time, std::vector<Loop*> loops)
    : options_(std::move(options)), router_(std::move(router)), store_(store), time_(time),
      next_sequence_(store.lastSequence() + 1) {
  HUB_RELEASE_ASSERT(!loops.empty(), "an engine needs at least one loop");
  const auto endpoints = router_->endpoints();
  endpoint_home_.resize(endpoints.size(), 0);
  budgets_ = std::make_unique<Budget[]>(endpoints.size());
  shards_.reserve(loops.size());
  // Shards read shardCount() through shards_.size() while constructing: size it first.
  for (size_t i = 0; i < loops.size(); ++i) shards_.push_back(nullptr);
  for (uint32_t e = 0; e < endpoints.size(); ++e) {
    if (endpoints[e].kind == EndpointInfo::Kind::kModuleInput) {
      endpoint_home_[e] = homeShardOf(options_.device_id + "/" + endpoints[e].module_id);
    } else if (!endpoints[e].client_id.empty()) {
      // With its sender: a module's telemetry to its own upstream queue never changes thread.
      endpoint_home_[e] = homeShardOf(endpoints[e].client_id);
    }
  }
  for (uint32_t i = 0; i < loops.size(); ++i) shards_[i] = std::make_unique<Shard>(*this, i, *loops[i]);
}

Engine::~Engine() = default;

uint32_t Engine::homeShardOf(std::string_view client_id) const {
  // FNV-1a: stable across runs and platforms (std::hash need not be), so a module lands on the
  // same loop every time, which keeps logs and benchmarks comparable.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : client_id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<uint32_t>(h % shards_.size());
}

CounterSnapshot Engine::counters() const {
  CounterSnapshot s;
  for (const auto& shard : shards_) {
    for (size_t i = 0; i < kCounterCount; ++i) s.values[i] += shard->counters_.value(static_cast<Counter>(i));
  }
  return s;
}

uint64_t Engine::accountedMessages(uint32_t endpoint) const {
  return budgets_[endpoint].messages.load(std::memory_order_relaxed);
}

}  // namespace edgehub::core
