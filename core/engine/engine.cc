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
  nonempty_ |= 1u << c;
  ++size_;
}

void EndpointQueue::pushFront(Delivery delivery) {
  const uint8_t c = delivery.priority_class;
  classes_[c].push_front(std::move(delivery));
  nonempty_ |= 1u << c;
  ++size_;
}

bool EndpointQueue::popBest(Delivery& out) {
  if (nonempty_ == 0) return false;
  const int c = std::countr_zero(nonempty_);
  auto& q = classes_[static_cast<size_t>(c)];
  out = std::move(q.front());
  q.pop_front();
  if (q.empty()) nonempty_ &= ~(1u << c);
  --size_;
  return true;
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
    if (endpoints[e].kind == EndpointInfo::Kind::kModuleInput) {
      std::string client_id = engine.options().device_id + "/" + endpoints[e].module_id;
      auto& box = mailboxes_[client_id];
      if (!box) {
        box = std::make_unique<ModuleMailbox>();
        box->client_id = client_id;
      }
      box->endpoints.push_back(e);
      local->mailbox = box.get();
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
  engine_.router().route(message.message(), *router_context_, routes_scratch_);
  if (routes_scratch_.empty()) {
    counters_.add(Counter::k_dropped_no_route);
    completion.onStored(token, Status::ok());
    return result;
  }
  const int64_t enqueued_ms = message->enqueued_time_ms();
  const uint64_t bytes = message.bytes().size();
  stored_scratch_.clear();
  for (const RouteDestination& d : routes_scratch_) {
    stored_scratch_.push_back(StoredDestination{d.endpoint, d.priority_class, expiryFor(enqueued_ms, d.ttl_secs)});
    Engine::Budget& budget = engine_.budgets_[d.endpoint];
    const uint64_t m = budget.messages.fetch_add(1, std::memory_order_relaxed) + 1;
    const uint64_t b = budget.bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (!result.over_budget && (overBudget(m, engine_.options_.endpoint_max_messages) ||
                                overBudget(b, engine_.options_.endpoint_max_bytes))) {
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

void Shard::receive(Delivery delivery) {
  LocalEndpoint* local = endpoints_[delivery.endpoint].get();
  HUB_ASSERT(local != nullptr, "delivery for an endpoint homed on another shard");
  local->queue.push(std::move(delivery));
  if (local->mailbox != nullptr && local->mailbox->consumer != nullptr) {
    local->mailbox->consumer->onDeliveryAvailable();
  }
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
    while (local.queue.popBest(out)) {
      if (out.expiry_ms != kNoExpiry) {
        if (now < 0) now = nowMs(engine_.time_);
        if (out.expiry_ms <= now) {
          counters_.add(Counter::k_dropped_ttl_expiry);
          credit(out);
          engine_.store().release(out.endpoint, out.message->sequence());
          continue;
        }
      }
      return true;
    }
  }
  return false;
}

void Shard::acknowledge(const Delivery& delivery) {
  counters_.add(Counter::k_messages_acknowledged);
  credit(delivery);
  engine_.store().release(delivery.endpoint, delivery.message->sequence());
}

void Shard::requeue(Delivery delivery) {
  delivery.redelivery = true;
  endpoints_[delivery.endpoint]->queue.pushFront(std::move(delivery));
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
    : options_(std::move(options)), router_(std::move(router)), store_(store), time_(time) {
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
