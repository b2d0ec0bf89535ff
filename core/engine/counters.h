#pragma once
// HubCounters: the hub's event counters (messages, drops by reason, refusals, protocol errors).
//
// One HubCounters per IO loop (Shard), written only by that loop's thread and read by anyone:
// each counter is an atomic updated with a relaxed load+store (no locked instruction, no shared
// cache line between loops), and a reader sums the shards with relaxed loads. Totals are
// therefore eventually consistent, which is all a metrics reader needs.
//
// Thread-safety: add() REQUIRES the owning loop's thread; value()/snapshot() any thread.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edgehub::core {

// X-macro: name (as reported) and what it counts.
#define EDGEHUB_COUNTERS(X)                                                                  \
  X(messages_received, "telemetry messages accepted from clients")                           \
  X(messages_enqueued, "message copies queued on endpoints (one per destination)")           \
  X(messages_delivered, "messages sent to modules (first sends and redeliveries)")           \
  X(messages_redelivered, "messages sent again with DUP after a reconnect")                  \
  X(messages_acknowledged, "deliveries acknowledged by the receiving module")                \
  X(dropped_no_route, "messages that matched no route")                                      \
  X(spilled_to_store, "queued copies kept only in the store (endpoint over its memory budget)") \
  X(dropped_ttl_expiry, "queued messages dropped because their TTL expired")                 \
  X(dropped_store_full, "queued copies dropped because the store's drop-oldest policy did")  \
  X(connections_accepted, "TCP connections accepted")                                        \
  X(connect_refused_auth, "CONNECTs refused for credentials or identity")                    \
  X(connect_refused_other, "CONNECTs refused for protocol, capacity or timeout reasons")     \
  X(sessions_taken_over, "sessions closed because the same identity connected again")        \
  X(publish_forbidden, "publishes refused by authorization (connection closed)")             \
  X(publish_invalid, "publishes to unknown topics or with malformed property bags")          \
  X(subscribe_forbidden, "subscription filters refused (SUBACK 0x80)")                       \
  X(protocol_errors, "connections closed for malformed or illegal packets")                  \
  X(oversized_messages, "messages over the size limit (connection closed)")                  \
  X(backpressure_pauses, "times a producer's reads were paused for a full endpoint queue")   \
  X(keepalive_timeouts, "connections closed for missing keep-alive traffic")                 \
  X(tls_handshake_failures, "TLS handshakes that failed")                                    \
  X(upstream_published, "messages published upstream (first sends and re-sends)")            \
  X(upstream_acknowledged, "upstream messages acknowledged by the cloud (checkpoint advanced)") \
  X(upstream_resent, "upstream messages sent again after a link was lost before the PUBACK")  \
  X(upstream_dropped, "upstream copies dropped: over the 256 KiB limit, or no identity to send as") \
  X(upstream_connects, "upstream connections established (all identities)")                  \
  X(upstream_refusals, "upstream connections refused (bad credentials, not authorized)")     \
  X(upstream_disconnects, "established upstream connections lost")                           \
  X(upstream_twin_patches, "reported patches sent upstream (each the collapsed difference)")  \
  X(upstream_twin_refused, "reported patches the cloud refused for good (4xx, not retried)")  \
  X(upstream_desired_updates, "desired property changes received from the cloud")           \
  X(upstream_method_calls, "direct method calls received from the cloud")

enum class Counter : uint8_t {
#define EDGEHUB_COUNTER_ENUM(name, help) k_##name,
  EDGEHUB_COUNTERS(EDGEHUB_COUNTER_ENUM)
#undef EDGEHUB_COUNTER_ENUM
      kCount
};

inline constexpr size_t kCounterCount = static_cast<size_t>(Counter::kCount);

std::string_view counterName(Counter counter);
std::string_view counterHelp(Counter counter);

class alignas(64) HubCounters {
 public:
  void add(Counter c, uint64_t n = 1) {
    auto& v = values_[static_cast<size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value(Counter c) const { return values_[static_cast<size_t>(c)].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kCounterCount> values_{};
};

// A summed copy, for reporting.
struct CounterSnapshot {
  std::array<uint64_t, kCounterCount> values{};
  uint64_t operator[](Counter c) const { return values[static_cast<size_t>(c)]; }
};

}  // namespace edgehub::core
