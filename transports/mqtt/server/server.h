#pragma once
// MqttServer: the hub's MQTT 3.1.1 server for modules and leaf devices, speaking the IoT Hub
// dialect (iothub-mqtt-dialect.md) on top of the engine (core/engine/engine.h).
//
// Life of a connection:
//  1. Accepted on shard 0's loop (plain and TLS listeners). The CONNECT must arrive within
//     connect_timeout; nothing else may come first.
//  2. The CONNECT is authenticated there (client id, username, SAS token against the identity
//     file's keys) and refused with the dialect's CONNACK codes, a log line (never the token)
//     and a counter.
//  3. An accepted connection moves to its identity's home loop (Engine::homeShardOf): the
//     socket is handed over (dup'd fd plus the TLS state), so the session, its endpoint queues
//     and its delivery window share one thread. A second CONNECT of the same identity lands on
//     the same loop and takes the session over.
//  4. The session routes telemetry through the engine (PUBACK once stored), delivers its
//     module's inputs with a window of QoS 1 messages in flight, and keeps its subscriptions
//     (clean session 0) for the next connection; unacknowledged deliveries go back to the
//     queue and are sent again with DUP.
//
// Thread-safety: construct and destroy on any one thread while no loop runs server code; the
// per-loop calls (attachLoop, startListening, shutdownLoop) REQUIRE the named loop's thread.
// Ownership: borrows the engine, identities and time source, which must outlive it. Destroy it
// only after shutdownLoop() ran on every loop.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config/identities.h"
#include "core/engine/engine.h"
#include "core/status.h"
#include "core/time_source.h"
#include "transports/mqtt/server/link.h"

namespace edgehub::core::twin {
class TwinService;
}

namespace edgehub::transports::mqtt {

struct MqttServerOptions {
  // "host:port" (numeric host; port 0 picks a free one); empty disables the listener.
  std::string plain_listen;
  std::string tls_listen;
  // Makes the TLS state of one accepted connection; required when tls_listen is set.
  std::function<std::unique_ptr<SecureChannel>()> make_tls_channel;
  // The IoT Hub host name of the SAS audience (identities' hub_host_name).
  std::string hub_host_name;
  // Largest routed message, counted as body plus every property name and value (dialect §8).
  uint32_t max_message_bytes = 256 * 1024;
  // QoS 1 deliveries in flight per session.
  uint32_t delivery_window = 64;
  std::chrono::milliseconds connect_timeout{60'000};
  // Keep-alive timeout cap; a client's keep-alive k gives min(1.5 k, cap), k = 0 the cap.
  std::chrono::seconds max_keepalive{600};
  // Sessions beyond this get CONNACK 3 (server unavailable).
  uint32_t max_connections = 1000;
  // Output a session may have queued towards a slow client before the hub stops reading from
  // it and stops delivering to it.
  size_t max_pending_output = 4 * 1024 * 1024;
  // Module twins (issue 06); null: twin requests are answered 501. Must outlive the server.
  core::twin::TwinService* twins = nullptr;
};

class MqttServer {
 public:
  MqttServer(MqttServerOptions options, core::Engine& engine,
             std::shared_ptr<const core::IdentityConfig> identities, const core::TimeSource& time);
  ~MqttServer();
  MqttServer(const MqttServer&) = delete;
  MqttServer& operator=(const MqttServer&) = delete;

  // On shard `shard`'s loop, before any connection: sets up that loop's state.
  void attachLoop(uint32_t shard);
  // On shard 0's loop, after attachLoop on every loop: binds the listeners.
  core::Status startListening();
  // The bound addresses ("127.0.0.1:40123"), valid after startListening(). Any thread after
  // startListening() returned.
  const std::string& plainAddress() const { return plain_address_; }
  const std::string& tlsAddress() const { return tls_address_; }
  // On shard `shard`'s loop: stops its listeners (shard 0), closes its connections and
  // sessions; queued messages stay in the engine. Connections handed to it later are closed.
  void shutdownLoop(uint32_t shard);

  // Live sessions (authenticated connections), all loops. Any thread.
  uint32_t sessionCount() const { return sessions_.load(std::memory_order_relaxed); }

  struct LoopState;
  class Pending;
  class Session;

 private:
  friend class Pending;
  friend class Session;
  // Runs `fn` on loop `loop_index` (any thread; retried while its post queue is full).
  void postTo(uint32_t loop_index, std::function<void()> fn);

  const MqttServerOptions options_;
  core::Engine& engine_;
  std::shared_ptr<const core::IdentityConfig> identities_;
  const core::TimeSource& time_;
  std::vector<std::unique_ptr<LoopState>> loops_;
  std::string plain_address_;
  std::string tls_address_;
  std::atomic<uint32_t> sessions_{0};
};

}  // namespace edgehub::transports::mqtt
