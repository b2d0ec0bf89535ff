#include "transports/upstream/upstream_connection.h"

#include <mosquitto.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>

#include "core/log/logger.h"
#include "transports/auth/openssl_status.h"
#include "transports/upstream/mosquitto_status.h"

namespace edgehub::transports::upstream {
namespace {

constexpr std::string_view kLog = "upstream";
// Reads per poll event while OpenSSL still holds decrypted or undecrypted bytes; the rest is
// picked up at the end of the loop turn (style rule 26: bound work per callback).
constexpr int kMaxReadRoundsPerEvent = 16;
// Inbound messages kept from one libmosquitto call; more are dropped and logged. IoT Hub sends
// twin responses, desired patches and method requests one at a time per identity, so a flood
// is a misbehaving peer, and the memory it can take is bounded by this times the packet limit.
constexpr size_t kMaxInboundPerCall = 256;

std::once_flag g_mosq_init;

void initMosquittoOnce() {
  std::call_once(g_mosq_init, [] {
    // Never cleaned up: other connections may live until process exit.
    mosquitto_lib_init();
  });
}

int64_t unixSeconds(core::SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// See UpstreamTlsContext. Built once per pool (or per connection made without one), never per
// attempt: no file IO on reconnects.
core::Result<SSL_CTX*> makeTlsContext(const ConnectionOptions& o) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return auth::fromOpenssl("SSL_CTX_new");
  auto failWith = [&](core::Status s) -> core::Result<SSL_CTX*> {
    SSL_CTX_free(ctx);
    return s;
  };
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return failWith(auth::fromOpenssl("SSL_CTX_set_min_proto_version"));
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
  if (o.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) return failWith(auth::fromOpenssl("OS trust store"));
  } else if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
    core::Status s = auth::fromOpenssl("CA file " + o.ca_file);
    return failWith(core::Status(core::StatusCode::kFailedPrecondition, std::string(s.message())));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
  unsigned char ip[16];
  const bool is_ip = ::inet_pton(AF_INET, o.endpoint.host.c_str(), ip) == 1 ||
                     ::inet_pton(AF_INET6, o.endpoint.host.c_str(), ip) == 1;
  const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, o.endpoint.host.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, o.endpoint.host.c_str(), 0);
  if (ok != 1) return failWith(auth::fromOpenssl("X509_VERIFY_PARAM host"));
  if (!is_ip) X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return ctx;
}

}  // namespace

core::Result<UpstreamTlsContextPtr> UpstreamTlsContext::create(const ConnectionOptions& options) {
  auto made = makeTlsContext(options);
  if (!made.isOk()) return made.status().withContext("upstream " + options.endpoint.toString());
  return UpstreamTlsContextPtr(new UpstreamTlsContext(made.value()));
}

UpstreamTlsContext::~UpstreamTlsContext() { SSL_CTX_free(ctx_); }

std::string_view connectionStateName(ConnectionState state) {
  switch (state) {
    case ConnectionState::kIdle: return "idle";
    case ConnectionState::kConnecting: return "connecting";
    case ConnectionState::kConnected: return "connected";
    case ConnectionState::kBackoff: return "backoff";
    case ConnectionState::kRefused: return "refused";
  }
  return "unknown";
}

core::Status validateConnectionOptions(const ConnectionOptions& o) {
  if (o.hub_host_name.empty()) return core::invalidArgument("upstream: hub_host_name is empty");
  if (o.endpoint.host.empty()) return core::invalidArgument("upstream: endpoint host is empty");
  if (o.keepalive.count() < 5 || o.keepalive.count() > 65535) {
    return core::invalidArgument("upstream: keepalive must be 5..65535 s");
  }
  if (o.token_lifetime.count() < 60) return core::invalidArgument("upstream: token_lifetime must be >= 60 s");
  if (!(o.token_renew_fraction > 0.0 && o.token_renew_fraction < 1.0)) {
    return core::invalidArgument("upstream: token_renew_fraction must be in (0, 1)");
  }
  if (o.max_in_flight < 1 || o.max_in_flight > 65535) {
    return core::invalidArgument("upstream: max_in_flight must be 1..65535");
  }
  if (o.max_message_bytes == 0) return core::invalidArgument("upstream: max_message_bytes must be > 0");
  if (o.connect_timeout.count() <= 0 || o.tick_interval.count() <= 0 || o.renew_drain_timeout.count() < 0) {
    return core::invalidArgument("upstream: timeouts must be positive");
  }
  if (o.network_backoff.initial.count() <= 0 || o.refused_backoff.initial.count() <= 0) {
    return core::invalidArgument("upstream: backoff initial delays must be positive");
  }
  return core::Status::ok();
}

core::Result<UpstreamConnectionPtr> UpstreamConnection::create(core::Loop& loop, const core::TimeSource& time,
                                                               ConnectionOptions options,
                                                               UpstreamCredentials credentials,
                                                               ConnectionCallbacks& callbacks,
                                                               UpstreamTlsContextPtr tls) {
  HUB_ASSERT(loop.isThreadSafe(), "UpstreamConnection created off the loop thread");
  HUB_RETURN_IF_ERROR(validateConnectionOptions(options));
  if (makeUpstreamPassword(options.hub_host_name, credentials, 0).empty()) {
    return core::invalidArgument("upstream " + credentials.identity.clientId() +
                                 ": symmetric key is not valid base64");
  }
  initMosquittoOnce();
  if (!options.endpoint.tls()) {
    tls = nullptr;
  } else if (tls == nullptr) {
    HUB_ASSIGN_OR_RETURN(tls, UpstreamTlsContext::create(options));
  }
  UpstreamConnectionPtr conn(new UpstreamConnection(loop, time, std::move(options), std::move(credentials), callbacks));
  conn->tls_ = std::move(tls);
  return conn;
}

UpstreamConnection::UpstreamConnection(core::Loop& loop, const core::TimeSource& time,
                                       ConnectionOptions options, UpstreamCredentials credentials,
                                       ConnectionCallbacks& callbacks)
    : loop_(loop),
      time_(time),
      options_(std::move(options)),
      credentials_(std::move(credentials)),
      callbacks_(callbacks),
      client_id_(upstreamClientId(credentials_.identity)),
      username_(upstreamUsername(options_.hub_host_name, credentials_.identity)),
      window_(options_.max_in_flight),
      network_backoff_(options_.network_backoff,
                       options_.jitter_seed ? options_.jitter_seed : std::hash<std::string>{}(client_id_)),
      refused_backoff_(options_.refused_backoff,
                       (options_.jitter_seed ? options_.jitter_seed : std::hash<std::string>{}(client_id_)) ^
                           0x9E3779B97F4A7C15ULL),
      tick_timer_(loop, [this] { onTick(); }),
      retry_timer_(loop, [this] { onRetryTimer(); }),
      ring_(window_) {
  acked_cookies_.reserve(window_);
  report_scratch_.reserve(window_);
  last_activity_ = time_.monotonicTime();
}

UpstreamConnection::~UpstreamConnection() {
  HUB_ASSERT(loop_.isThreadSafe(), "UpstreamConnection destroyed off the loop thread");
  if (turn_end_armed_) loop_.cancelTurnEnd(this);
  teardown(/*send_disconnect=*/false);
}

// ---- lifecycle ----

void UpstreamConnection::start() {
  if (state_ != ConnectionState::kIdle) return;
  connectNow();
}

void UpstreamConnection::close() {
  if (state_ == ConnectionState::kIdle) return;
  retry_timer_.disable();
  renewing_ = false;
  const bool was_connected = state_ == ConnectionState::kConnected;
  teardown(/*send_disconnect=*/was_connected);
  state_ = ConnectionState::kIdle;  // Before the reports: publish() from a callback is refused.
  const uint64_t gen = generation_;
  reportUnacked();
  if (gen != generation_ || state_ != ConnectionState::kIdle) return;  // A callback restarted us.
  setState(ConnectionState::kIdle, core::Status::ok());
}

void UpstreamConnection::retryNow() {
  if (state_ != ConnectionState::kBackoff) return;
  retry_timer_.disable();
  network_backoff_.reset();
  connectNow();
}

void UpstreamConnection::onRetryTimer() {
  if (state_ == ConnectionState::kConnecting) {
    const std::string deadline = std::to_string(options_.connect_timeout.count()) + " ms";
    fail(Failure::kNetwork, core::unavailable(lookup_ != nullptr ? "no address for " + options_.endpoint.host +
                                                                       " within " + deadline
                                                                 : "no CONNACK within " + deadline));
    return;
  }
  if (state_ == ConnectionState::kBackoff || state_ == ConnectionState::kRefused) connectNow();
}

void UpstreamConnection::connectNow() {
  teardown(false);  // Nothing should be left; be certain.
  ++stats_.connect_attempts;
  state_ = ConnectionState::kConnecting;
  broken_ = false;
  renewing_ = false;
  connack_rc_ = -1;
  mosq_disconnected_ = false;
  setState(ConnectionState::kConnecting, core::Status::ok());
  if (state_ != ConnectionState::kConnecting) return;  // A callback closed us.

  mosq_ = mosquitto_new(client_id_.c_str(), /*clean_session=*/true, this);
  if (mosq_ == nullptr) {
    fail(Failure::kNetwork, core::resourceExhausted("mosquitto_new failed"));
    return;
  }
  int rc = mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_int_option(mosq_, MOSQ_OPT_SEND_MAXIMUM, static_cast<int>(window_));
  if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  if (rc != MOSQ_ERR_SUCCESS) {
    fail(Failure::kNetwork, fromMosq(rc, "mosquitto_int_option"));
    return;
  }
  mosquitto_connect_callback_set(mosq_, &UpstreamConnection::onMosqConnect);
  mosquitto_publish_callback_set(mosq_, &UpstreamConnection::onMosqPublish);
  mosquitto_disconnect_callback_set(mosq_, &UpstreamConnection::onMosqDisconnect);
  mosquitto_message_callback_set(mosq_, &UpstreamConnection::onMosqMessage);

  const core::SystemTime now_sys = time_.systemTime();
  const int64_t expiry = unixSeconds(now_sys) + options_.token_lifetime.count();
  {
    const std::string password = makeUpstreamPassword(options_.hub_host_name, credentials_, expiry);
    rc = mosquitto_username_pw_set(mosq_, username_.c_str(), password.c_str());
  }  // The token is not kept here (libmosquitto holds its own copy for this attempt).
  if (rc != MOSQ_ERR_SUCCESS) {
    fail(Failure::kNetwork, fromMosq(rc, "mosquitto_username_pw_set"));
    return;
  }
  renew_at_ = now_sys + std::chrono::duration_cast<core::SystemTime::duration>(
                            options_.token_lifetime * options_.token_renew_fraction);

  if (tls_ != nullptr) {
    // Our SSL_CTX, used as is (no libmosquitto defaults on top): see makeTlsContext().
    rc = mosquitto_void_option(mosq_, MOSQ_OPT_SSL_CTX, tls_->get());
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_int_option(mosq_, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    if (rc != MOSQ_ERR_SUCCESS) {
      fail(Failure::kNetwork, fromMosq(rc, "mosquitto MOSQ_OPT_SSL_CTX"));
      return;
    }
  }

  // The deadline covers the host lookup too.
  retry_timer_.enable(options_.connect_timeout);
  // mosquitto_connect_async resolves the host name with a blocking getaddrinfo on our loop. With
  // the WAN down and the LAN up (the usual outage of a gateway), a DNS query waits for the
  // resolver's timeout, seconds per attempt, and every module on this loop would stall with it.
  // So a name is looked up first on a thread of its own: only once DNS has just answered does
  // libmosquitto ask again (the TLS handshake needs the name itself, for SNI and the
  // certificate check, so we cannot hand it the address instead).
  if (!core::isIpLiteral(options_.endpoint.host)) {
    const uint64_t gen = generation_;
    auto lookup = core::HostLookup::start(loop_, options_.endpoint.host, options_.resolve,
                                          [this, gen](const core::Status& s) { onLookupDone(gen, s); });
    if (!lookup.isOk()) {
      fail(Failure::kNetwork, lookup.status());
      return;
    }
    lookup_ = std::move(lookup).value();
    return;
  }
  openSocket();
}

void UpstreamConnection::onLookupDone(uint64_t generation, const core::Status& status) {
  if (generation != generation_ || state_ != ConnectionState::kConnecting || mosq_ == nullptr) return;
  lookup_.reset();  // allowed from inside its callback (core/loop/host_lookup.h)
  if (!status.isOk()) {
    fail(Failure::kNetwork, status);
    return;
  }
  openSocket();
}

void UpstreamConnection::openSocket() {
  errno = 0;
  const int rc = mosquitto_connect_async(mosq_, options_.endpoint.host.c_str(), options_.endpoint.port,
                                         static_cast<int>(options_.keepalive.count()));
  if (rc != MOSQ_ERR_SUCCESS) {
    fail(Failure::kNetwork, fromMosq(rc, "connect to " + options_.endpoint.toString()));
    return;
  }
  const int fd = mosquitto_socket(mosq_);
  if (fd < 0) {
    fail(Failure::kNetwork, core::unavailable("connect to " + options_.endpoint.toString() + ": no socket"));
    return;
  }
  auto poll = core::Poll::create(loop_, fd, *this);
  if (!poll.isOk()) {
    fail(Failure::kNetwork, poll.status());
    return;
  }
  poll_ = std::move(poll).value();
  poll_events_ = 0;
  last_inbound_ = time_.monotonicTime();
  tick_timer_.enable(options_.tick_interval, options_.tick_interval);
  updatePoll();
}

void UpstreamConnection::teardown(bool send_disconnect) {
  ++generation_;
  lookup_.reset();  // abandoned: its answer is not wanted any more
  tick_timer_.disable();
  read_more_ = false;
  // The Poll must stop watching the fd before libmosquitto closes it (core/loop/poll.h).
  poll_.reset();
  poll_events_ = 0;
  if (mosq_ != nullptr) {
    if (send_disconnect) {
      // Writes DISCONNECT now if the socket takes it; best effort, the socket closes next.
      mosquitto_disconnect(mosq_);
    }
    mosquitto_destroy(mosq_);
    mosq_ = nullptr;
  }
  broken_ = false;
  connack_rc_ = -1;
  mosq_disconnected_ = false;
  inbound_.clear();  // what a dead link delivered in its last read is not acted upon
  inbound_dropped_ = 0;
}

void UpstreamConnection::fail(Failure kind, core::Status reason) {
  const bool was_connected = state_ == ConnectionState::kConnected;
  teardown(/*send_disconnect=*/false);
  renewing_ = false;
  if (kind == Failure::kRefused) {
    ++stats_.refusals;
    state_ = ConnectionState::kRefused;
    current_backoff_ = refused_backoff_.next();
  } else {
    ++stats_.failures;
    if (was_connected) ++stats_.disconnects;
    state_ = ConnectionState::kBackoff;
    current_backoff_ = network_backoff_.next();
  }
  retry_timer_.enable(current_backoff_);
  // Never log the password: `reason` comes from libmosquitto or from us and holds no token.
  HUB_LOG(kind == Failure::kRefused ? core::LogLevel::kWarn : core::LogLevel::kInfo, kLog,
          "%s: %s; %s, retry in %lld ms (%u in flight reported back)", client_id_.c_str(),
          std::string(reason.message()).c_str(), kind == Failure::kRefused ? "refused" : "network failure",
          static_cast<long long>(current_backoff_.count()), unacked_);
  const ConnectionState new_state = state_;
  const uint64_t gen = generation_;
  reportUnacked();
  if (gen != generation_ || state_ != new_state) return;  // A callback moved us on.
  setState(new_state, reason);
}

void UpstreamConnection::setState(ConnectionState state, const core::Status& reason) {
  state_ = state;
  last_activity_ = time_.monotonicTime();
  callbacks_.onStateChange(*this, state, reason);
}

void UpstreamConnection::reportUnacked() {
  report_scratch_.clear();
  // PUBACKs already received but not yet dispatched (a callback closed us in the middle of
  // dispatchAcks): those messages were acknowledged and complete as such, first.
  for (size_t i = ack_pos_; i < acked_cookies_.size(); ++i) report_scratch_.push_back(acked_cookies_[i]);
  const size_t acked = report_scratch_.size();
  acked_cookies_.clear();
  ack_pos_ = 0;
  for (uint32_t i = 0; i < ring_count_; ++i) {
    const InFlight& f = ring_[(ring_head_ + i) % window_];
    if (!f.acked) report_scratch_.push_back(f.cookie);
  }
  ring_head_ = 0;
  ring_count_ = 0;
  unacked_ = 0;
  if (report_scratch_.empty()) return;
  stats_.acked += acked;
  stats_.not_acked += report_scratch_.size() - acked;
  // Swap out so that a callback that publishes (and fails) or closes cannot disturb the walk.
  std::vector<uint64_t> cookies;
  cookies.swap(report_scratch_);
  const core::Status not_acked = core::unavailable("not acknowledged: upstream connection ended");
  for (size_t i = 0; i < cookies.size(); ++i) {
    callbacks_.onPublishDone(*this, cookies[i], i < acked ? core::Status::ok() : not_acked);
  }
  cookies.clear();
  if (report_scratch_.capacity() < cookies.capacity()) report_scratch_.swap(cookies);
}

// ---- publishing ----

core::Status UpstreamConnection::publish(std::string_view topic, std::span<const uint8_t> payload, uint64_t cookie) {
  HUB_ASSERT(loop_.isThreadSafe(), "UpstreamConnection::publish off the loop thread");
  if (payload.size() > options_.max_message_bytes) {
    ++stats_.oversized;
    return core::resourceExhausted("upstream message of " + std::to_string(payload.size()) +
                                   " bytes exceeds the limit of " + std::to_string(options_.max_message_bytes));
  }
  if (!canPublish()) {
    return core::unavailable(state_ != ConnectionState::kConnected ? "upstream not connected"
                                                                   : "upstream window full or renewing");
  }
  int mid = 0;
  HUB_RETURN_IF_ERROR(mosqPublish(topic, payload, /*qos=*/1, &mid));
  InFlight& slot = ring_[(ring_head_ + ring_count_) % window_];
  slot.mid = mid;
  slot.acked = false;
  slot.cookie = cookie;
  ++ring_count_;
  ++unacked_;
  ++stats_.published;
  last_activity_ = time_.monotonicTime();
  // libmosquitto wrote the packet if the socket took it; if not, POLLOUT must be armed. Check
  // once per turn rather than per message.
  armTurnEnd();
  return core::Status::ok();
}

void UpstreamConnection::onMosqPublish(struct mosquitto*, void* obj, int mid) noexcept {
  auto* self = static_cast<UpstreamConnection*>(obj);
  if (self == nullptr) return;
  // Search from the oldest: PUBACKs come back in order in practice, so this is one compare.
  for (uint32_t i = 0; i < self->ring_count_; ++i) {
    InFlight& f = self->ring_[(self->ring_head_ + i) % self->window_];
    if (f.mid == mid && !f.acked) {
      f.acked = true;
      --self->unacked_;
      if (self->acked_cookies_.size() < self->acked_cookies_.capacity()) {
        self->acked_cookies_.push_back(f.cookie);
      } else {
        HUB_BUG("upstream: more PUBACKs than the window");
      }
      break;
    }
  }
  while (self->ring_count_ > 0 && self->ring_[self->ring_head_].acked) {
    self->ring_head_ = (self->ring_head_ + 1) % self->window_;
    --self->ring_count_;
  }
}

core::Status UpstreamConnection::publishControl(std::string_view topic, std::span<const uint8_t> payload) {
  HUB_ASSERT(loop_.isThreadSafe(), "UpstreamConnection::publishControl off the loop thread");
  if (payload.size() > options_.max_message_bytes) {
    return core::resourceExhausted("upstream message of " + std::to_string(payload.size()) +
                                   " bytes exceeds the limit of " + std::to_string(options_.max_message_bytes));
  }
  if (state_ != ConnectionState::kConnected || broken_ || mosq_ == nullptr) {
    return core::unavailable("upstream not connected");
  }
  HUB_RETURN_IF_ERROR(mosqPublish(topic, payload, /*qos=*/0, nullptr));
  last_activity_ = time_.monotonicTime();
  armTurnEnd();
  return core::Status::ok();
}

core::Status UpstreamConnection::mosqPublish(std::string_view topic, std::span<const uint8_t> payload, int qos,
                                             int* mid) {
  topic_buf_.assign(topic);
  if (corked_fd_ < 0) corkUntilTurnEnd();
  errno = 0;
  const int rc = mosquitto_publish(mosq_, mid, topic_buf_.c_str(), static_cast<int>(payload.size()), payload.data(),
                                   qos, /*retain=*/false);
  if (rc == MOSQ_ERR_SUCCESS) return core::Status::ok();
  if (rc == MOSQ_ERR_INVAL || rc == MOSQ_ERR_MALFORMED_UTF8 || rc == MOSQ_ERR_PAYLOAD_SIZE ||
      rc == MOSQ_ERR_OVERSIZE_PACKET) {
    return fromMosq(rc, "mosquitto_publish");  // this message only
  }
  // The link died under us: finish it at the end of the turn (not inside the caller's loop).
  broken_ = true;
  armTurnEnd();
  return fromMosq(rc, "mosquitto_publish");
}

void UpstreamConnection::onMosqMessage(struct mosquitto*, void* obj, const struct mosquitto_message* m) noexcept {
  auto* self = static_cast<UpstreamConnection*>(obj);
  if (self == nullptr || m == nullptr || m->topic == nullptr) return;
  if (self->inbound_.size() >= kMaxInboundPerCall) {
    ++self->inbound_dropped_;
    return;
  }
  try {
    Inbound in;
    in.topic.assign(m->topic);
    const auto* bytes = static_cast<const uint8_t*>(m->payload);
    if (bytes != nullptr && m->payloadlen > 0) in.payload.assign(bytes, bytes + m->payloadlen);
    self->inbound_.push_back(std::move(in));
  } catch (...) {
    ++self->inbound_dropped_;  // std::bad_alloc: never through libmosquitto's C frames
  }
}

void UpstreamConnection::dispatchInbound() {
  if (inbound_dropped_ != 0) {
    HUB_LOG_WARN(kLog, "%s: %zu inbound message(s) dropped (more than %zu in one read)", client_id_.c_str(),
                 inbound_dropped_, kMaxInboundPerCall);
    inbound_dropped_ = 0;
  }
  if (inbound_.empty()) return;
  // Callbacks may close or re-enter this connection; work on a local list.
  std::vector<Inbound> batch;
  batch.swap(inbound_);
  const uint64_t gen = generation_;
  for (const Inbound& in : batch) {
    callbacks_.onMessage(*this, in.topic, in.payload);
    if (gen != generation_) return;
  }
}

void UpstreamConnection::onMosqConnect(struct mosquitto*, void* obj, int rc) noexcept {
  auto* self = static_cast<UpstreamConnection*>(obj);
  if (self != nullptr) self->connack_rc_ = rc;
}

void UpstreamConnection::onMosqDisconnect(struct mosquitto*, void* obj, int) noexcept {
  auto* self = static_cast<UpstreamConnection*>(obj);
  if (self != nullptr) self->mosq_disconnected_ = true;
}

bool UpstreamConnection::afterMosqCall(int rc, std::string_view what) {
  const uint64_t gen = generation_;
  const bool dead = rc != MOSQ_ERR_SUCCESS || mosq_disconnected_;
  if (connack_rc_ >= 0 && state_ == ConnectionState::kConnecting) {
    const int code = connack_rc_;
    connack_rc_ = -1;
    if (code == 0 && !dead) {
      onConnackAccepted();
      if (gen != generation_) return false;
    } else if (code == 4 || code == 5) {
      fail(Failure::kRefused, core::unauthenticated("CONNACK " + std::to_string(code) + " (" +
                                                    std::string(connackCodeName(code)) + ")"));
      return false;
    } else if (code != 0) {
      fail(Failure::kNetwork, core::unavailable("CONNACK " + std::to_string(code) + " (" +
                                                std::string(connackCodeName(code)) + ")"));
      return false;
    }
  }
  if (state_ == ConnectionState::kConnecting && rc == MOSQ_ERR_CONN_REFUSED) {
    // A CONNACK refusal whose code libmosquitto did not hand to on_connect.
    fail(Failure::kRefused, core::unauthenticated("CONNACK refused"));
    return false;
  }
  if (dead) {
    // publish() from an ack callback below must not use the link, and the Poll must go now:
    // libmosquitto has already closed the fd, and a callback that opens a socket could get
    // the same number, which libuv refuses to watch twice (EEXIST).
    broken_ = true;
    poll_.reset();
    poll_events_ = 0;
  }
  if (!acked_cookies_.empty()) {
    dispatchAcks();
    if (gen != generation_) return false;
  }
  if (!inbound_.empty() || inbound_dropped_ != 0) {
    dispatchInbound();
    if (gen != generation_) return false;
  }
  if (dead) {
    fail(Failure::kNetwork, rc != MOSQ_ERR_SUCCESS ? fromMosq(rc, what)
                                                   : core::unavailable(std::string(what) + ": connection lost"));
    return false;
  }
  if (renewing_ && unacked_ == 0) {
    finishRenewal();
    return false;
  }
  return true;
}

void UpstreamConnection::onConnackAccepted() {
  retry_timer_.disable();
  network_backoff_.reset();
  refused_backoff_.reset();
  current_backoff_ = std::chrono::milliseconds(0);
  ++stats_.connects;
  last_inbound_ = time_.monotonicTime();
  HUB_LOG_INFO(kLog, "%s: connected to %s", client_id_.c_str(), options_.endpoint.toString().c_str());
  for (const std::string& filter : options_.subscriptions) {
    const int rc = mosquitto_subscribe(mosq_, nullptr, filter.c_str(), /*qos=*/0);
    if (rc != MOSQ_ERR_SUCCESS) {
      HUB_LOG_WARN(kLog, "%s: cannot subscribe to %s: %s", client_id_.c_str(), filter.c_str(),
                   fromMosq(rc, "mosquitto_subscribe").toString().c_str());
    }
  }
  const uint64_t gen = generation_;
  setState(ConnectionState::kConnected, core::Status::ok());
  if (gen != generation_ || state_ != ConnectionState::kConnected) return;
  if (canPublish()) callbacks_.onReady(*this);
}

void UpstreamConnection::dispatchAcks() {
  const uint64_t gen = generation_;
  last_activity_ = time_.monotonicTime();
  // Callbacks may publish (fills the ring, not acked_cookies_) or close; close() reports the
  // cookies from ack_pos_ on as acknowledged (they were), so each completes exactly once.
  ack_pos_ = 0;
  while (ack_pos_ < acked_cookies_.size()) {
    const uint64_t cookie = acked_cookies_[ack_pos_++];
    ++stats_.acked;
    callbacks_.onPublishDone(*this, cookie, core::Status::ok());
    if (gen != generation_) return;
  }
  acked_cookies_.clear();
  ack_pos_ = 0;
  if (canPublish()) callbacks_.onReady(*this);
}

// ---- I/O ----

void UpstreamConnection::onPollReady(uint32_t events, const core::Status& status) {
  if (!status.isOk()) {
    fail(Failure::kNetwork, status.withContext("poll"));
    return;
  }
  if (mosq_ == nullptr) return;
  // libmosquitto takes a TLS handshake step that failed on the socket (SSL_ERROR_SYSCALL: the
  // connection was refused, reset or closed) for one that waits for more, and returns success.
  // The dead socket then polls readable at once, again and again: both IO loops spun at 100% CPU
  // until the CONNACK deadline (10 s), which also held back the resume after an outage by as
  // much. So while connecting over TLS we look at the socket ourselves.
  if (state_ == ConnectionState::kConnecting && options_.endpoint.tls() &&
      (events & (core::kPollReadable | core::kPollDisconnect))) {
    core::Status dead = tlsConnectError();
    if (!dead.isOk()) {
      fail(Failure::kNetwork, std::move(dead));
      return;
    }
  }
  const uint64_t gen = generation_;
  // While connecting, a writable socket may also be what the TLS handshake waits for; libmosquitto
  // advances the handshake from mosquitto_loop_read, so read on either event then.
  if ((events & (core::kPollReadable | core::kPollDisconnect)) || state_ == ConnectionState::kConnecting) {
    readAvailable();
    if (gen != generation_ || mosq_ == nullptr) return;
  }
  if ((events & core::kPollWritable) && mosquitto_want_write(mosq_)) {
    errno = 0;
    const int rc = mosquitto_loop_write(mosq_, 1);
    if (!afterMosqCall(rc, "write")) return;
  }
  updatePoll();
}

void UpstreamConnection::readAvailable() {
  const uint64_t gen = generation_;
  read_more_ = false;
  for (int round = 0; round < kMaxReadRoundsPerEvent; ++round) {
    // libmosquitto's read loop stops early when errno is EAGAIN; clear any stale value.
    errno = 0;
    const int rc = mosquitto_loop_read(mosq_, 1);
    last_inbound_ = time_.monotonicTime();
    if (!afterMosqCall(rc, "read") || gen != generation_ || mosq_ == nullptr) return;
    if (!tlsPending()) return;
  }
  // Still data inside OpenSSL: the fd will not wake us for it, so continue at turn end.
  read_more_ = true;
  armTurnEnd();
}

core::Status UpstreamConnection::tlsConnectError() const {
  const int fd = mosquitto_socket(mosq_);
  if (fd < 0) return core::Status::ok();
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
    return core::unavailable(std::string("TLS connect: ") + std::strerror(err));
  }
  // A peek consumes nothing: data, or nothing yet, leaves the handshake to libmosquitto.
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return core::unavailable("TLS connect: the connection was closed during the handshake");
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    return core::unavailable(std::string("TLS connect: ") + std::strerror(errno));
  }
  return core::Status::ok();
}

bool UpstreamConnection::tlsPending() const {
  if (mosq_ == nullptr || !options_.endpoint.tls()) return false;
  auto* ssl = static_cast<SSL*>(mosquitto_ssl_get(mosq_));
  return ssl != nullptr && SSL_has_pending(ssl) == 1;
}

void UpstreamConnection::updatePoll() {
  if (poll_ == nullptr || mosq_ == nullptr) return;
  const uint32_t want = core::kPollReadable | (mosquitto_want_write(mosq_) ? core::kPollWritable : 0u);
  if (want == poll_events_) return;
  core::Status s = poll_->start(want);
  if (!s.isOk()) {
    fail(Failure::kNetwork, s.withContext("poll start"));
    return;
  }
  poll_events_ = want;
}

void UpstreamConnection::armTurnEnd() {
  if (turn_end_armed_) return;
  turn_end_armed_ = true;
  loop_.callAtTurnEnd(this);
}

// libmosquitto writes every packet with its own write(2), and with TCP_NODELAY each write is a
// segment of its own: over loopback the kernel then runs the receiver's whole TCP input path
// inside our write, once per message (perf: ~40% of an IO loop's time in an upstream drain).
// Corking the socket from the first publish of a turn to the turn's end sends what the turn
// published in full segments; the uncork flushes at once. (armTurnEnd() is called by every
// publish, so the uncork always comes, at the latest one non-blocking loop iteration later.)
void UpstreamConnection::corkUntilTurnEnd() {
  const int fd = mosquitto_socket(mosq_);
  const int on = 1;
  if (fd >= 0 && ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on) == 0) corked_fd_ = fd;
}

void UpstreamConnection::uncork() {
  const int fd = corked_fd_;
  corked_fd_ = -1;
  // Only the socket that was corked: after a reconnect the descriptor may be another one's.
  if (fd < 0 || mosq_ == nullptr || mosquitto_socket(mosq_) != fd) return;
  const int off = 0;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
}

void UpstreamConnection::onTurnEnd() {
  turn_end_armed_ = false;
  uncork();
  if (mosq_ == nullptr) return;
  if (broken_) {
    fail(Failure::kNetwork, core::unavailable("connection lost while publishing"));
    return;
  }
  if (read_more_) {
    readAvailable();
    if (mosq_ == nullptr) return;
  }
  updatePoll();
}

// ---- periodic work ----

void UpstreamConnection::onTick() {
  if (mosq_ == nullptr) return;
  errno = 0;
  const int rc = mosquitto_loop_misc(mosq_);
  if (!afterMosqCall(rc, "keepalive")) return;
  if (state_ != ConnectionState::kConnected) {
    updatePoll();
    return;
  }
  // Renewal before the silence check: a test (or a suspended VM) that jumps the clock forward
  // should renew, not count a spurious keep-alive loss.
  if (!renewing_ && time_.systemTime() >= renew_at_) beginRenewal();
  if (renewing_) {
    if (unacked_ == 0 || time_.monotonicTime() - renew_started_ >= options_.renew_drain_timeout) {
      finishRenewal();
    }
    return;
  }
  const auto silence = time_.monotonicTime() - last_inbound_;
  if (silence > options_.keepalive * 3 / 2) {
    fail(Failure::kNetwork, core::unavailable("nothing received for 1.5 x keepalive"));
    return;
  }
  updatePoll();
}

void UpstreamConnection::beginRenewal() {
  renewing_ = true;
  renew_started_ = time_.monotonicTime();
  HUB_LOG_INFO(kLog, "%s: SAS token at %d%% of its lifetime; reconnecting with a fresh one after %u in flight",
               client_id_.c_str(), static_cast<int>(options_.token_renew_fraction * 100), unacked_);
}

void UpstreamConnection::finishRenewal() {
  ++stats_.renewals;
  renewing_ = false;
  teardown(/*send_disconnect=*/true);
  // Anything still unacknowledged (drain timeout) is handed back before the new attempt.
  state_ = ConnectionState::kConnecting;
  const uint64_t gen = generation_;
  reportUnacked();
  if (gen != generation_ || state_ != ConnectionState::kConnecting) return;
  connectNow();
}

}  // namespace edgehub::transports::upstream
