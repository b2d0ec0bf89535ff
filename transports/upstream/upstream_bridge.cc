#include "transports/upstream/upstream_bridge.h"

#include <algorithm>
#include <chrono>

#include "core/log/logger.h"
#include "transports/iothub/property_bag.h"
#include "transports/upstream/upstream_identity.h"

namespace edgehub::transports::upstream {

namespace {

constexpr std::string_view kLog = "upstream";
// Identities told to the pool but without a connection (its credentials or TLS setup failed)
// are told again this often, so a fixed configuration resumes without a restart and a broken
// one logs at a bounded rate.
constexpr unsigned kResignalTicks = 30;

int64_t nowMs(const core::TimeSource& time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.systemTime().time_since_epoch()).count();
}

}  // namespace

void UpstreamBridge::Sender::onDeliveryAvailable() { bridge->signal(*this); }

UpstreamBridge::UpstreamBridge(core::Shard& shard, const core::IdentityConfig& identities)
    : shard_(shard), tick_timer_(shard.loop(), [this] { tick(); }) {
  const auto endpoints = shard.engine().endpoints();
  for (const core::EndpointInfo& info : endpoints) {
    if (info.kind != core::EndpointInfo::Kind::kUpstream || info.client_id.empty()) continue;
    core::ModuleMailbox* box = shard.mailbox(std::string(core::kUpstreamMailboxPrefix) + info.client_id);
    if (box == nullptr) continue;  // homed on another loop
    const core::IdentityEntry* entry = identities.findByClientId(info.client_id);
    if (entry == nullptr) continue;  // the router made the endpoint from these identities
    auto sender = std::make_unique<Sender>(this, entry->identity);
    sender->key = entry->primary_key;
    sender->box = box;
    box->consumer = sender.get();
    senders_.emplace(entry->identity, std::move(sender));
  }
}

core::Result<std::unique_ptr<UpstreamBridge>> UpstreamBridge::create(core::Shard& shard,
                                                                     const core::IdentityConfig& identities,
                                                                     PoolOptions options) {
  HUB_ASSERT(shard.loop().isThreadSafe(), "UpstreamBridge created off its loop");
  std::unique_ptr<UpstreamBridge> bridge(new UpstreamBridge(shard, identities));
  HUB_ASSIGN_OR_RETURN(bridge->pool_, UpstreamPool::create(shard.loop(), shard.engine().time(), std::move(options),
                                                           *bridge));
  for (auto& [id, sender] : bridge->senders_) {
    if (shard.hasPending(*sender->box)) bridge->signal(*sender);
  }
  bridge->tick_timer_.enable(std::chrono::seconds(1), std::chrono::seconds(1));
  return bridge;
}

UpstreamBridge::~UpstreamBridge() {
  HUB_ASSERT(shard_.loop().isThreadSafe(), "UpstreamBridge destroyed off its loop");
  if (turn_end_armed_) shard_.loop().cancelTurnEnd(this);
  tick_timer_.disable();
  pool_.reset();  // drops connections without callbacks
  for (auto& [id, sender] : senders_) sender->box->consumer = nullptr;
}

void UpstreamBridge::shutdown() {
  tick_timer_.disable();
  if (pool_) pool_->shutdown();
  syncCounters();
}

UpstreamBridge::Sender* UpstreamBridge::find(const core::Identity& identity) {
  auto it = senders_.find(identity);
  return it == senders_.end() ? nullptr : it->second.get();
}

void UpstreamBridge::signal(Sender& sender) {
  if (sender.signalled) return;
  sender.signalled = true;
  to_signal_.push_back(&sender);
  if (!turn_end_armed_) {
    turn_end_armed_ = true;
    shard_.loop().callAtTurnEnd(this);
  }
}

// Outside any connection's or session's callback: opening a connection here is safe.
void UpstreamBridge::onTurnEnd() {
  turn_end_armed_ = false;
  std::vector<Sender*> batch;
  batch.swap(to_signal_);
  for (Sender* s : batch) pool_->notifyPending(s->identity);
  batch.clear();
  if (to_signal_.empty()) to_signal_.swap(batch);  // keep the capacity
}

void UpstreamBridge::tick() {
  syncCounters();
  static_assert(kResignalTicks > 0);
  if (++ticks_ % kResignalTicks != 0) return;
  for (auto& [id, sender] : senders_) {
    if (sender->signalled && pool_->connection(id) == nullptr) pool_->notifyPending(id);
  }
}

void UpstreamBridge::syncCounters() {
  if (!pool_) return;
  const PoolCounters& now = pool_->counters();
  core::HubCounters& c = shard_.counters();
  c.add(core::Counter::k_upstream_connects, now.connects - synced_.connects);
  c.add(core::Counter::k_upstream_refusals, now.refusals - synced_.refusals);
  c.add(core::Counter::k_upstream_disconnects, now.disconnects - synced_.disconnects);
  synced_ = now;
}

core::Result<UpstreamCredentials> UpstreamBridge::credentials(const core::Identity& identity) {
  Sender* s = find(identity);
  if (s == nullptr) return core::notFound("no identity " + identity.clientId() + " on this loop");
  return UpstreamCredentials{s->identity, s->key};
}

bool UpstreamBridge::fill(const core::Identity& identity, UpstreamWriter& writer, uint32_t max) {
  Sender* s = find(identity);
  if (s == nullptr) return false;
  syncCounters();  // a fill follows every connect: the connection counters stay current
  uint32_t sent = 0;
  while (sent < max) {
    Item item;
    if (!s->retry.empty()) {
      item = std::move(s->retry.front());
      s->retry.pop_front();
    } else {
      if (!shard_.pop(*s->box, item.delivery)) {
        // Nothing left (or a backlog read not committed yet: the engine wakes us again).
        s->signalled = false;
        return false;
      }
      item.order = s->next_order++;
    }
    switch (send(*s, std::move(item), writer)) {
      case Sent::kOk:
        ++sent;
        break;
      case Sent::kNoRoom:
        return true;
      case Sent::kDropped:
        break;
    }
  }
  return true;
}

UpstreamBridge::Sent UpstreamBridge::send(Sender& s, Item item, UpstreamWriter& writer) {
  core::HubCounters& counters = shard_.counters();
  const core::Delivery& d = item.delivery;
  // A copy back from a lost link may have expired meanwhile (fresh pops are checked by the engine).
  if (d.redelivery && d.expiry_ms != core::kNoExpiry && d.expiry_ms <= nowMs(shard_.engine().time())) {
    counters.add(core::Counter::k_dropped_ttl_expiry);
    shard_.acknowledge(d);
    return Sent::kDropped;
  }
  const fb::Message& message = d.message.message();
  topic_.clear();
  appendTelemetryTopic(topic_, s.identity, std::string_view());  // ".../messages/events/"
  iothub::appendUpstreamBag(topic_, message);
  std::span<const uint8_t> payload;
  if (const auto* body = message.body()) payload = std::span<const uint8_t>(body->data(), body->size());
  item.cookie = s.next_cookie++;
  const core::Status status = writer.publish(topic_, payload, item.cookie);
  if (status.isOk()) {
    counters.add(core::Counter::k_upstream_published);
    if (d.redelivery) counters.add(core::Counter::k_upstream_resent);
    s.in_flight.push_back(std::move(item));
    return Sent::kOk;
  }
  if (status.code() == core::StatusCode::kUnavailable) {
    s.retry.push_front(std::move(item));  // the oldest: it came from the front or was just popped
    return Sent::kNoRoom;
  }
  // Oversized once the topic is added (the router drops what is over the limit by itself), or a
  // topic libmosquitto refuses: neither can ever be sent, so it is dropped, not retried forever.
  HUB_LOG_WARN(kLog, "%s: dropped message %llu for %s: %s", s.identity.clientId().c_str(),
               static_cast<unsigned long long>(message.sequence()),
               shard_.engine().endpoints()[d.endpoint].name.c_str(), std::string(status.message()).c_str());
  counters.add(core::Counter::k_upstream_dropped);
  shard_.acknowledge(d);
  return Sent::kDropped;
}

void UpstreamBridge::onPublishDone(const core::Identity& identity, uint64_t cookie, const core::Status& status) {
  Sender* s = find(identity);
  if (s == nullptr) return;
  // PUBACKs come in publish order on one connection, so this is almost always the front.
  auto it = std::find_if(s->in_flight.begin(), s->in_flight.end(), [cookie](const Item& i) { return i.cookie == cookie; });
  if (it == s->in_flight.end()) return;
  Item item = std::move(*it);
  s->in_flight.erase(it);
  if (status.isOk()) {
    shard_.counters().add(core::Counter::k_upstream_acknowledged);
    shard_.acknowledge(item.delivery);
    return;
  }
  // Not acknowledged: the link ended first. Sent again before anything newer, in the original
  // order (these come in publish order, and are older than what is still in the retry list).
  item.delivery.redelivery = true;
  auto pos = std::upper_bound(s->retry.begin(), s->retry.end(), item.order,
                              [](uint64_t order, const Item& i) { return order < i.order; });
  s->retry.insert(pos, std::move(item));
}

}  // namespace edgehub::transports::upstream
