#pragma once
// edgehub::Hub — the embedding API. One Hub is one running edge hub: its IO loops, listeners
// and (with later issues) its store, routes and upstream, created from one HubOptions value.
// The standalone binary (`edgehub run`) is a thin layer over exactly this class; an edge runtime
// that embeds the hub uses the same calls. docs/embedding.md describes the contract.
//
// Lifetime: create() validates the options and prepares state on disk (data directory,
// identities) but starts no thread. start() starts the hub's own threads and binds its
// listeners before returning. stop() stops accepting, finishes what is in flight, closes every
// handle and joins every thread; it is idempotent. The destructor calls stop(), so destroying
// a Hub is always safe.
//
// Thread-safety: create(), start(), stop() and the accessors may be called from any one
// thread at a time (the owner's); they are not for concurrent use. No callback of the Hub runs
// on the caller's thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <string>
#include <vector>

#include "core/config/identities.h"
#include "core/config/manifest.h"
#include "core/status.h"
#include "core/time_source.h"

namespace edgehub {

struct HubOptions {
  // The validated deployment manifest (core::loadManifestFile / core::parseManifest).
  core::Manifest manifest;
  // Identities and keys. Without a value, the hub generates a key for every module of the
  // manifest and persists it under data_dir (see core/config/identities.h).
  std::optional<core::IdentityConfig> identities;
  // Where the hub keeps its state. Created if missing.
  std::string data_dir = ".edgehub";
  // Number of IO loops; 0 means one per core.
  unsigned io_threads = 0;
  // Plain MQTT listener "host:port" (port 0 = any free port); empty disables it. For
  // development and benchmarks: the SDKs only speak TLS.
  std::string mqtt_listen = "127.0.0.1:1883";
  // MQTT over TLS listener (what the Azure IoT SDKs connect to); empty disables it.
  std::string mqtts_listen = "0.0.0.0:8883";
  // Server certificate chain and key (PEM). Without them the hub creates a development CA and
  // a server certificate under <data_dir>/certs (tlsCaPath() tells where).
  std::string tls_cert;
  std::string tls_key;
  // Extra host names or IPs for the development server certificate's SAN (localhost, the
  // machine's host name, 127.0.0.1 and ::1 are always in it).
  std::vector<std::string> tls_names;
  // "sync" (PUBACK after fsync: survives power loss), "async" (after the write reaches
  // RocksDB's log: survives a process crash) or "memory" (nothing persists; choose it
  // explicitly). The store lives in <data_dir>/store; if it cannot open, start() fails with the
  // reason and never falls back to another mode.
  std::string durability = "sync";
  // Store limits (sync/async): stored message bytes (0 = unlimited; the manifest's
  // storeLimits.maxSizeBytes applies when this is 0), minimum free disk space, and what a full
  // store does: "reject" new messages (the publisher is disconnected and retries later) or
  // "drop-oldest" (counted).
  uint64_t max_store_bytes = 0;
  uint64_t min_free_disk_bytes = 64ull * 1024 * 1024;
  std::string store_full_policy = "reject";
  // A store damaged beyond RocksDB's own recovery is moved aside (and the hub starts empty)
  // only with this; otherwise start() fails and leaves it untouched.
  bool repair_store = false;
  // RocksDB's block cache (backlog reads, indexes); its memtables are capped at 2 × 8 MiB.
  uint64_t store_cache_bytes = 8 * 1024 * 1024;
  // Largest routed message (body plus property names and values).
  uint32_t max_message_bytes = 256 * 1024;
  // QoS 1 deliveries in flight per module session.
  uint32_t delivery_window = 64;
  // CONNECT deadline after accept, in milliseconds.
  uint32_t connect_timeout_ms = 60'000;
  // Sessions beyond this are refused with CONNACK 3.
  uint32_t max_connections = 1000;
  // Budget of each endpoint queue in memory. With `memory` durability that is where messages
  // live, and publishers are paused (not dropped) above it; with `sync`/`async` copies above it
  // stay in the store only (read back when the consumer gets to them).
  uint64_t endpoint_max_messages = 1'000'000;
  uint64_t endpoint_max_bytes = 256ull * 1024 * 1024;
  // With `sync`/`async`: memory for queue heads, shared equally by the endpoints (each at least
  // 16 KiB and 128 messages; at most the endpoint budget above). Bounds RSS whatever the
  // backlog; a larger value only saves store reads for consumers that lag behind.
  uint64_t store_memory_bytes = 8 * 1024 * 1024;
  // Upstream (issue 05): "mqtt://host:port" or "mqtts://host:port" of IoT Hub or a broker that
  // speaks its dialect. Empty: the hub runs offline and `$upstream` messages stay queued (in the
  // store with sync/async) until a hub with an upstream starts on the same data directory.
  // Each sending identity gets its own connection, signed with its own key.
  std::string upstream;
  // mqtts: PEM file of the CAs to trust; empty = the system's trust store.
  std::string upstream_ca;
  // Open upstream connections at most (shared equally by the IO loops, each at least one);
  // idle ones are closed to make room.
  uint32_t upstream_max_connections = 100;
  // MQTT keep-alive of the upstream connections; a lost link is noticed within 1.5 x this.
  uint32_t upstream_keepalive_secs = 60;
  // The hub's clock. Null: the real clock. For tests and embedders that need a controlled
  // wall clock (SAS token expiry, TTL); must outlive the hub.
  const core::TimeSource* time_source = nullptr;
};

// Floors of an endpoint's share of store_memory_bytes. Low, because every sending identity has an
// upstream endpoint of its own: with hundreds of identities queuing for an offline upstream, a
// large floor times the endpoint count would break the memory bound the share exists for.
inline constexpr uint64_t kMinEndpointMemoryBytes = 16 * 1024;
inline constexpr uint64_t kMinEndpointMemoryMessages = 128;

class Hub {
 public:
  // Validates options and prepares the data directory. Errors: kInvalidArgument (bad options),
  // kIoError (data directory or identity file not usable).
  static core::Result<std::unique_ptr<Hub>> create(HubOptions options);

  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  ~Hub();

  // Starts the IO loops and binds the listeners. Errors leave the hub stopped.
  core::Status start();
  // Stops everything and joins the hub's threads. Idempotent; safe before start().
  void stop();

  bool running() const;
  // The bound listener addresses ("127.0.0.1:40123"), valid after a successful start().
  std::vector<std::string> listeningAddresses() const;
  // The bound plain MQTT and MQTT-over-TLS addresses; empty when that listener is off.
  std::string mqttAddress() const;
  std::string mqttsAddress() const;
  // The development CA the hub's TLS certificate chains to, when the hub made its own (no
  // tls_cert given); empty otherwise. Valid after a successful start().
  std::string tlsCaPath() const;
  // The hub's event counters, summed over its loops ("messages_received", ...). Any thread
  // while running; zeros before start().
  std::vector<std::pair<std::string, uint64_t>> counters() const;
  uint64_t counter(std::string_view name) const;
  // Messages queued or in flight on an endpoint (its canonical name, e.g.
  // `BrokeredEndpoint("/modules/b/inputs/in")`); 0 for unknown endpoints.
  uint64_t queuedMessages(std::string_view endpoint) const;
  // The identities in force (loaded or generated).
  const core::IdentityConfig& identities() const;
  const HubOptions& options() const;

 private:
  class Impl;
  explicit Hub(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgehub
