#pragma once
// UpstreamConnection: one MQTT 3.1.1 connection to IoT Hub (or any broker speaking its dialect)
// for ONE identity, built on libmosquitto but driven entirely by our core::Loop (style rule 25):
// a core::Poll on mosquitto_socket() calls mosquitto_loop_read/mosquitto_loop_write, a
// core::Timer calls mosquitto_loop_misc. libmosquitto's own thread (mosquitto_loop_start) is
// never used, so every callback below runs on the loop thread.
//
// Life of a connection (ConnectionState):
//
//   kIdle --start()--> kConnecting --CONNACK 0--> kConnected --link lost--> kBackoff --timer--> kConnecting
//                          |  \--CONNACK 4/5--> kRefused --slow timer--> kConnecting
//                          \--network error / no CONNACK in time--> kBackoff
//   any --close()--> kIdle
//
// - Each attempt uses a FRESH `struct mosquitto` (mosquitto_new .. mosquitto_destroy), so the
//   socket of every attempt gets its own Poll and nothing of a dead connection (queued packets,
//   libmosquitto's own re-send of in-flight QoS1) leaks into the next one: this class, not
//   libmosquitto, decides what is re-sent (the caller does, in order; see onPublishDone).
// - clean session = 1. IoT Hub SDK clients send 0 because they own subscriptions (twin, methods,
//   C2D) that the hub must restore (dialect doc section 1). This client subscribes again on every
//   connect (ConnectionOptions::subscriptions, before onReady), its unacknowledged messages are
//   owned and re-sent by the caller, and the twin traffic is re-synchronised by the caller on
//   every connect, so there is no broker-side session worth keeping; with 0 the broker would
//   also hold a session per identity across the hub's restarts.
// - Inbound messages (twin responses, desired patches, method requests) arrive on the
//   subscriptions at QoS 0 and reach ConnectionCallbacks::onMessage, after libmosquitto's call
//   returned. publishControl() sends the requests and answers of those exchanges at QoS 0,
//   outside the telemetry window (IoT Hub answers twin requests on the response topic; a
//   lost one is retried by the caller, not by MQTT).
// - Credentials: client id, username and a SAS token password as in upstream_identity.h. The
//   token is signed for ConnectionOptions::token_lifetime from TimeSource::systemTime() at
//   each attempt. When `token_renew_fraction` of the lifetime has passed (80%, the C SDK's
//   rule) the connection stops taking new messages, waits up to renew_drain_timeout for the
//   in-flight PUBACKs, then disconnects and reconnects at once with a fresh token (MQTT 3.1.1
//   has no in-band re-authentication; section 2.3).
// - Publishing: QoS 1 only (all upstream telemetry is QoS 1). Up to max_in_flight messages are
//   in flight at once (a pipeline window, never stop-and-wait). Each one completes exactly once
//   through ConnectionCallbacks::onPublishDone: OK when its PUBACK arrives, kUnavailable ("not
//   acknowledged") when the connection ends first. Unacknowledged messages are reported in
//   publish order, so the caller can put them back at the head of its queue and re-send them
//   in order after the reconnect: duplicates are bounded by the window.
// - Errors: CONNACK 4 or 5 (bad credentials, not authorised) is a refusal: logged without the
//   token, counted, and retried only on the slow `refused_backoff`. Anything else (connect
//   failure, TLS failure, reset, keep-alive loss, no CONNACK within connect_timeout) is a
//   network failure, retried on `network_backoff` (bounded exponential with jitter).
//   retryNow() skips a network backoff (the pool calls it when another identity connected:
//   "the network is back"); it does not shorten a refusal's backoff.
// - Keep-alive: libmosquitto sends PINGREQ; independently of it, a connected link that
//   delivers nothing for 1.5 x keepalive (TimeSource::monotonicTime) is declared lost.
// - TLS (mqtts): the connection builds its own OpenSSL client context once, at create(), and
//   hands it to libmosquitto (MOSQ_OPT_SSL_CTX, without libmosquitto's defaults): TLS 1.2 or
//   newer (SSL_CTX_set_min_proto_version; libmosquitto's own version defaults differ between
//   releases, some allow TLS 1.1, some read "tlsv1.2" as "exactly 1.2"), the peer verified
//   against ca_file (or the OS trust store), and its certificate required to name the host we
//   dial (X509_VERIFY_PARAM_set1_host, or set1_ip_asc for an IP literal). Bytes that OpenSSL
//   has already pulled off the socket do not wake the poll, so after each read we keep reading
//   while SSL_has_pending() says OpenSSL holds data (bounded per event; the rest continues at
//   the end of the loop turn).
//
// Thread-safety: not thread-safe. Every method REQUIRES: on the loop thread of `loop`.
// Ownership: the caller owns the connection (UpstreamConnectionPtr) and must keep `loop`,
// `time` and `callbacks` alive longer. The connection owns its libmosquitto object, socket,
// Poll and timers. It copies the options and credentials.
// The Poll is destroyed before libmosquitto closes the socket on every path we control
// (teardown); when libmosquitto itself closes it (a read or keep-alive error), the Poll is
// destroyed right after that call returns, before any callback can open another socket.
// Lifetime: destroy it before its Loop is closed. Do NOT destroy it from inside one of its own
// callbacks; hand it to Loop::deferredDelete() instead (it is a DeferredDeletable). The
// destructor closes the socket without a DISCONNECT and calls no callback: in-flight cookies
// are simply forgotten (call close() first to have them reported).
// Callbacks: ConnectionCallbacks methods run on the loop thread, never from inside a
// libmosquitto frame (libmosquitto's own callbacks only record what happened; we dispatch
// after its call has returned). They may call publish(), close(), start() and retryNow() on
// this connection. No exception may escape a callback (they are reached from C trampolines).
//
// Hot path: publish() and PUBACK handling allocate nothing at steady state (the topic is
// copied into a reused buffer for libmosquitto's NUL-terminated API; the in-flight window is
// a preallocated ring). libmosquitto itself allocates one packet per publish and writes each
// packet with its own write(2); the socket is corked from the first publish of a turn to its end
// so that those writes leave in full segments (see bench/upstream for what that costs).
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/identity.h"
#include "core/loop/host_lookup.h"
#include "core/loop/loop.h"
#include "core/loop/poll.h"
#include "core/loop/timer.h"
#include "core/status.h"
#include "core/time_source.h"
#include "transports/upstream/backoff.h"
#include "transports/upstream/upstream_identity.h"
#include "transports/upstream/upstream_url.h"

struct mosquitto;
struct mosquitto_message;
struct ssl_ctx_st;

namespace edgehub::transports::upstream {

enum class ConnectionState : uint8_t {
  kIdle,        // not started, or close()d
  kConnecting,  // TCP/TLS/CONNECT in progress, waiting for CONNACK
  kConnected,   // CONNACK 0 received: publishing
  kBackoff,     // network failure; waiting on the network backoff (retryNow() skips it)
  kRefused,     // CONNACK 4/5; waiting on the slow refusal backoff
};
std::string_view connectionStateName(ConnectionState state);

struct ConnectionOptions {
  UpstreamEndpoint endpoint;
  // mqtts only: PEM file of the CAs to trust. Empty: the OS trust store.
  std::string ca_file;
  // The IoT Hub host name used in the username and the token audience (section 2.2).
  std::string hub_host_name;
  // MQTT keep-alive (libmosquitto requires >= 5 s); loss is declared after 1.5 x this.
  std::chrono::seconds keepalive{60};
  std::chrono::seconds token_lifetime{3600};
  double token_renew_fraction = 0.8;
  std::chrono::milliseconds renew_drain_timeout{5000};
  // QoS 1 pipeline window (1..65535). Upstream IoT Hub accepts far more in flight than this.
  uint32_t max_in_flight = 64;
  // Larger payloads are refused with kResourceExhausted (IoT Hub's D2C limit is 256 KiB,
  // dialect doc section 8). The caller counts and drops them.
  size_t max_message_bytes = 256 * 1024;
  // A CONNACK must arrive this long after the attempt started.
  std::chrono::milliseconds connect_timeout{10'000};
  // Period of mosquitto_loop_misc and of the keep-alive and renewal checks.
  std::chrono::milliseconds tick_interval{1000};
  BackoffPolicy network_backoff{std::chrono::milliseconds(100), std::chrono::milliseconds(30'000), 0.2};
  BackoffPolicy refused_backoff{std::chrono::milliseconds(60'000), std::chrono::milliseconds(600'000), 0.2};
  // Seed of the jitter generator; 0 derives one from the client id.
  uint64_t jitter_seed = 0;
  // Topic filters subscribed at QoS 0 right after every CONNACK, before onReady.
  std::vector<std::string> subscriptions;
  // How a host name (not an IP literal) is looked up before each attempt, off the loop thread;
  // empty: getaddrinfo. Tests pass a slow one. See connectNow() for why.
  core::HostLookup::ResolveFn resolve;
};

// Validates the options: hub_host_name non-empty, keepalive 5..65535 s, token lifetime >= 60 s,
// renew fraction in (0, 1), window 1..65535, positive timeouts. kInvalidArgument naming the field.
core::Status validateConnectionOptions(const ConnectionOptions& options);

// Per-connection counters (monotonic).
struct ConnectionStats {
  uint64_t connect_attempts = 0;
  uint64_t connects = 0;      // CONNACK 0
  uint64_t refusals = 0;      // CONNACK 4/5
  uint64_t failures = 0;      // network failures (attempts that failed + established links lost)
  uint64_t disconnects = 0;   // established links that ended other than by close()
  uint64_t renewals = 0;      // reconnects for a fresh token
  uint64_t published = 0;     // messages handed to the broker
  uint64_t acked = 0;
  uint64_t not_acked = 0;     // reported kUnavailable because the link ended first
  uint64_t oversized = 0;     // refused by publish() for their size
};

// The TLS client context of an upstream endpoint: TLS 1.2 or newer, the peer verified against
// ConnectionOptions::ca_file (or the OS trust store) and required to name the host we dial. A CA
// store costs file IO and memory (the OS store is a few hundred certificates, about a megabyte),
// so a pool builds one and shares it among all its connections, which connect to the same host.
// Thread-safety: immutable once built; OpenSSL contexts may be used by several connections.
// Ownership: shared; libmosquitto takes its own reference for each attempt.
class UpstreamTlsContext {
 public:
  // Errors: kFailedPrecondition (CA file unreadable), kInternal (OpenSSL).
  static core::Result<std::shared_ptr<const UpstreamTlsContext>> create(const ConnectionOptions& options);
  ~UpstreamTlsContext();
  UpstreamTlsContext(const UpstreamTlsContext&) = delete;
  UpstreamTlsContext& operator=(const UpstreamTlsContext&) = delete;
  struct ssl_ctx_st* get() const { return ctx_; }

 private:
  explicit UpstreamTlsContext(struct ssl_ctx_st* ctx) : ctx_(ctx) {}
  struct ssl_ctx_st* ctx_;
};
using UpstreamTlsContextPtr = std::shared_ptr<const UpstreamTlsContext>;

class UpstreamConnection;

class ConnectionCallbacks {
 public:
  // One completion per published message: OK on PUBACK; kUnavailable if the connection ended
  // before the PUBACK (then called for every such message in publish order, before the
  // onStateChange that reports the end).
  virtual void onPublishDone(UpstreamConnection& connection, uint64_t cookie, const core::Status& status) = 0;
  // The connection can take messages now: it just connected, or a batch of PUBACKs freed
  // slots in the window. Called once per batch (not per PUBACK), only when canPublish().
  virtual void onReady(UpstreamConnection& connection) = 0;
  // Every state transition. `reason` is OK for kConnected and close(), else why it happened.
  virtual void onStateChange(UpstreamConnection& connection, ConnectionState state, const core::Status& reason) = 0;
  // A message on one of the subscriptions. The views are valid during the call only.
  virtual void onMessage(UpstreamConnection&, std::string_view /*topic*/, std::span<const uint8_t> /*payload*/) {}

 protected:
  ~ConnectionCallbacks() = default;
};

class UpstreamConnection;
using UpstreamConnectionPtr = std::unique_ptr<UpstreamConnection>;

class UpstreamConnection final : public core::DeferredDeletable,
                                 private core::PollCallbacks,
                                 private core::TurnEndHook {
 public:
  // Validates `options` (see validateConnectionOptions) and the key (valid base64) and, for
  // mqtts, uses `tls` or, without one, builds its own context (kFailedPrecondition if the CA file
  // cannot be loaded). Does not connect yet (call start()). Initialises libmosquitto once per
  // process.
  static core::Result<UpstreamConnectionPtr> create(core::Loop& loop, const core::TimeSource& time,
                                                    ConnectionOptions options, UpstreamCredentials credentials,
                                                    ConnectionCallbacks& callbacks, UpstreamTlsContextPtr tls = nullptr);
  ~UpstreamConnection() override;
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // kIdle -> kConnecting (no-op in any other state). A synchronous connect failure moves on to
  // kBackoff through the callbacks before start() returns.
  void start();
  // Sends DISCONNECT if connected, closes the socket, reports every in-flight message as not
  // acknowledged, then onStateChange(kIdle). Idempotent. start() may be called again later.
  void close();
  // In kBackoff: resets the network backoff and connects now. Otherwise a no-op.
  void retryNow();

  // Publishes one QoS 1 message; `cookie` comes back in onPublishDone. Errors, in the order
  // they are checked:
  //   kResourceExhausted: payload larger than max_message_bytes (counted in stats().oversized;
  //                       permanent for this message: drop it, do not retry);
  //   kUnavailable:       not connected, renewing its token, or the window is full (keep the
  //                       message and wait for onReady);
  //   kInvalidArgument:   libmosquitto rejected the topic (not UTF-8, wildcards): drop it.
  // On OK the message is in flight and onPublishDone will follow exactly once.
  core::Status publish(std::string_view topic, std::span<const uint8_t> payload, uint64_t cookie);
  // Publishes a QoS 0 message outside the window (twin requests, method answers). Errors:
  // kUnavailable (not connected), kResourceExhausted (over max_message_bytes), kInvalidArgument
  // (topic refused by libmosquitto).
  core::Status publishControl(std::string_view topic, std::span<const uint8_t> payload);
  // True when publish() would accept a (not oversized) message now.
  bool canPublish() const { return state_ == ConnectionState::kConnected && !renewing_ && !broken_ && ring_count_ < window_; }
  // Free slots in the window (0 when !canPublish()).
  uint32_t windowRoom() const { return canPublish() ? window_ - ring_count_ : 0; }
  // Messages published and not yet completed.
  uint32_t inFlight() const { return unacked_; }

  ConnectionState state() const { return state_; }
  const core::Identity& identity() const { return credentials_.identity; }
  const std::string& clientId() const { return client_id_; }
  const ConnectionStats& stats() const { return stats_; }
  const ConnectionOptions& options() const { return options_; }
  // Last publish, PUBACK or state change (TimeSource::monotonicTime); the pool's idle clock.
  core::MonotonicTime lastActivity() const { return last_activity_; }
  // The delay chosen for the current backoff (kBackoff/kRefused), for logs and tests.
  std::chrono::milliseconds currentBackoff() const { return current_backoff_; }

  // The TLS context in use (mqtts), null for plain MQTT.
  const UpstreamTlsContext* tlsContext() const { return tls_.get(); }
  // Runs the periodic tick (loop_misc, keep-alive and renewal checks) now.
  void tickForTest() { onTick(); }

 private:
  void corkUntilTurnEnd();
  void uncork();

  struct InFlight {
    int mid = 0;
    bool acked = false;
    uint64_t cookie = 0;
  };
  enum class Failure : uint8_t { kNetwork, kRefused };

  UpstreamConnection(core::Loop& loop, const core::TimeSource& time, ConnectionOptions options,
                     UpstreamCredentials credentials, ConnectionCallbacks& callbacks);

  // core::PollCallbacks
  void onPollReady(uint32_t events, const core::Status& status) override;
  // core::TurnEndHook
  void onTurnEnd() override;

  // libmosquitto trampolines (noexcept; they only record).
  static void onMosqConnect(struct mosquitto* mosq, void* self, int rc) noexcept;
  static void onMosqPublish(struct mosquitto* mosq, void* self, int mid) noexcept;
  static void onMosqDisconnect(struct mosquitto* mosq, void* self, int rc) noexcept;
  static void onMosqMessage(struct mosquitto* mosq, void* self, const struct mosquitto_message* message) noexcept;
  void dispatchInbound();
  // mosquitto_publish of one message (corking the socket for the turn). kInvalidArgument and the
  // like for a message libmosquitto refuses; a dead link sets broken_ (torn down at turn end).
  core::Status mosqPublish(std::string_view topic, std::span<const uint8_t> payload, int qos, int* mid);

  void connectNow();
  void readAvailable();
  // Handles what libmosquitto recorded during a call that returned rc. Returns false if the
  // connection was torn down (the caller must not touch libmosquitto again).
  bool afterMosqCall(int rc, std::string_view what);
  void onConnackAccepted();
  void dispatchAcks();
  void onTick();
  void onRetryTimer();
  void beginRenewal();
  void finishRenewal();
  void fail(Failure kind, core::Status reason);
  // Closes socket and libmosquitto object; no callbacks. Bumps generation_.
  void teardown(bool send_disconnect);
  // Reports every unacknowledged in-flight message as kUnavailable, in publish order.
  void reportUnacked();
  void setState(ConnectionState state, const core::Status& reason);
  void updatePoll();
  void armTurnEnd();
  bool tlsPending() const;
  void onLookupDone(uint64_t generation, const core::Status& status);
  // mosquitto_connect_async and the poll: the attempt's second half, after any host lookup.
  void openSocket();
  // While a TLS connection is still connecting: the socket's pending error, or the peer's
  // close or reset seen by a non-consuming peek; ok while the handshake can still go on.
  core::Status tlsConnectError() const;

  core::Loop& loop_;
  const core::TimeSource& time_;
  const ConnectionOptions options_;
  const UpstreamCredentials credentials_;
  ConnectionCallbacks& callbacks_;
  const std::string client_id_;
  const std::string username_;
  const uint32_t window_;

  ConnectionState state_ = ConnectionState::kIdle;
  Backoff network_backoff_;
  Backoff refused_backoff_;
  std::chrono::milliseconds current_backoff_{0};
  ConnectionStats stats_;

  // Order matters for destruction: the Poll watches the libmosquitto socket, so it must die
  // first (teardown() does that explicitly; the destructor calls teardown()).
  UpstreamTlsContextPtr tls_;  // mqtts: shared with the pool's other connections
  struct mosquitto* mosq_ = nullptr;
  core::PollPtr poll_;
  uint32_t poll_events_ = 0;
  core::Timer tick_timer_;
  core::Timer retry_timer_;  // backoff wait, or the CONNACK deadline while kConnecting
  uint64_t generation_ = 0;  // bumped by teardown(): detects teardown from inside callbacks
  std::unique_ptr<core::HostLookup> lookup_;  // while an attempt waits for its host lookup
  bool turn_end_armed_ = false;
  bool read_more_ = false;   // OpenSSL still held data after the per-event read bound
  bool broken_ = false;      // libmosquitto reported the link dead; teardown pending

  // Recorded by the trampolines, consumed by afterMosqCall().
  int connack_rc_ = -1;
  bool mosq_disconnected_ = false;

  int corked_fd_ = -1;  // the socket corked by this turn's publishes (see corkUntilTurnEnd)
  // The window: a ring of window_ slots in publish order. A slot stays occupied until it and
  // every older one have completed, so PUBACKs out of order leave holes, never reuse.
  std::vector<InFlight> ring_;
  uint32_t ring_head_ = 0;
  uint32_t ring_count_ = 0;
  uint32_t unacked_ = 0;
  std::vector<uint64_t> acked_cookies_;   // PUBACKs of the current read, in arrival order
  size_t ack_pos_ = 0;                    // next of acked_cookies_ to dispatch
  std::vector<uint64_t> report_scratch_;  // reportUnacked()'s copy (callbacks may re-enter)
  std::string topic_buf_;                 // NUL-terminated copy of the topic for libmosquitto
  // Messages received during the current libmosquitto call (cold: twin and method traffic).
  struct Inbound {
    std::string topic;
    std::vector<uint8_t> payload;
  };
  std::vector<Inbound> inbound_;
  size_t inbound_dropped_ = 0;  // over kMaxInboundPerCall in one call (logged)

  bool renewing_ = false;
  core::SystemTime renew_at_{};
  core::MonotonicTime renew_started_{};
  core::MonotonicTime last_inbound_{};
  core::MonotonicTime last_activity_{};
};

}  // namespace edgehub::transports::upstream
