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
// Thread-safety: none; every method REQUIRES the shard's loop thread.
// Ownership: the bridge owns its pool; `shard` and `identities` must outlive it.
// Lifetime: create and destroy it on the loop thread while the loop runs; call shutdown() first
// so in-flight messages are reported (they stay in the store, unacknowledged). The destructor
// detaches it from the engine's mailboxes.
// Hot path: fill and completions allocate nothing per message (reused topic strings; the
// in-flight and retry lists are deques bounded by the window).
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config/identities.h"
#include "core/engine/engine.h"
#include "core/loop/timer.h"
#include "transports/upstream/upstream_pool.h"

namespace edgehub::transports::upstream {

class UpstreamBridge final : public UpstreamSource, private core::TurnEndHook {
 public:
  // Creates the pool (PoolOptions are validated by UpstreamPool::create) and attaches to the
  // upstream mailboxes homed on `shard`. Identities that already have queued copies (a backlog
  // from before a restart) are woken at once.
  static core::Result<std::unique_ptr<UpstreamBridge>> create(core::Shard& shard,
                                                              const core::IdentityConfig& identities,
                                                              PoolOptions options);
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
    void onDeliveryAvailable() override;
  };

  UpstreamBridge(core::Shard& shard, const core::IdentityConfig& identities);
  void signal(Sender& sender);
  void onTurnEnd() override;
  void tick();
  void syncCounters();
  Sender* find(const core::Identity& identity);
  // Publishes one item; false when the pool has no room (the item is then put back).
  enum class Sent { kOk, kNoRoom, kDropped };
  Sent send(Sender& sender, Item item, UpstreamWriter& writer);

  core::Shard& shard_;
  std::map<core::Identity, std::unique_ptr<Sender>> senders_;
  std::vector<Sender*> to_signal_;
  bool turn_end_armed_ = false;
  unsigned ticks_ = 0;
  std::string topic_;
  PoolCounters synced_;  // pool counters already added to the shard's counters
  UpstreamPoolPtr pool_;
  core::Timer tick_timer_;
};

}  // namespace edgehub::transports::upstream
