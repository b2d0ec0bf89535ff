#include "transports/upstream/upstream_bridge.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <optional>

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

UpstreamBridge::UpstreamBridge(core::Shard& shard, const core::IdentityConfig& identities,
                               core::twin::TwinService* twins)
    : shard_(shard), twins_(twins), tick_timer_(shard.loop(), [this] { tick(); }) {
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
    by_client_id_.emplace(info.client_id, sender.get());
    senders_.emplace(entry->identity, std::move(sender));
  }
}

core::Result<std::unique_ptr<UpstreamBridge>> UpstreamBridge::create(core::Shard& shard,
                                                                     const core::IdentityConfig& identities,
                                                                     PoolOptions options,
                                                                     core::twin::TwinService* twins) {
  HUB_ASSERT(shard.loop().isThreadSafe(), "UpstreamBridge created off its loop");
  std::unique_ptr<UpstreamBridge> bridge(new UpstreamBridge(shard, identities, twins));
  if (twins != nullptr) {
    for (const char* filter : {"$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#", "$iothub/methods/POST/#"}) {
      options.connection.subscriptions.emplace_back(filter);
    }
  }
  HUB_ASSIGN_OR_RETURN(bridge->pool_, UpstreamPool::create(shard.loop(), shard.engine().time(), std::move(options),
                                                           *bridge));
  for (auto& [id, sender] : bridge->senders_) {
    if (shard.hasPending(*sender->box)) bridge->signal(*sender);
    // Reported properties the cloud has not acknowledged (from before a restart) go up now.
    if (twins != nullptr) bridge->queueHold(*sender);
  }
  if (twins != nullptr) twins->attachCloudSide(shard.index(), bridge.get());
  bridge->tick_timer_.enable(std::chrono::seconds(1), std::chrono::seconds(1));
  return bridge;
}

UpstreamBridge::~UpstreamBridge() {
  HUB_ASSERT(shard_.loop().isThreadSafe(), "UpstreamBridge destroyed off its loop");
  if (twins_ != nullptr && twins_->cloudSide(shard_.index()) == this) twins_->attachCloudSide(shard_.index(), nullptr);
  *self_ = nullptr;  // method answers still on their way find no bridge
  if (turn_end_armed_) shard_.loop().cancelTurnEnd(this);
  tick_timer_.disable();
  pool_.reset();  // drops connections without callbacks
  for (auto& [id, sender] : senders_) sender->box->consumer = nullptr;
}

void UpstreamBridge::shutdown() {
  // Sessions closing from here on must not hold connections open again.
  if (twins_ != nullptr && twins_->cloudSide(shard_.index()) == this) twins_->attachCloudSide(shard_.index(), nullptr);
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
  armTurnEnd();
}

void UpstreamBridge::armTurnEnd() {
  if (turn_end_armed_) return;
  turn_end_armed_ = true;
  shard_.loop().callAtTurnEnd(this);
}

// Outside any connection's or session's callback: opening a connection here is safe.
void UpstreamBridge::onTurnEnd() {
  turn_end_armed_ = false;
  std::vector<Sender*> batch;
  batch.swap(to_signal_);
  for (Sender* s : batch) pool_->notifyPending(s->identity);
  batch.clear();
  if (to_signal_.empty()) to_signal_.swap(batch);  // keep the capacity
  if (to_hold_.empty()) return;
  std::vector<Sender*> holds;  // Cold: presence changes and twin updates.
  holds.swap(to_hold_);
  for (Sender* s : holds) {
    s->hold_queued = false;
    const bool want = wantsConnection(*s);
    if (want != s->held) {
      s->held = want;
      pool_->hold(s->identity, want);
    }
    // Already connected: nothing will call onConnected, so send what waits now.
    if (want) syncReported(*s);
  }
}

void UpstreamBridge::tick() {
  syncCounters();
  if (twins_ != nullptr) twinTick();
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

// ---- twins and methods ----

namespace {

constexpr std::string_view kTwinRes = "$iothub/twin/res/";
constexpr std::string_view kDesiredPatch = "$iothub/twin/PATCH/properties/desired/";
constexpr std::string_view kMethodPost = "$iothub/methods/POST/";

// The value of `name` in the query part ("?a=1&b=2") of an IoT Hub topic; "" if absent.
std::string_view queryValue(std::string_view topic, std::string_view name) {
  const size_t q = topic.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = topic.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

std::optional<int64_t> parseInt(std::string_view text) {
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

std::string_view asText(std::span<const uint8_t> payload) {
  return std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size());
}

}  // namespace

UpstreamBridge::Sender* UpstreamBridge::findByClientId(std::string_view client_id) {
  auto it = by_client_id_.find(client_id);
  return it == by_client_id_.end() ? nullptr : it->second;
}

core::twin::TwinEntry& UpstreamBridge::twinOf(const Sender& sender) {
  return twins_->entry(shard_.index(), sender.identity.clientId());
}

std::string UpstreamBridge::nextRid() {
  return std::to_string(shard_.index()).append(".").append(std::to_string(next_rid_++));
}

// A module is connected here, or its reported properties are ahead of the cloud's.
bool UpstreamBridge::wantsConnection(Sender& s) {
  if (twins_ == nullptr) return false;
  if (s.present) return true;
  return !s.patch_rid.empty() || twinOf(s).twin.reportedPatchForCloud().has_value();
}

// Hold changes wait for the end of the turn: never a connection opened inside another
// connection's or a session's callback.
void UpstreamBridge::queueHold(Sender& s) {
  if (s.hold_queued) return;
  s.hold_queued = true;
  to_hold_.push_back(&s);
  armTurnEnd();
}

void UpstreamBridge::onModulePresence(const std::string& client_id, bool connected) {
  Sender* s = findByClientId(client_id);
  if (s == nullptr || (s->identity.isModule() && s->identity.moduleId() == core::kEdgeHubModuleId)) return;
  s->present = connected;
  queueHold(*s);
}

void UpstreamBridge::onReportedStored(const std::string& client_id) {
  Sender* s = findByClientId(client_id);
  if (s == nullptr) return;
  queueHold(*s);  // connects if needed, then syncReported()
}

void UpstreamBridge::onConnected(const core::Identity& identity) {
  Sender* s = find(identity);
  if (s == nullptr || twins_ == nullptr) return;
  // Whatever was in flight on the old link is unanswered: the twin is asked for again and the
  // reported difference recomputed (so it includes anything patched meanwhile).
  s->get_rid.clear();
  s->patch_rid.clear();
  s->patch_not_before = core::MonotonicTime{};
  s->twin_retry_delay = kTwinRequestTimeout;
  sendTwinGet(*s);
  syncReported(*s);
}

void UpstreamBridge::publishControl(Sender& s, const std::string& topic, std::string_view payload, const char* what) {
  const core::Status st = pool_->publishControl(
      s.identity, topic, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  if (st.isOk()) return;
  if (st.code() != core::StatusCode::kUnavailable) {
    HUB_LOG_WARN(kLog, "%s: %s not sent upstream: %s", s.identity.clientId().c_str(), what,
                 std::string(st.message()).c_str());
  }
}

void UpstreamBridge::sendTwinGet(Sender& s) {
  s.get_rid = nextRid();
  s.get_sent = shard_.engine().time().monotonicTime();
  publishControl(s, std::string("$iothub/twin/GET/?$rid=").append(s.get_rid), {}, "twin GET");
}

void UpstreamBridge::syncReported(Sender& s) {
  if (twins_ == nullptr || !s.patch_rid.empty()) return;
  const UpstreamConnection* c = pool_->connection(s.identity);
  if (c == nullptr || c->state() != ConnectionState::kConnected) return;  // onConnected comes back here
  const core::MonotonicTime now = shard_.engine().time().monotonicTime();
  if (now < s.patch_not_before) return;  // twinTick retries
  core::twin::TwinEntry& e = twinOf(s);
  std::optional<std::string> patch = e.twin.reportedPatchForCloud();
  if (!patch) return;
  s.patch_rid = nextRid();
  s.patch_basis = e.twin.reportedJson();
  s.patch_sent = now;
  shard_.counters().add(core::Counter::k_upstream_twin_patches);
  publishControl(s, std::string("$iothub/twin/PATCH/properties/reported/?$rid=").append(s.patch_rid), *patch,
                 "reported patch");
}

// Completion of the bridge's twin writes. Stateless and static: a write may complete after
// the bridge is gone (at shutdown). The twin in memory is right either way; a lost write is
// redone by the next change, and at worst the cloud's desired properties are applied again
// after a restart, or a reported difference is sent twice.
namespace {
class TwinSyncSaved final : public core::StoreCompletion {
 public:
  void onStored(uint64_t, const core::Status& status) override {
    if (!status.isOk()) HUB_LOG_WARN(kLog, "twin sync state not stored: %s", status.toString().c_str());
  }
};
TwinSyncSaved g_twin_sync_saved;
}  // namespace

void UpstreamBridge::saveTwin(const Sender& s) {
  const core::twin::TwinEntry* e = twins_->find(shard_.index(), s.identity.clientId());
  if (e == nullptr) return;
  shard_.engine().store().saveTwin(s.identity.clientId(), e->twin.serialize(), shard_.loop(), g_twin_sync_saved, 0);
}

void UpstreamBridge::onMessage(const core::Identity& identity, std::string_view topic, std::span<const uint8_t> payload) {
  Sender* s = find(identity);
  if (s == nullptr || twins_ == nullptr) return;
  if (topic.starts_with(kTwinRes)) {
    std::string_view rest = topic.substr(kTwinRes.size());
    const auto status = parseInt(rest.substr(0, rest.find('/')));
    if (!status) return;
    onTwinResponse(*s, static_cast<int>(*status), queryValue(topic, "$rid"), asText(payload));
  } else if (topic.starts_with(kDesiredPatch)) {
    onDesiredPatch(*s, parseInt(queryValue(topic, "$version")).value_or(0), asText(payload));
  } else if (topic.starts_with(kMethodPost)) {
    std::string_view rest = topic.substr(kMethodPost.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return;
    onMethodRequest(*s, rest.substr(0, slash), queryValue(topic, "$rid"), asText(payload));
  }
}

void UpstreamBridge::onTwinResponse(Sender& s, int status, std::string_view rid, std::string_view body) {
  const int64_t now_ms = nowMs(shard_.engine().time());
  core::twin::TwinEntry& e = twinOf(s);
  if (!rid.empty() && rid == s.get_rid) {
    s.get_rid.clear();
    s.twin_retry_delay = kTwinRequestTimeout;
    if (status != 200) {
      HUB_LOG_WARN(kLog, "%s: the cloud answered the twin GET with %d", s.identity.clientId().c_str(), status);
      return;
    }
    auto section = core::twin::Twin::desiredOfGetResponse(body);
    const bool was_cloud = e.twin.desiredFromCloud();
    auto changed = section.isOk() ? e.twin.setDesiredFromCloud(section.value(), now_ms)
                                  : core::Result<std::optional<std::string>>(section.status());
    if (!changed.isOk()) {
      HUB_LOG_WARN(kLog, "%s: cloud twin ignored: %s", s.identity.clientId().c_str(),
                   std::string(changed.status().message()).c_str());
      return;
    }
    if (changed.value() || !was_cloud) saveTwin(s);  // a reconnect to an unchanged twin writes nothing
    if (changed.value()) {
      HUB_LOG_INFO(kLog, "%s: desired properties from the cloud, $version %lld", s.identity.clientId().c_str(),
                   static_cast<long long>(e.twin.desiredVersion()));
      shard_.counters().add(core::Counter::k_upstream_desired_updates);
      if (auto* modules = twins_->moduleSide(shard_.index())) {
        modules->onDesiredChanged(s.identity.clientId(), e.twin.desiredVersion(), *changed.value());
      }
    }
    return;
  }
  if (rid.empty() || rid != s.patch_rid) return;  // another identity's, or a stale one
  s.patch_rid.clear();
  if (status >= 200 && status < 300) {
    if (core::Status st = e.twin.setCloudReported(s.patch_basis); !st.isOk()) {
      HUB_LOG_WARN(kLog, "%s: %s", s.identity.clientId().c_str(), st.toString().c_str());
    }
    saveTwin(s);
    s.twin_retry_delay = kTwinRequestTimeout;
    syncReported(s);  // patched again meanwhile: the rest goes now
    if (s.patch_rid.empty()) queueHold(s);  // in step: the link may go idle unless the module is here
    return;
  }
  if (status == 429 || status >= 500) {
    // Throttled or a cloud error: the same difference (or a newer one) goes again later.
    s.patch_not_before = shard_.engine().time().monotonicTime() + kTwinThrottleDelay;
    HUB_LOG_INFO(kLog, "%s: reported patch answered %d; retrying in 5 s", s.identity.clientId().c_str(), status);
    return;
  }
  // Refused for good (400 and the like): re-sending it would be refused forever. The cloud is
  // taken to hold what it had, plus nothing of this patch; the next local change sends it again.
  HUB_LOG_WARN(kLog, "%s: the cloud refused a reported patch with %d; it is not retried",
               s.identity.clientId().c_str(), status);
  shard_.counters().add(core::Counter::k_upstream_twin_refused);
  if (core::Status st = e.twin.setCloudReported(s.patch_basis); !st.isOk()) {
    HUB_LOG_WARN(kLog, "%s: %s", s.identity.clientId().c_str(), st.toString().c_str());
  }
  saveTwin(s);
  queueHold(s);
}

void UpstreamBridge::onDesiredPatch(Sender& s, int64_t version, std::string_view body) {
  core::twin::TwinEntry& e = twinOf(s);
  auto changed = e.twin.patchDesiredFromCloud(body, version, nowMs(shard_.engine().time()));
  if (!changed.isOk()) {
    HUB_LOG_WARN(kLog, "%s: desired patch from the cloud ignored: %s", s.identity.clientId().c_str(),
                 std::string(changed.status().message()).c_str());
    return;
  }
  if (!changed.value()) return;  // older than what we have (the GET after a connect crossed it)
  saveTwin(s);
  shard_.counters().add(core::Counter::k_upstream_desired_updates);
  if (auto* modules = twins_->moduleSide(shard_.index())) {
    modules->onDesiredChanged(s.identity.clientId(), e.twin.desiredVersion(), *changed.value());
  }
}

void UpstreamBridge::onMethodRequest(Sender& s, std::string_view method, std::string_view rid, std::string_view body) {
  shard_.counters().add(core::Counter::k_upstream_method_calls);
  std::weak_ptr<UpstreamBridge*> self = self_;
  core::Identity identity = s.identity;
  std::string reply_rid(rid);
  auto done = [self, identity, reply_rid](int status, std::string payload) {
    auto bridge = self.lock();
    if (!bridge || *bridge == nullptr) return;
    Sender* target = (*bridge)->find(identity);
    if (target == nullptr) return;
    // An empty payload is not JSON; IoT Hub expects a JSON body in the answer.
    if (payload.empty()) payload = "null";
    (*bridge)->publishControl(*target,
                              std::string("$iothub/methods/res/").append(std::to_string(status)).append("/?$rid=").append(reply_rid),
                              payload, "method answer");
  };
  core::twin::ModuleSide* modules = twins_->moduleSide(shard_.index());
  if (modules == nullptr) {
    done(404, R"({"message":"the module is not connected"})");
    return;
  }
  modules->invokeMethod(identity.clientId(), std::string(method), std::string(body), kMethodTimeout, std::move(done));
}

// Once a second. Unanswered requests are sent again after twin_retry_delay, which doubles up to
// kTwinMaxRetryDelay while nothing answers (a broker that does not speak the twin topics costs
// one GET per identity every few minutes, not a stream of them); any answer resets it.
void UpstreamBridge::twinTick() {
  const core::MonotonicTime now = shard_.engine().time().monotonicTime();
  for (auto& [id, sender] : senders_) {
    Sender& s = *sender;
    bool retried = false;
    if (!s.get_rid.empty() && now - s.get_sent >= s.twin_retry_delay) {
      HUB_LOG_DEBUG(kLog, "%s: no answer to the twin GET; asking again", s.identity.clientId().c_str());
      sendTwinGet(s);
      retried = true;
    }
    if (!s.patch_rid.empty() && now - s.patch_sent >= s.twin_retry_delay) {
      HUB_LOG_DEBUG(kLog, "%s: no answer to the reported patch; sending the difference again",
                    s.identity.clientId().c_str());
      s.patch_rid.clear();
      syncReported(s);
      retried = true;
    } else if (s.patch_rid.empty() && s.patch_not_before != core::MonotonicTime{} && now >= s.patch_not_before) {
      s.patch_not_before = core::MonotonicTime{};  // the throttling wait is over
      syncReported(s);
    }
    if (retried) s.twin_retry_delay = std::min<std::chrono::seconds>(s.twin_retry_delay * 2, kTwinMaxRetryDelay);
  }
}

}  // namespace edgehub::transports::upstream
