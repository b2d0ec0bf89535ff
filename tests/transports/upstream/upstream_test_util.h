#pragma once
// Shared pieces of the upstream tests: identities with keys, the broker users they imply, and
// a FakeSource (the engine's side of UpstreamPool) that keeps per-identity order and counts
// publishes and acks per message.
#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "core/base64.h"
#include "core/identity.h"
#include "core/time_source.h"
#include "tests/transports/upstream/broker_fixture.h"
#include "transports/upstream/upstream_identity.h"
#include "transports/upstream/upstream_pool.h"

namespace edgehub::testing::upstream {

namespace up = ::edgehub::transports::upstream;

inline constexpr std::string_view kHubHost = "testhub.azure-devices.net";
inline constexpr std::chrono::seconds kTokenLifetime{3600};
inline constexpr const char* kObserverUser = "observer";
inline constexpr const char* kObserverPassword = "observer-secret";

inline std::string keyFor(const core::Identity& id) {
  std::string raw = "key-of-" + id.clientId();
  raw.resize(32, '#');
  return core::base64Encode(raw);
}

inline int64_t unixSeconds(core::SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The password the connection will present at `now` (deterministic with a pinned clock).
inline std::string expectedPassword(const core::Identity& id, const core::TimeSource& time) {
  return up::makeUpstreamPassword(kHubHost, up::UpstreamCredentials{id, keyFor(id)},
                                  unixSeconds(time.systemTime()) + kTokenLifetime.count());
}

inline std::string telemetryFilter(const core::Identity& id) {
  std::string t;
  up::appendTelemetryTopic(t, id, std::string_view());
  return t + "#";
}

inline std::vector<BrokerUser> brokerUsers(const std::vector<core::Identity>& ids, const core::TimeSource& time) {
  std::vector<BrokerUser> users;
  for (const core::Identity& id : ids) {
    users.push_back({up::upstreamUsername(kHubHost, id), expectedPassword(id, time),
                     {"topic write " + telemetryFilter(id)}});
  }
  users.push_back({kObserverUser, kObserverPassword, {"topic read #"}});
  return users;
}

// A broker in `dir` that knows `ids` (each with its deterministic password) and the observer,
// started. Records a test failure and returns nullptr if mosquitto is missing (./test.sh
// installs it) or the broker does not start.
inline std::unique_ptr<MosquittoBroker> startTestBroker(const std::string& dir, const std::vector<core::Identity>& ids,
                                                        const core::TimeSource& time,
                                                        std::optional<TlsFiles> tls = {}) {
  if (!haveMosquitto()) {
    ADD_FAILURE() << "mosquitto is missing: ./test.sh installs it";
    return nullptr;
  }
  auto broker = std::make_unique<MosquittoBroker>(dir, brokerUsers(ids, time), std::move(tls));
  EXPECT_EQ(broker->setupError(), "");
  if (!broker->start()) {
    ADD_FAILURE() << broker->lastError();
    return nullptr;
  }
  return broker;
}

inline up::ConnectionOptions connectionOptions(uint16_t port) {
  up::ConnectionOptions o;
  o.endpoint.scheme = up::UpstreamScheme::kMqtt;
  o.endpoint.host = "127.0.0.1";
  o.endpoint.port = port;
  o.hub_host_name = std::string(kHubHost);
  o.token_lifetime = kTokenLifetime;
  o.keepalive = std::chrono::seconds(30);
  o.tick_interval = std::chrono::milliseconds(200);
  return o;
}

class FakeSource final : public up::UpstreamSource {
 public:
  struct Queue {
    explicit Queue(core::Identity i) : id(std::move(i)) {}
    core::Identity id;
    uint32_t total = 0;
    std::set<uint64_t> unsent;
    std::vector<uint32_t> publishes;  // per seq
    std::vector<uint32_t> acks;       // per seq
    std::set<uint64_t> oversized;     // seqs sent with a payload over the limit
    uint64_t acked = 0;
    uint64_t not_acked = 0;
    uint64_t dropped = 0;
    bool cross_first = false;  // the first publish goes to another identity's topic
    std::optional<core::Identity> cross_target;
    std::chrono::steady_clock::time_point first_ack_after_mark{};
    bool wrong_key = false;
  };

  FakeSource(size_t payload_size, size_t max_bytes) : payload_size_(payload_size), max_bytes_(max_bytes) {}

  Queue& add(const core::Identity& id, uint32_t count) {
    Queue& q = queues_.try_emplace(id, id).first->second;
    for (uint32_t s = q.total; s < q.total + count; ++s) q.unsent.insert(s);
    q.total += count;
    q.publishes.resize(q.total);
    q.acks.resize(q.total);
    return q;
  }
  Queue& queue(const core::Identity& id) { return queues_.at(id); }
  bool allAcked() const {
    for (const auto& [id, q] : queues_) {
      if (q.acked + q.dropped < q.total) return false;
    }
    return true;
  }
  uint64_t totalAcked() const {
    uint64_t n = 0;
    for (const auto& [id, q] : queues_) n += q.acked;
    return n;
  }
  // Marks "now" so that each queue records the time of its first ack after it.
  void markForFirstAck() {
    mark_ = std::chrono::steady_clock::now();
    for (auto& [id, q] : queues_) q.first_ack_after_mark = {};
  }

  // UpstreamSource
  core::Result<up::UpstreamCredentials> credentials(const core::Identity& identity) override {
    ++credential_calls_;
    auto it = queues_.find(identity);
    if (it == queues_.end()) return core::notFound("unknown identity");
    std::string key = keyFor(identity);
    if (it->second.wrong_key) key = core::base64Encode("this-is-not-the-right-key-at-all");
    return up::UpstreamCredentials{identity, key};
  }
  bool fill(const core::Identity& identity, up::UpstreamWriter& writer, uint32_t max) override {
    Queue& q = queues_.at(identity);
    uint32_t n = 0;
    while (n < max && !q.unsent.empty()) {
      const uint64_t seq = *q.unsent.begin();
      topic_.clear();
      const std::string seq_text = std::to_string(seq);
      const up::TelemetryProperty props[] = {{"$.ct", "application/json"}, {"seq", seq_text}};
      const bool cross = q.cross_first && seq == 0 && q.cross_target;
      up::appendTelemetryTopic(topic_, cross ? *q.cross_target : identity, props);
      payload_ = cross ? std::string("CROSS-") : std::string();
      payload_ += identity.clientId() + "#" + seq_text;
      const bool oversize = q.oversized.count(seq) != 0;
      payload_.resize(oversize ? max_bytes_ + 1 : std::max(payload_size_, payload_.size()), '.');
      core::Status s = writer.publish(
          topic_, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload_.data()), payload_.size()), seq);
      if (s.isOk()) {
        q.unsent.erase(q.unsent.begin());
        ++q.publishes[seq];
        ++n;
      } else if (s.code() == core::StatusCode::kResourceExhausted || s.code() == core::StatusCode::kInvalidArgument) {
        q.unsent.erase(q.unsent.begin());
        ++q.dropped;
      } else {
        break;
      }
    }
    return !q.unsent.empty();
  }
  void onPublishDone(const core::Identity& identity, uint64_t cookie, const core::Status& status) override {
    Queue& q = queues_.at(identity);
    if (status.isOk()) {
      ++q.acks.at(cookie);
      ++q.acked;
      if (mark_ != std::chrono::steady_clock::time_point{} && q.first_ack_after_mark == std::chrono::steady_clock::time_point{}) {
        q.first_ack_after_mark = std::chrono::steady_clock::now();
      }
    } else {
      ++q.not_acked;
      q.unsent.insert(cookie);
    }
  }

  void onConnected(const core::Identity& identity) override { connected_.push_back(identity); }
  void onMessage(const core::Identity& identity, std::string_view topic, std::span<const uint8_t> payload) override {
    inbound_.push_back({identity, std::string(topic), std::string(payload.begin(), payload.end())});
  }

  int credential_calls_ = 0;
  std::vector<core::Identity> connected_;  // onConnected calls, in order
  struct Inbound {
    core::Identity identity;
    std::string topic;
    std::string payload;
  };
  std::vector<Inbound> inbound_;  // onMessage calls, in order

 private:
  size_t payload_size_;
  size_t max_bytes_;
  std::map<core::Identity, Queue> queues_;
  std::string topic_;
  std::string payload_;
  std::chrono::steady_clock::time_point mark_{};
};

}  // namespace edgehub::testing::upstream
