#pragma once
// UpstreamBridge: feeds one IO loop's UpstreamPool from the engine's upstream endpoints homed on
// that loop (issue 05). It is the only part of transports/upstream/ that knows the engine.
//
// Each identity of the identity config has its own upstream endpoint (`$upstream/{client id}`,
// hub/route_table_router.h), homed on the identity's shard, so a module's telemetry, its upstream
// queue and its upstream connection share one thread. Per identity the bridge is the endpoint's
// DeliveryConsumer and the pool's UpstreamSource:
//   - a copy queued on the endpoint wakes the identity (at turn end, once until drained: never
//     a pool call per message, never a connection opened inside another connection's callback);
//   - fill() hands the pool the identity's copies, oldest first (the engine's order: strict
//     priority, FIFO within a class), as telemetry publishes on its own topic
//     `devices/{d}[/modules/{m}]/messages/events/{bag}` with the message's properties;
//   - a PUBACK acknowledges the copy in the engine (the store's checkpoint advances);
//   - a copy not acknowledged because the link dropped goes to the identity's retry list, kept
//     in the original order, which the next fill() sends before anything newer. The list holds
//     at most one window (what was in flight), so duplicates at the cloud are bounded by it;
//   - copies the pool refuses for their size are dropped, counted and logged with the endpoint.
// Messages of an identity without a connection (offline, refused) stay in its queue and in
// the store; they expire by TTL like any other.
//
// Twins and methods (issue 06, with a TwinService): the bridge is the twin's CloudSide. Every
// connection subscribes to the twin responses, desired patches and method requests, and
//   - on every connect asks the cloud for the twin (GET): a desired section the cloud changed
//     while we were away replaces ours and its difference goes to the module at once;
//   - keeps the cloud's reported properties in step: one PATCH at a time carrying the
//     difference between what the cloud acknowledged and the twin now (Twin::
//     reportedPatchForCloud), so patches made offline, or while one is in flight, go up
//     collapsed into one; a 2xx moves the baseline (stored with the twin), 429/5xx or no
//     answer in kTwinRequestTimeout sends the difference again later, another 4xx is counted
//     and not retried (it would be refused forever);
//   - applies desired patches the cloud pushes and hands them to the module;
//   - passes the cloud's method calls to the module (ModuleSide::invokeMethod) and its answer
//     back on `$iothub/methods/res/{status}/?$rid=`;
//   - holds the identity's connection open while its module is connected (so the cloud can
//     reach it) or while reported properties wait to go up.
// Request ids are unique per hub process ("{loop}.{n}"), since a broker standing in for IoT Hub
// may deliver one identity's answers to every connection subscribed to the same topic.
//
// Thread-safety: none; every method REQUIRES the shard's loop thread.
// Ownership: the bridge owns its pool; `shard` and `identities` must outlive it.
// Lifetime: create and destroy it on the loop thread while the loop runs; call shutdown() first
// so in-flight messages are reported (they stay in the store, unacknowledged). The destructor
// detaches it from the engine's mailboxes.
// Hot path: fill and completions allocate nothing per message (reused topic strings; the
// in-flight and retry lists are deques bounded by the window).
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/identities.h"
#include "core/engine/engine.h"
#include "core/loop/timer.h"
#include "core/twin/twin_service.h"
#include "transports/upstream/upstream_pool.h"

namespace edgehub::transports::upstream {

class UpstreamBridge final : public UpstreamSource,
                             public core::twin::CloudSide,
                             private core::TurnEndHook {
 public:
  // Creates the pool (PoolOptions are validated by UpstreamPool::create) and attaches to the
  // upstream mailboxes homed on `shard`. Identities that already have queued copies (a backlog
  // from before a restart) are woken at once. With `twins` (which must outlive the bridge) the
  // bridge syncs twins and relays methods as above and attaches as the shard's CloudSide.
  static core::Result<std::unique_ptr<UpstreamBridge>> create(core::Shard& shard,
                                                              const core::IdentityConfig& identities,
                                                              PoolOptions options,
                                                              core::twin::TwinService* twins = nullptr);
  ~UpstreamBridge();
  UpstreamBridge(const UpstreamBridge&) = delete;
  UpstreamBridge& operator=(const UpstreamBridge&) = delete;

  // Closes every upstream connection; in-flight messages go back to the retry lists.
  void shutdown();

  const UpstreamPool& pool() const { return *pool_; }
  // Identities whose upstream endpoint is homed here.
  size_t identities() const { return senders_.size(); }

  // UpstreamSource
  core::Result<UpstreamCredentials> credentials(const core::Identity& identity) override;
  bool fill(const core::Identity& identity, UpstreamWriter& writer, uint32_t max) override;
  void onPublishDone(const core::Identity& identity, uint64_t cookie, const core::Status& status) override;
  void onConnected(const core::Identity& identity) override;
  void onMessage(const core::Identity& identity, std::string_view topic, std::span<const uint8_t> payload) override;

  // core::twin::CloudSide
  void onReportedStored(const std::string& client_id) override;
  void onModulePresence(const std::string& client_id, bool connected) override;

  // A twin request gets no answer in this long: it is sent again (the link may be half dead),
  // after twice as long if that one is not answered either, up to kTwinMaxRetryDelay.
  static constexpr std::chrono::seconds kTwinRequestTimeout{10};
  static constexpr std::chrono::seconds kTwinMaxRetryDelay{300};
  // A reported patch answered 429 (throttled) or 5xx is sent again after this long.
  static constexpr std::chrono::seconds kTwinThrottleDelay{5};
  // A cloud method call the module does not answer in this long gets 504 (IoT Hub's own
  // responseTimeoutInSeconds has the same upper bound, 300 s; the caller usually gives up first).
  static constexpr std::chrono::seconds kMethodTimeout{300};

 private:
  struct Item {
    core::Delivery delivery;
    uint64_t order = 0;   // position in the engine's order, kept across re-sends
    uint64_t cookie = 0;  // of the current send
  };
  struct Sender final : core::DeliveryConsumer {
    Sender(UpstreamBridge* b, core::Identity id) : bridge(b), identity(std::move(id)) {}
    UpstreamBridge* bridge;
    core::Identity identity;
    std::string key;  // base64 primary key: a secret
    core::ModuleMailbox* box = nullptr;
    std::deque<Item> in_flight;  // publish order
    std::deque<Item> retry;      // sorted by order
    uint64_t next_order = 0;
    uint64_t next_cookie = 1;
    bool signalled = false;  // the pool was told (or will be at turn end) that copies wait
    // Twin sync (with a TwinService).
    bool present = false;       // a module session of this identity is open on this loop
    bool held = false;          // what the pool was last told (UpstreamPool::hold)
    bool hold_queued = false;   // in to_hold_
    std::string get_rid;        // twin GET in flight ("" none)
    std::string patch_rid;      // reported PATCH in flight ("" none)
    std::string patch_basis;    // the reported section that PATCH brings the cloud to
    core::MonotonicTime get_sent{};
    core::MonotonicTime patch_sent{};
    core::MonotonicTime patch_not_before{};  // after a refusal (429, 5xx): wait before resending
    std::chrono::seconds twin_retry_delay = kTwinRequestTimeout;
    void onDeliveryAvailable() override;
  };

  UpstreamBridge(core::Shard& shard, const core::IdentityConfig& identities, core::twin::TwinService* twins);
  void signal(Sender& sender);
  void armTurnEnd();
  // Twin sync.
  Sender* findByClientId(std::string_view client_id);
  core::twin::TwinEntry& twinOf(const Sender& sender);
  std::string nextRid();
  bool wantsConnection(Sender& sender);
  void queueHold(Sender& sender);
  void sendTwinGet(Sender& sender);
  void syncReported(Sender& sender);
  void saveTwin(const Sender& sender);
  void onTwinResponse(Sender& sender, int status, std::string_view rid, std::string_view body);
  void onDesiredPatch(Sender& sender, int64_t version, std::string_view body);
  void onMethodRequest(Sender& sender, std::string_view method, std::string_view rid, std::string_view body);
  void publishControl(Sender& sender, const std::string& topic, std::string_view payload, const char* what);
  void twinTick();
  void onTurnEnd() override;
  void tick();
  void syncCounters();
  Sender* find(const core::Identity& identity);
  // Publishes one item; false when the pool has no room (the item is then put back).
  enum class Sent { kOk, kNoRoom, kDropped };
  Sent send(Sender& sender, Item item, UpstreamWriter& writer);

  core::Shard& shard_;
  core::twin::TwinService* const twins_;
  std::map<core::Identity, std::unique_ptr<Sender>> senders_;
  std::map<std::string, Sender*, std::less<>> by_client_id_;
  std::vector<Sender*> to_signal_;
  std::vector<Sender*> to_hold_;
  uint64_t next_rid_ = 1;
  // Method answers arrive later from the module side; they find the bridge through this.
  std::shared_ptr<UpstreamBridge*> self_ = std::make_shared<UpstreamBridge*>(this);
  bool turn_end_armed_ = false;
  unsigned ticks_ = 0;
  std::string topic_;
  PoolCounters synced_;  // pool counters already added to the shard's counters
  UpstreamPoolPtr pool_;
  core::Timer tick_timer_;
};

}  // namespace edgehub::transports::upstream
