#include "transports/upstream/upstream_pool.h"

#include <algorithm>

#include "core/log/logger.h"

namespace edgehub::transports::upstream {
namespace {
constexpr std::string_view kLog = "upstream";
}  // namespace

// One identity: its connection (if open) and its scheduling flags. It is the connection's
// ConnectionCallbacks, forwarding to the pool with itself as context.
struct UpstreamPool::Entry final : public ConnectionCallbacks {
  Entry(UpstreamPool& p, core::Identity id) : pool(p), identity(std::move(id)) {}
  virtual ~Entry() = default;

  // ConnectionCallbacks
  void onPublishDone(UpstreamConnection&, uint64_t cookie, const core::Status& status) override {
    pool.entryPublishDone(*this, cookie, status);
  }
  void onReady(UpstreamConnection&) override { pool.entryReady(*this); }
  void onStateChange(UpstreamConnection&, ConnectionState state, const core::Status& reason) override {
    pool.entryStateChange(*this, state, reason);
  }
  void onMessage(UpstreamConnection&, std::string_view topic, std::span<const uint8_t> payload) override {
    pool.source_.onMessage(identity, topic, payload);
  }

  UpstreamPool& pool;
  const core::Identity identity;
  UpstreamConnectionPtr conn;
  ConnectionState last_state = ConnectionState::kIdle;
  bool pending = false;   // the source has (or may have) messages for it
  bool held = false;      // hold(): stay connected with nothing pending
  bool in_ready = false;  // in ready_
  bool waiting = false;   // in waiting_
};

// The UpstreamWriter handed to fill(): one connection, a quota, and the pool's counters.
class UpstreamPool::Writer final : public UpstreamWriter {
 public:
  explicit Writer(PoolCounters& counters) : counters_(counters) {}
  void bind(UpstreamConnection* conn, uint32_t quota) {
    conn_ = conn;
    left_ = quota;
    published_ = 0;
  }
  uint32_t published() const { return published_; }

  // UpstreamWriter
  core::Status publish(std::string_view topic, std::span<const uint8_t> payload, uint64_t cookie) override {
    if (conn_ == nullptr || left_ == 0) return core::unavailable("upstream fill quota used");
    core::Status s = conn_->publish(topic, payload, cookie);
    if (s.isOk()) {
      --left_;
      ++published_;
      ++counters_.published;
    } else if (s.code() == core::StatusCode::kResourceExhausted) {
      ++counters_.oversized;
    } else if (s.code() == core::StatusCode::kInvalidArgument) {
      ++counters_.rejected;
    }
    return s;
  }
  uint32_t room() const override { return conn_ == nullptr ? 0 : std::min(left_, conn_->windowRoom()); }

 private:
  PoolCounters& counters_;
  UpstreamConnection* conn_ = nullptr;
  uint32_t left_ = 0;
  uint32_t published_ = 0;
};

core::Result<UpstreamPoolPtr> UpstreamPool::create(core::Loop& loop, const core::TimeSource& time,
                                                   PoolOptions options, UpstreamSource& source) {
  HUB_ASSERT(loop.isThreadSafe(), "UpstreamPool created off the loop thread");
  HUB_RETURN_IF_ERROR(validateConnectionOptions(options.connection));
  if (options.max_connections < 1) return core::invalidArgument("upstream pool: max_connections must be >= 1");
  if (options.fill_quantum < 1 || options.max_fill_per_turn < 1) {
    return core::invalidArgument("upstream pool: fill_quantum and max_fill_per_turn must be >= 1");
  }
  if (options.idle_timeout.count() <= 0 || options.housekeeping_interval.count() <= 0) {
    return core::invalidArgument("upstream pool: idle_timeout and housekeeping_interval must be positive");
  }
  return UpstreamPoolPtr(new UpstreamPool(loop, time, std::move(options), source));
}

UpstreamPool::UpstreamPool(core::Loop& loop, const core::TimeSource& time, PoolOptions options,
                           UpstreamSource& source)
    : loop_(loop),
      time_(time),
      options_(std::move(options)),
      source_(source),
      writer_(std::make_unique<Writer>(counters_)),
      housekeeping_timer_(loop, [this] { housekeeping(); }),
      probe_timer_(loop, [this] { probe(); }) {
  housekeeping_timer_.enable(options_.housekeeping_interval, options_.housekeeping_interval);
  if (options_.probe_interval.count() > 0) probe_timer_.enable(options_.probe_interval, options_.probe_interval);
}

UpstreamPool::~UpstreamPool() {
  HUB_ASSERT(loop_.isThreadSafe(), "UpstreamPool destroyed off the loop thread");
  if (turn_end_armed_) loop_.cancelTurnEnd(this);
  // Connections die before their Entry (their callbacks); they call no callback when destroyed.
  for (auto& [id, entry] : entries_) entry->conn.reset();
}

const UpstreamConnection* UpstreamPool::connection(const core::Identity& identity) const {
  auto it = entries_.find(identity);
  return it == entries_.end() ? nullptr : it->second->conn.get();
}

UpstreamPool::Entry& UpstreamPool::entryFor(const core::Identity& identity) {
  auto it = entries_.find(identity);
  if (it != entries_.end()) return *it->second;
  auto entry = std::make_unique<Entry>(*this, identity);
  Entry& ref = *entry;
  entries_.emplace(identity, std::move(entry));
  return ref;
}

void UpstreamPool::notifyPending(const core::Identity& identity) {
  HUB_ASSERT(loop_.isThreadSafe(), "UpstreamPool::notifyPending off the loop thread");
  Entry& e = entryFor(identity);
  e.pending = true;
  if (e.conn == nullptr) {
    if (!e.waiting) open(e);
    return;
  }
  if (e.conn->canPublish()) {
    enqueueReady(e);
    scheduleTurnEnd();
  }
}

void UpstreamPool::hold(const core::Identity& identity, bool held) {
  HUB_ASSERT(loop_.isThreadSafe(), "UpstreamPool::hold off the loop thread");
  if (!held) {
    auto it = entries_.find(identity);
    if (it != entries_.end()) it->second->held = false;
    return;
  }
  Entry& e = entryFor(identity);
  e.held = true;
  if (e.conn != nullptr || e.waiting) return;
  if (open_ < options_.max_connections || e.pending) {
    open(e);  // may evict an idle connection (open() decides)
  } else {
    e.waiting = true;  // at the cap: a held identity takes a free slot only
    waiting_.push_back(&e);
  }
}

core::Status UpstreamPool::publishControl(const core::Identity& identity, std::string_view topic,
                                          std::span<const uint8_t> payload) {
  auto it = entries_.find(identity);
  if (it == entries_.end() || it->second->conn == nullptr) return core::unavailable("upstream not connected");
  core::Status s = it->second->conn->publishControl(topic, payload);
  if (s.isOk()) ++counters_.control_published;
  return s;
}

void UpstreamPool::close(const core::Identity& identity) {
  auto it = entries_.find(identity);
  if (it == entries_.end() || it->second->conn == nullptr) return;
  closeEntry(*it->second);
}

void UpstreamPool::shutdown() {
  housekeeping_timer_.disable();
  probe_timer_.disable();
  std::vector<Entry*> open_entries;
  for (auto& [id, entry] : entries_) {
    if (entry->conn != nullptr) open_entries.push_back(entry.get());
  }
  for (Entry* e : open_entries) {
    if (e->conn != nullptr) closeEntry(*e);
  }
  waiting_.clear();
  for (auto& [id, entry] : entries_) entry->waiting = false;
}

bool UpstreamPool::open(Entry& e) {
  if (open_ >= options_.max_connections && !evictOne()) {
    if (!e.waiting) {
      e.waiting = true;
      waiting_.push_back(&e);
    }
    return false;
  }
  auto creds = source_.credentials(e.identity);
  if (!creds.isOk()) {
    ++counters_.credential_errors;
    e.pending = false;
    HUB_LOG_WARN(kLog, "%s: no credentials: %s", e.identity.clientId().c_str(),
                 std::string(creds.status().message()).c_str());
    return false;
  }
  if (options_.connection.endpoint.tls() && tls_ == nullptr) {
    auto tls = UpstreamTlsContext::create(options_.connection);
    if (!tls.isOk()) {
      ++counters_.credential_errors;
      e.pending = false;
      HUB_LOG_WARN(kLog, "%s: cannot set up TLS: %s", e.identity.clientId().c_str(),
                   std::string(tls.status().message()).c_str());
      return false;
    }
    tls_ = std::move(tls).value();
  }
  auto conn = UpstreamConnection::create(loop_, time_, options_.connection, std::move(creds).value(), e, tls_);
  if (!conn.isOk()) {
    ++counters_.credential_errors;
    e.pending = false;
    HUB_LOG_WARN(kLog, "%s: cannot create connection: %s", e.identity.clientId().c_str(),
                 std::string(conn.status().message()).c_str());
    return false;
  }
  e.conn = std::move(conn).value();
  ++open_;
  e.conn->start();
  return true;
}

bool UpstreamPool::evictOne() {
  Entry* victim = nullptr;
  // 3: truly idle; 2: idle but held (its module is connected: the cloud loses its way to it
  // until a slot frees, but telemetry never waits behind an idle link); 1: in backoff or
  // refused with nothing in flight.
  int victim_rank = 0;
  for (auto& [id, entry] : entries_) {
    const UpstreamConnection* c = entry->conn.get();
    if (c == nullptr || c->inFlight() != 0) continue;
    int rank = 0;
    if (!entry->pending) {
      rank = entry->held ? 2 : 3;
    } else if (c->state() == ConnectionState::kBackoff || c->state() == ConnectionState::kRefused) {
      rank = 1;
    }
    if (rank == 0) continue;
    if (victim == nullptr || rank > victim_rank ||
        (rank == victim_rank && c->lastActivity() < victim->conn->lastActivity())) {
      victim = entry.get();
      victim_rank = rank;
    }
  }
  if (victim == nullptr) return false;
  HUB_LOG_INFO(kLog, "%s: closing the longest-idle upstream connection (cap of %u reached)",
               victim->identity.clientId().c_str(), options_.max_connections);
  ++counters_.evictions;
  closeEntry(*victim);
  // An evicted identity that still has messages (or is held) waits for a slot like any other.
  if ((victim->pending || victim->held) && !victim->waiting) {
    victim->waiting = true;
    waiting_.push_back(victim);
  }
  return true;
}

void UpstreamPool::closeEntry(Entry& e) {
  if (e.in_ready) {
    std::erase(ready_, &e);
    e.in_ready = false;
  }
  UpstreamConnectionPtr conn = std::move(e.conn);
  if (conn == nullptr) return;
  --open_;
  conn->close();  // Callbacks reach `e` (still alive); e.conn is already null.
  loop_.deferredDelete(std::move(conn));
}

void UpstreamPool::enqueueReady(Entry& e) {
  if (e.in_ready) return;
  e.in_ready = true;
  ready_.push_back(&e);
}

void UpstreamPool::scheduleTurnEnd() {
  if (turn_end_armed_) return;
  turn_end_armed_ = true;
  loop_.callAtTurnEnd(this);
}

void UpstreamPool::onTurnEnd() {
  turn_end_armed_ = false;
  if (retry_all_) {
    retry_all_ = false;
    std::vector<UpstreamConnection*> backed_off;  // Cold: only after a (re)connect.
    for (auto& [id, entry] : entries_) {
      if (entry->conn != nullptr && entry->conn->state() == ConnectionState::kBackoff) {
        backed_off.push_back(entry->conn.get());
      }
    }
    if (!backed_off.empty()) {
      ++counters_.retry_all;
      HUB_LOG_INFO(kLog, "an upstream connection succeeded; retrying %zu backed-off connections now",
                   backed_off.size());
    }
    for (UpstreamConnection* c : backed_off) c->retryNow();
  }
  if (!waiting_.empty()) openWaiting();  // May evict a connection that just became idle.
  fillRound();
}

void UpstreamPool::fillRound() {
  uint32_t budget = options_.max_fill_per_turn;
  while (budget > 0 && !ready_.empty()) {
    Entry* e = ready_.front();
    ready_.pop_front();
    e->in_ready = false;
    if (e->conn == nullptr || !e->pending || !e->conn->canPublish()) continue;
    const uint32_t quota = std::min({options_.fill_quantum, e->conn->windowRoom(), budget});
    UpstreamConnection* conn = e->conn.get();
    writer_->bind(conn, quota);
    const bool more = source_.fill(e->identity, *writer_, quota);
    const uint32_t published = writer_->published();
    writer_->bind(nullptr, 0);
    budget -= std::min(budget, std::max<uint32_t>(published, 1));
    if (!more) {
      e->pending = false;
      continue;
    }
    // More to send: back of the ring if the window still has room, else wait for onReady.
    if (published > 0 && e->conn.get() == conn && conn->canPublish()) enqueueReady(*e);
  }
  if (!ready_.empty()) scheduleTurnEnd();  // Budget used: continue next turn.
}

void UpstreamPool::housekeeping() {
  const core::MonotonicTime now = time_.monotonicTime();
  std::vector<Entry*> idle;  // Cold: once per housekeeping interval.
  for (auto& [id, entry] : entries_) {
    const UpstreamConnection* c = entry->conn.get();
    if (c != nullptr && !entry->pending && !entry->held && c->inFlight() == 0 &&
        now - c->lastActivity() >= options_.idle_timeout) {
      idle.push_back(entry.get());
    }
  }
  for (Entry* e : idle) {
    HUB_LOG_INFO(kLog, "%s: closing idle upstream connection", e->identity.clientId().c_str());
    ++counters_.idle_closes;
    closeEntry(*e);
  }
  // Forget identities with nothing open and nothing to send (keeps the map bounded).
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = *it->second;
    if (e.conn == nullptr && !e.pending && !e.held && !e.waiting && !e.in_ready) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  openWaiting();
}

// While no connection is up or on its way up, one backed-off connection (in turn) retries now:
// a success makes every other one retry (retry-all), so the pool notices the network is back
// within one probe interval, whatever each connection's own backoff has grown to. Refused
// connections are never probed (their backoff is a throttle on bad credentials).
void UpstreamPool::probe() {
  UpstreamConnection* first = nullptr;
  UpstreamConnection* next = nullptr;
  const core::Identity* first_id = nullptr;
  const core::Identity* next_id = nullptr;
  for (auto& [id, entry] : entries_) {
    const UpstreamConnection* c = entry->conn.get();
    if (c == nullptr) continue;
    if (c->state() == ConnectionState::kConnected || c->state() == ConnectionState::kConnecting) return;
    if (c->state() != ConnectionState::kBackoff) continue;
    if (first == nullptr) {
      first = entry->conn.get();
      first_id = &id;
    }
    if (next == nullptr && (!probed_last_ || *probed_last_ < id)) {
      next = entry->conn.get();
      next_id = &id;
    }
  }
  if (next == nullptr) {
    next = first;
    next_id = first_id;
  }
  if (next == nullptr) return;
  ++counters_.probes;
  probed_last_ = *next_id;
  next->retryNow();
}

void UpstreamPool::openWaiting() {
  while (!waiting_.empty()) {
    Entry* e = waiting_.front();
    if ((!e->pending && !e->held) || e->conn != nullptr) {
      waiting_.pop_front();
      e->waiting = false;
      continue;
    }
    // Held with nothing to send: only a free slot, never an eviction (two held identities
    // over the cap would otherwise take turns evicting each other every housekeeping tick).
    if (open_ >= options_.max_connections && (!e->pending || !evictOne())) return;
    waiting_.pop_front();
    e->waiting = false;
    open(*e);
  }
}

void UpstreamPool::entryPublishDone(Entry& e, uint64_t cookie, const core::Status& status) {
  if (status.isOk()) {
    ++counters_.acked;
  } else {
    ++counters_.not_acked;
    e.pending = true;  // The source will re-send it after the reconnect.
  }
  source_.onPublishDone(e.identity, cookie, status);
}

void UpstreamPool::entryReady(Entry& e) {
  if (e.pending) {
    enqueueReady(e);
    scheduleTurnEnd();
  } else if (!waiting_.empty()) {
    scheduleTurnEnd();  // This one may be idle now: a waiting identity could take its slot.
  }
}

void UpstreamPool::entryStateChange(Entry& e, ConnectionState state, const core::Status&) {
  const ConnectionState previous = e.last_state;
  e.last_state = state;
  switch (state) {
    case ConnectionState::kConnected:
      ++counters_.connects;
      retry_all_ = true;
      scheduleTurnEnd();
      source_.onConnected(e.identity);
      break;
    case ConnectionState::kRefused:
      ++counters_.refusals;
      break;
    case ConnectionState::kBackoff:
      ++counters_.connect_failures;
      if (previous == ConnectionState::kConnected) ++counters_.disconnects;
      break;
    case ConnectionState::kConnecting:
    case ConnectionState::kIdle:
      break;
  }
}

}  // namespace edgehub::transports::upstream
