#pragma once
// UpstreamPool: the upstream connections of many identities on one loop (IoT Hub allows one
// MQTT connection per identity and none can be multiplexed; dialect doc section 10.1).
//
// How the engine feeds it (pull with a readiness signal, so nothing is queued twice and the
// pool holds no messages of its own):
//   1. the engine calls notifyPending(identity) when that identity has messages for upstream
//      (cheap and idempotent: call it on every enqueue, or only on empty -> non-empty);
//   2. the pool opens a connection for the identity if it has none (credentials come from
//      UpstreamSource::credentials), and when the connection has room in its window it calls
//      UpstreamSource::fill(identity, writer, max): the engine publishes up to `max` of that
//      identity's messages, oldest first, through writer.publish(), and says whether more remain;
//   3. every published message completes once through UpstreamSource::onPublishDone: OK
//      (PUBACK: advance the checkpoint) or kUnavailable (not acknowledged because the link
//      dropped: put it back at the head of the identity's queue; the pool re-fills after the
//      reconnect, so order is kept and duplicates are bounded by the window).
//
// Policy:
// - Fairness: identities with messages and window room sit in a round-robin ring; each turn
//   gives each one up to `fill_quantum` messages in rotation, at most `max_fill_per_turn` in
//   all, then yields to the loop (style rule 26) and continues at the end of the next turn.
// - Cap: at most `max_connections` open. A new identity at the cap evicts the longest-idle
//   connection that has nothing in flight and nothing pending (failing that, one in backoff or
//   refused with nothing in flight); if none qualifies the identity waits for one.
// - Idle close: a connection with nothing in flight and nothing pending for `idle_timeout`
//   (TimeSource::monotonicTime) is closed on the housekeeping tick (edgeHub's
//   CloudConnectionIdleTimeoutSecs, 3600 s by default).
// - "The network is back": when any connection reaches kConnected, every other connection in
//   network backoff is retried at once (UpstreamConnection::retryNow), at the end of the turn.
//   Refused connections keep their slow backoff.
// - Probe: while no connection is connected or connecting and some are in network backoff, one
//   of them (in turn) retries every `probe_interval`, so resuming after a long outage takes at
//   most that long plus one connect, however far the backoffs have grown (issue 05: drain
//   within 1 s of the upstream being back), at the cost of one attempt per interval.
//
// Thread-safety: not thread-safe; every method REQUIRES: on the loop thread. The engine's other
// threads must post() to this loop.
// Ownership: the caller owns the pool; `loop`, `time` and `source` must outlive it. The pool
// owns its connections (destroyed via Loop::deferredDelete when closed, so closing from inside
// a callback is safe).
// Lifetime: destroy it on the loop thread, before the loop is closed, and not from inside an
// UpstreamSource callback. The destructor drops every connection without callbacks; call
// shutdown() first to have in-flight messages reported.
// Callbacks: every UpstreamSource method runs on the loop thread, from the pool's turn-end
// hook or a connection event, never from inside libmosquitto. They may call notifyPending()
// (also for other identities) and the writer; they must not destroy the pool. fill() must not
// call notifyPending() for the identity it is filling (it says so by its return value).
// Hot path: fill and completion dispatch allocate nothing per message (the ring is a deque of
// pointers whose blocks are reused; counters are plain fields).
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/identity.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "core/status.h"
#include "core/time_source.h"
#include "transports/upstream/upstream_connection.h"

namespace edgehub::transports::upstream {

// What the engine gives fill(): publishes messages of one identity.
class UpstreamWriter {
 public:
  // Same contract as UpstreamConnection::publish: OK (in flight, onPublishDone follows),
  // kResourceExhausted (oversized: drop it and count it; counted in PoolCounters::oversized),
  // kInvalidArgument (bad topic: drop it), kUnavailable (no room or link gone: keep it, return
  // from fill() with `true`).
  virtual core::Status publish(std::string_view topic, std::span<const uint8_t> payload, uint64_t cookie) = 0;
  // Slots left in this fill (never more than fill()'s `max`).
  virtual uint32_t room() const = 0;

 protected:
  ~UpstreamWriter() = default;
};

class UpstreamSource {
 public:
  // The identity's credentials, asked each time the pool opens a connection for it. An error
  // is logged and counted (PoolCounters::credential_errors); the identity stays unconnected
  // until its next notifyPending().
  virtual core::Result<UpstreamCredentials> credentials(const core::Identity& identity) = 0;
  // Publish up to `max` (>= 1) of the identity's messages, oldest first. Return true if more
  // remain (the pool asks again when there is room), false if it has none left (the pool
  // forgets the identity until notifyPending()). Returning true having published nothing
  // (every publish kUnavailable) parks the identity until the connection's next onReady.
  virtual bool fill(const core::Identity& identity, UpstreamWriter& writer, uint32_t max) = 0;
  // One completion per published message (see UpstreamConnection's onPublishDone).
  virtual void onPublishDone(const core::Identity& identity, uint64_t cookie, const core::Status& status) = 0;
  // The identity's connection is up (after every (re)connect; its subscriptions are requested).
  // The source may publishControl() from here.
  virtual void onConnected(const core::Identity& /*identity*/) {}
  // A message on one of the identity's subscriptions (ConnectionOptions::subscriptions); the
  // views are valid during the call only.
  virtual void onMessage(const core::Identity& /*identity*/, std::string_view /*topic*/,
                         std::span<const uint8_t> /*payload*/) {}

 protected:
  ~UpstreamSource() = default;
};

struct PoolOptions {
  // Template for every connection (credentials aside).
  ConnectionOptions connection;
  uint32_t max_connections = 100;
  std::chrono::milliseconds idle_timeout{3'600'000};
  std::chrono::milliseconds housekeeping_interval{1000};
  // 0 disables the probe (see above).
  std::chrono::milliseconds probe_interval{500};
  uint32_t fill_quantum = 16;
  uint32_t max_fill_per_turn = 1024;
};

struct PoolCounters {
  uint64_t connects = 0;          // CONNACK 0, all identities
  uint64_t refusals = 0;          // CONNACK 4/5
  uint64_t disconnects = 0;       // established links lost
  uint64_t connect_failures = 0;  // attempts or links that failed for network reasons
  uint64_t published = 0;
  uint64_t acked = 0;
  uint64_t not_acked = 0;
  uint64_t oversized = 0;
  uint64_t rejected = 0;          // refused by libmosquitto (bad topic)
  uint64_t idle_closes = 0;
  uint64_t evictions = 0;         // closed to make room under max_connections
  uint64_t credential_errors = 0;  // credentials() failed, or the connection could not be set up (TLS context)
  uint64_t retry_all = 0;         // times a success made every backed-off connection retry
  uint64_t probes = 0;            // probe retries while every connection was backed off
  uint64_t control_published = 0;  // QoS 0 twin and method messages (publishControl)
};

class UpstreamPool;
using UpstreamPoolPtr = std::unique_ptr<UpstreamPool>;

class UpstreamPool final : private core::TurnEndHook {
 public:
  // Validates options.connection (validateConnectionOptions), max_connections >= 1,
  // fill_quantum >= 1, max_fill_per_turn >= 1. kInvalidArgument.
  static core::Result<UpstreamPoolPtr> create(core::Loop& loop, const core::TimeSource& time, PoolOptions options,
                                              UpstreamSource& source);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // The identity has messages for upstream. Opens its connection if needed (possibly evicting
  // an idle one at the cap), and schedules a fill if it can take messages now.
  void notifyPending(const core::Identity& identity);
  // Keeps the identity's connection open (held) or lets it go idle again (released): a held
  // identity is connected even with nothing to send and never closed as idle (for
  // cloud-to-module traffic while its module is connected, and for twin updates waiting to go
  // up). Under the cap it takes only free slots, and an idle held connection is evicted after
  // every idle unheld one but before telemetry waits. Idempotent.
  void hold(const core::Identity& identity, bool held);
  // QoS 0 on the identity's connection, outside the window (UpstreamConnection::publishControl);
  // kUnavailable when it is not connected.
  core::Status publishControl(const core::Identity& identity, std::string_view topic, std::span<const uint8_t> payload);
  // Closes the identity's connection now (e.g. its module disconnected and the operator asked
  // for CloseCloudConnectionOnDeviceDisconnect). In-flight messages are reported not acked.
  void close(const core::Identity& identity);
  // Closes every connection (reports in-flight messages) and stops the housekeeping timer.
  // The pool may be destroyed afterwards; notifyPending() reopens connections.
  void shutdown();

  const PoolCounters& counters() const { return counters_; }
  size_t openConnections() const { return open_; }
  // nullptr if the identity has no open connection.
  const UpstreamConnection* connection(const core::Identity& identity) const;
  // Identities waiting for a free slot under max_connections.
  size_t waitingForSlot() const { return waiting_.size(); }
  // The TLS context every connection of the pool shares (mqtts; null before the first open).
  const UpstreamTlsContext* tlsContext() const { return tls_.get(); }

  // Runs the housekeeping (idle close, waiting identities) now.
  void housekeepingForTest() { housekeeping(); }

 private:
  struct Entry;
  class Writer;

  UpstreamPool(core::Loop& loop, const core::TimeSource& time, PoolOptions options, UpstreamSource& source);

  // core::TurnEndHook
  void onTurnEnd() override;

  Entry& entryFor(const core::Identity& identity);
  bool open(Entry& entry);  // false: no slot (entry waits) or no credentials
  bool evictOne();
  void closeEntry(Entry& entry);
  void enqueueReady(Entry& entry);
  void scheduleTurnEnd();
  void fillRound();
  void housekeeping();
  void openWaiting();
  void probe();

  // Called by Entry (the ConnectionCallbacks of one connection).
  void entryPublishDone(Entry& entry, uint64_t cookie, const core::Status& status);
  void entryReady(Entry& entry);
  void entryStateChange(Entry& entry, ConnectionState state, const core::Status& reason);

  core::Loop& loop_;
  const core::TimeSource& time_;
  const PoolOptions options_;
  UpstreamSource& source_;
  PoolCounters counters_;

  std::map<core::Identity, std::unique_ptr<Entry>> entries_;
  std::deque<Entry*> ready_;    // round-robin ring of identities to fill
  std::deque<Entry*> waiting_;  // identities waiting for a slot under the cap
  size_t open_ = 0;
  bool turn_end_armed_ = false;
  bool retry_all_ = false;
  std::unique_ptr<Writer> writer_;
  std::optional<core::Identity> probed_last_;
  UpstreamTlsContextPtr tls_;  // mqtts: built at the first open, shared by every connection
  core::Timer housekeeping_timer_;
  core::Timer probe_timer_;
};

}  // namespace edgehub::transports::upstream
