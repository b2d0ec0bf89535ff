#include "transports/mqtt/server/server.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/log/logger.h"
#include "core/loop/tcp.h"
#include "core/loop/timer.h"
#include "core/twin/twin_service.h"
#include "transports/auth/sas_token.h"
#include "transports/auth/username.h"
#include "transports/iothub/message.h"
#include "transports/iothub/topic.h"
#include "transports/mqtt/decoder.h"
#include "transports/mqtt/encoder.h"

namespace edgehub::transports::mqtt {

namespace {

constexpr std::string_view kLog = "mqtt";
// A CONNECT carries a client id, a username and a SAS token (and maybe a will): 64 KiB is far
// above any real one and bounds what an unauthenticated peer can make us buffer.
constexpr size_t kMaxConnectBytes = 64 * 1024;
// The topic of a PUBLISH may carry a long property bag on top of the message itself.
constexpr uint32_t kTopicSlack = 64 * 1024 + 16;

// The parts of a CONNECT a session keeps (the packet's views die with the read buffer).
struct ConnectInfo {
  std::optional<core::Identity> identity;  // set once authenticated
  std::string client_id;
  bool clean_session = false;
  uint16_t keep_alive_seconds = 0;
  bool has_will = false;
  std::string will_topic;
  std::vector<uint8_t> will_payload;
  uint8_t will_qos = 0;
};

// Dialect §8: the routed size is the body plus every property name and value.
size_t routedSize(const fb::Message& m) {
  size_t n = m.body() != nullptr ? m.body()->size() : 0;
  auto add_props = [&n](const flatbuffers::Vector<flatbuffers::Offset<fb::Property>>* props) {
    if (props == nullptr) return;
    for (const fb::Property* p : *props) {
      n += p->name()->size() + (p->value() != nullptr ? p->value()->size() : 0);
    }
  };
  add_props(m.properties());
  for (size_t f = 0; f < static_cast<size_t>(core::SystemField::kCount); ++f) {
    auto field = static_cast<core::SystemField>(f);
    if (auto v = core::systemFieldValue(m, field)) n += core::systemFieldName(field).size() + v->size();
  }
  add_props(m.system()->extra());
  return n;
}

int64_t systemNowMs(const core::TimeSource& time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.systemTime().time_since_epoch()).count();
}

// Completion for messages nobody acknowledges (wills).
class NoAckCompletion final : public core::StoreCompletion {
 public:
  void onStored(uint64_t, const core::Status& status) override {
    if (!status.isOk()) HUB_LOG_WARN(kLog, "will message not stored: %s", status.toString().c_str());
  }
};
NoAckCompletion g_no_ack;

// Persistent (clean session 0) state of one identity: its subscriptions. Stored in the message
// store (MessageStore::saveSession) as two bytes: version 1 | inputs QoS + 1 (0 = none) and flags.
struct SessionRecord {
  int8_t inputs_qos = -1;  // -1: not subscribed to its inputs
  bool twin_responses = false;
  bool desired_patches = false;
  bool method_requests = false;
  bool c2d = false;

  std::string encode() const {
    std::string out(3, '\0');
    out[0] = 1;
    out[1] = static_cast<char>(inputs_qos + 1);
    out[2] = static_cast<char>((twin_responses ? 1 : 0) | (desired_patches ? 2 : 0) | (method_requests ? 4 : 0) |
                               (c2d ? 8 : 0));
    return out;
  }
  static std::optional<SessionRecord> decode(std::string_view in) {
    if (in.size() != 3 || in[0] != 1 || static_cast<uint8_t>(in[1]) > 2) return std::nullopt;
    SessionRecord r;
    r.inputs_qos = static_cast<int8_t>(static_cast<uint8_t>(in[1]) - 1);
    const auto flags = static_cast<uint8_t>(in[2]);
    r.twin_responses = flags & 1;
    r.desired_patches = flags & 2;
    r.method_requests = flags & 4;
    r.c2d = flags & 8;
    return r;
  }
};

}  // namespace

// ---- per-loop state ----------------------------------------------------------------------

// The store's completions arrive here, not at a session: with an asynchronous store a session
// may be gone (closed, taken over) by the time its message is durable. The token names the
// session and the packet id, and a completion for a session that no longer exists is dropped
// (its client never got the PUBACK, so it sends the message again).
struct MqttServer::LoopState final : core::TurnEndHook, core::StoreCompletion, core::twin::ModuleSide {
  LoopState(MqttServer& s, uint32_t i, core::Shard& sh) : server(s), index(i), shard(sh) {}
  void onTurnEnd() override;
  void onStored(uint64_t token, const core::Status& status) override;
  // core::twin::ModuleSide: what the cloud (the upstream bridge on this loop) asks of modules.
  void onDesiredChanged(const std::string& client_id, int64_t version, const std::string& patch_json) override;
  void invokeMethod(const std::string& client_id, const std::string& method, std::string payload,
                    std::chrono::milliseconds timeout, MethodDone done) override;
  core::twin::CloudSide* cloudSide() const {
    return server.options_.twins == nullptr ? nullptr : server.options_.twins->cloudSide(index);
  }
  static uint64_t token(uint64_t session_id, uint16_t packet_id) { return session_id << 16 | packet_id; }

  // A reported patch waiting for its twin write: answered (204) and announced (the twin change
  // notification) once the store has it.
  struct TwinReply {
    uint64_t session_id = 0;
    std::string rid;
    int64_t version = 0;
    std::string patch;
    core::Identity sender;
  };
  struct TwinSaves final : core::StoreCompletion {
    explicit TwinSaves(LoopState& s) : state(s) {}
    void onStored(uint64_t token, const core::Status& status) override;
    LoopState& state;
    uint64_t next_token = 1;
    std::unordered_map<uint64_t, TwinReply> pending;
  };
  // Completions of messages the hub makes itself (twin change notifications): nobody to answer.
  struct Ignored final : core::StoreCompletion {
    void onStored(uint64_t, const core::Status& status) override {
      if (!status.isOk()) HUB_LOG_WARN("twin", "twin change notification not stored: %s", status.toString().c_str());
    }
  };
  TwinSaves twin_saves{*this};
  Ignored ignored;
  core::MessageBuilder notification_builder;

  // Direct methods (issue 06). A call lives on the target module's loop from the moment it is
  // sent to the module until its response or deadline; the answer is posted to the caller's loop.
  struct MethodCall {
    uint32_t caller_loop = 0;
    uint64_t caller_session = 0;
    std::string caller_rid;
    uint64_t target_session = 0;
    uint64_t deadline_ms = 0;
    MethodDone done;  // set: a caller on this loop (the cloud), answered directly instead
  };
  std::unordered_map<uint32_t, MethodCall> method_calls;  // by the $rid sent to the module
  uint32_t next_method_rid = 1;
  std::unique_ptr<core::Timer> method_timer;  // expires calls (504); created on first use, on while any is pending
  // On the target's loop: sends the call to the module's session, or answers 404 at once.
  void startMethodCall(const std::string& target_client_id, const std::string& method, const std::string& payload,
                       MethodCall call);
  // On the target's loop: the module answered (or the deadline passed, or it went away).
  void finishMethodCall(uint32_t rid, int status, std::string payload);
  void expireMethodCalls();
  // Answers the caller: `done` for a caller on this loop, else a post to the caller's loop,
  // where its session (if still there) publishes the result.
  void replyToCaller(MethodCall& call, int status, std::string payload);

  MqttServer& server;
  const uint32_t index;
  core::Shard& shard;
  bool shut_down = false;
  uint64_t next_session_id = 1;
  std::unordered_map<std::string, Session*> sessions_by_client;
  std::unordered_map<uint64_t, Session*> sessions_by_id;
  std::unordered_map<std::string, SessionRecord> records;
  std::vector<Session*> dirty;
  std::vector<Session*> flushing;
  std::unordered_set<Pending*> pending;
  // Shard 0 only: the listeners.
  class Acceptor;
  std::unique_ptr<Acceptor> plain_acceptor;
  std::unique_ptr<Acceptor> tls_acceptor;
  core::TcpListenerPtr plain_listener;
  core::TcpListenerPtr tls_listener;
  core::Loop& loop() { return shard.loop(); }
  void markDirty(Session* s);
};

// ---- Session -----------------------------------------------------------------------------

class MqttServer::Session final : public core::DeferredDeletable,
                                  private LinkHandler,
                                  private PacketHandler,
                                  private core::DeliveryConsumer {
 public:
  Session(LoopState& state, std::unique_ptr<Link> link, ConnectInfo info)
      : state_(state),
        server_(state.server),
        shard_(state.shard),
        link_(std::move(link)),
        info_(std::move(info)),
        identity_(*info_.identity),
        decoder_(DecoderOptions{Role::kServer, server_.options_.max_message_bytes + kTopicSlack, 4096}, *this),
        keepalive_timer_(state.loop(), [this] { onKeepaliveTimer(); }),
        id_(state.next_session_id++) {
    link_->setHandler(*this);
    server_.sessions_.fetch_add(1, std::memory_order_relaxed);
    slots_.resize(server_.options_.delivery_window);
    free_slots_.reserve(slots_.size());
    for (size_t i = slots_.size(); i > 0; --i) free_slots_.push_back(static_cast<uint16_t>(i - 1));
  }

  ~Session() override {
    detach();
    if (queued_for_flush_) std::erase(state_.dirty, this);
    std::replace(state_.flushing.begin(), state_.flushing.end(), this, static_cast<Session*>(nullptr));
    server_.sessions_.fetch_sub(1, std::memory_order_relaxed);
  }

  uint64_t id() const { return id_; }
  friend struct LoopState;

  // Takes the identity's place (closing a previous session), answers the CONNECT and starts.
  void start(std::span<const uint8_t> leftover) {
    auto& by_client = state_.sessions_by_client;
    if (auto it = by_client.find(info_.client_id); it != by_client.end() && it->second != this) {
      Session* old = it->second;
      shard_.counters().add(core::Counter::k_sessions_taken_over);
      HUB_LOG_INFO(kLog, "%s: new connection from %s takes over the session", info_.client_id.c_str(),
                   link_->peer().c_str());
      old->closeWith(core::Status::ok(), /*send_will=*/false, "taken over by a new connection");
    }
    by_client[info_.client_id] = this;
    state_.sessions_by_id[id_] = this;
    if (core::twin::CloudSide* cloud = state_.cloudSide()) cloud->onModulePresence(info_.client_id, true);

    bool session_present = false;
    if (info_.clean_session) {
      if (state_.records.erase(info_.client_id) != 0) persistRecord(nullptr);
    } else {
      session_present = state_.records.count(info_.client_id) != 0;
    }
    appendConnack(link_->output(), Connack{session_present, ConnackCode::kAccepted});
    if (!info_.clean_session) {
      record_ = &state_.records[info_.client_id];
      if (!session_present) persistRecord(record_);
    } else {
      record_ = &transient_record_;
    }
    if (identity_.isModule()) mailbox_ = shard_.mailbox(info_.client_id);
    if (record_->inputs_qos >= 0) attachMailbox();
    // A resumed session keeps its subscription to desired patches without subscribing again:
    // what changed while it was away (a new manifest, the cloud) goes to it now, as it would on
    // a new subscription.
    if (session_present && record_->desired_patches) catchUpDesired();

    uint32_t ka = info_.keep_alive_seconds;
    auto cap = std::chrono::duration_cast<std::chrono::milliseconds>(server_.options_.max_keepalive);
    keepalive_ms_ = ka == 0 ? cap.count() : std::min<int64_t>(cap.count(), int64_t{ka} * 1500);
    last_activity_ms_ = state_.loop().nowMs();
    keepalive_timer_.enable(std::chrono::milliseconds(keepalive_ms_));
    HUB_LOG_DEBUG(kLog, "%s: connected from %s%s (clean session %d, keep-alive %us)",
                  info_.client_id.c_str(), link_->peer().c_str(), link_->secure() ? " over TLS" : "",
                  info_.clean_session ? 1 : 0, ka);
    if (!leftover.empty()) onLinkData(leftover);
    if (closing_) return;
    core::Status s = link_->startReading();
    if (!s.isOk()) {
      closeWith(s, true, "cannot read");
      return;
    }
    markDirty();
  }

  // Flushes what this turn produced: deliveries up to the window, then one write.
  void flushTurn() {
    queued_for_flush_ = false;
    if (closing_) return;
    pump();
    core::Status s = link_->flush();
    if (!s.isOk()) {
      closeWith(s, true, "write failed");
      return;
    }
    if (link_->pendingBytes() > server_.options_.max_pending_output && !paused_output_) {
      paused_output_ = true;
      updateReading();
    }
  }

  void resumeFromBudget() {
    if (!paused_budget_) return;
    paused_budget_ = false;
    updateReading();
  }

  // Closes the connection. send_will: an abnormal end (MQTT-3.1.2-8).
  void closeWith(const core::Status& reason, bool send_will, std::string_view why) {
    if (closing_) return;
    closing_ = true;
    if (!reason.isOk() || !why.empty()) {
      const std::string detail = reason.isOk() ? std::string() : ": " + reason.toString();
      HUB_LOG_INFO(kLog, "%s: connection from %s closed: %.*s%s", info_.client_id.c_str(),
                   link_->peer().c_str(), static_cast<int>(why.size()), why.data(), detail.c_str());
    }
    if (send_will && info_.has_will) publishWill();
    detach();
    keepalive_timer_.disable();
    link_->close();
    state_.loop().deferredDelete(std::unique_ptr<core::DeferredDeletable>(this));
  }

 private:
  // ---- LinkHandler ----
  void onLinkData(std::span<const uint8_t> data) override {
    if (closing_) return;
    last_activity_ms_ = state_.loop().nowMs();
    core::Status s = decoder_.feed(data);
    if (closing_) return;
    if (!s.isOk()) {
      if (graceful_) {
        closeWith(core::Status::ok(), false, "");
        return;
      }
      if (decoder_.error() == DecodeError::kPacketTooLarge) {
        shard_.counters().add(core::Counter::k_oversized_messages);
      } else if (decoder_.error() != DecodeError::kHandlerError) {
        shard_.counters().add(core::Counter::k_protocol_errors);
      }
      closeWith(s, true, pending_close_why_.empty() ? "malformed packet" : pending_close_why_);
      return;
    }
    markDirty();
  }

  void onLinkWritable() override {
    if (paused_output_ && link_->pendingBytes() <= server_.options_.max_pending_output / 2) {
      paused_output_ = false;
      updateReading();
      markDirty();
    }
  }

  void onLinkClosed(const core::Status& reason) override {
    if (closing_) return;
    closeWith(reason, !graceful_, graceful_ ? "" : "connection lost");
  }

  // ---- PacketHandler ----
  core::Status onPacket(const Packet& packet) override {
    switch (packetTypeOf(packet)) {
      case PacketType::kPublish:
        return onPublish(std::get<Publish>(packet));
      case PacketType::kPuback:
        onPuback(std::get<Puback>(packet).packet_id);
        return core::Status::ok();
      case PacketType::kSubscribe:
        return onSubscribe(std::get<Subscribe>(packet));
      case PacketType::kUnsubscribe:
        onUnsubscribe(std::get<Unsubscribe>(packet));
        return core::Status::ok();
      case PacketType::kPingreq:
        appendPingresp(link_->output());
        return core::Status::ok();
      case PacketType::kDisconnect:
        graceful_ = true;
        return refuse("client disconnected", core::Status::ok(), core::Counter::kCount);
      case PacketType::kConnect:
        return refuse("protocol error", core::invalidArgument("second CONNECT on a connection (MQTT-3.1.0-2)"),
                      core::Counter::k_protocol_errors);
      case PacketType::kPubrec:
      case PacketType::kPubrel:
      case PacketType::kPubcomp:
        return refuse("protocol error", core::invalidArgument("QoS 2 flow packets are not supported"),
                      core::Counter::k_protocol_errors);
      default:
        return refuse("protocol error", core::invalidArgument("unexpected packet from a client"),
                      core::Counter::k_protocol_errors);
    }
  }

  // Ends decoding with a reason; the connection closes once feed() returns.
  core::Status refuse(std::string why, core::Status status, core::Counter counter) {
    if (counter != core::Counter::kCount) shard_.counters().add(counter);
    pending_close_why_ = std::move(why);
    if (status.isOk()) return core::failedPrecondition("closed");
    return status;
  }

  core::Status onPublish(const Publish& p) {
    if (p.qos > 1) {
      return refuse("QoS 2 is not supported (as in IoT Hub)",
                    core::invalidArgument("PUBLISH with QoS 2 on '" + std::string(p.topic) + "'"),
                    core::Counter::k_protocol_errors);
    }
    auto topic = iothub::parsePublishTopic(p.topic);
    if (!topic.isOk()) {
      return refuse("publish to a topic outside the IoT Hub dialect", topic.status(),
                    core::Counter::k_publish_invalid);
    }
    switch (topic.value().kind) {
      case iothub::TopicKind::kTelemetry:
        return onTelemetry(p, topic.value());
      case iothub::TopicKind::kTwinGet:
        if (server_.options_.twins == nullptr) {
          refuseTwinRequest(topic.value().request_id);
        } else {
          onTwinGet(topic.value().request_id);
        }
        break;
      case iothub::TopicKind::kTwinReportedPatch:
        if (server_.options_.twins == nullptr) {
          refuseTwinRequest(topic.value().request_id);
        } else {
          onTwinReportedPatch(topic.value().request_id, p.payload);
        }
        break;
      case iothub::TopicKind::kMethodResponse:
        onMethodResponse(topic.value(), p.payload);
        break;
      case iothub::TopicKind::kMethodInvoke:
        if (core::Status allowed = iothub::checkPublishAllowed(identity_, topic.value()); !allowed.isOk()) {
          return refuse("publish not authorized", allowed, core::Counter::k_publish_forbidden);
        }
        onMethodInvoke(topic.value(), p.payload);
        break;
    }
    if (p.qos == 1) appendPuback(link_->output(), p.packet_id);
    return core::Status::ok();
  }

  core::Status onTelemetry(const Publish& p, const iothub::ParsedTopic& topic) {
    core::Status allowed = iothub::checkPublishAllowed(identity_, topic);
    if (!allowed.isOk()) {
      return refuse("publish not authorized", allowed, core::Counter::k_publish_forbidden);
    }
    auto message = iothub::buildTelemetryMessage(builder_, bag_parser_, identity_, topic, p.payload,
                                                 server_.engine_.nextSequence(), systemNowMs(server_.time_));
    if (!message.isOk()) {
      return refuse("malformed telemetry", message.status(), core::Counter::k_publish_invalid);
    }
    const size_t size = routedSize(message.value().message());
    if (size > server_.options_.max_message_bytes) {
      return refuse("message too large",
                    core::resourceExhausted("message of " + std::to_string(size) + " bytes exceeds the limit of " +
                                            std::to_string(server_.options_.max_message_bytes)),
                    core::Counter::k_oversized_messages);
    }
    core::Shard::IngestResult r =
        shard_.ingest(message.value(), state_, LoopState::token(id_, p.qos == 1 ? p.packet_id : 0));
    if (r.over_budget && !paused_budget_) {
      paused_budget_ = true;
      shard_.counters().add(core::Counter::k_backpressure_pauses);
      HUB_LOG_DEBUG(kLog, "%s: paused: %s is over its queue budget", info_.client_id.c_str(),
                    server_.engine_.endpoints()[r.blocked_endpoint].name.c_str());
      updateReading();
      shard_.waitForCapacity(r.blocked_endpoint, id_);
    }
    return core::Status::ok();
  }

  // ---- twins (issue 06): only the session's own twin is ever read or patched ----

  void sendTwinResponse(int status, std::string_view rid, std::optional<int64_t> version, std::string_view body) {
    // $rid first and verbatim (dialect section 5): the C SDK parses it back with atol.
    topic_scratch_.assign("$iothub/twin/res/").append(std::to_string(status)).append("/?$rid=").append(rid);
    if (version) topic_scratch_.append("&$version=").append(std::to_string(*version));
    appendPublish(link_->output(),
                  Publish{topic_scratch_, 0, 0, false, false,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size())})
        .permitUncheckedError();
    markDirty();
  }

  void onTwinGet(std::string_view rid) {
    if (!record_->twin_responses) {
      HUB_LOG_INFO(kLog, "%s: twin GET without a twin response subscription ignored", info_.client_id.c_str());
      return;
    }
    core::twin::TwinEntry& e = server_.options_.twins->entry(shard_.index(), info_.client_id);
    e.desired_version_seen = e.twin.desiredVersion();
    const std::string body = e.twin.getResponse();
    sendTwinResponse(200, rid, std::nullopt, body);
  }

  void onTwinReportedPatch(std::string_view rid, std::span<const uint8_t> payload) {
    if (!record_->twin_responses) {
      HUB_LOG_INFO(kLog, "%s: reported patch without a twin response subscription ignored", info_.client_id.c_str());
      return;
    }
    const std::string_view patch(reinterpret_cast<const char*>(payload.data()), payload.size());
    core::twin::TwinEntry& e = server_.options_.twins->entry(shard_.index(), info_.client_id);
    auto version = e.twin.patchReported(patch, systemNowMs(server_.time_));
    if (!version.isOk()) {
      // Malformed, not an object, too large or too deep: 400 and the twin is unchanged.
      HUB_LOG_INFO(kLog, "%s: reported patch refused: %s", info_.client_id.c_str(),
                   std::string(version.status().message()).c_str());
      std::string body = R"({"message":")";
      core::appendJsonEscaped(body, version.status().message());
      body.append("\"}");
      sendTwinResponse(400, rid, std::nullopt, body);
      return;
    }
    auto& saves = state_.twin_saves;
    const uint64_t token = saves.next_token++;
    saves.pending.emplace(token, LoopState::TwinReply{id_, std::string(rid), version.value(), std::string(patch), identity_});
    server_.engine_.store().saveTwin(info_.client_id, e.twin.serialize(), state_.loop(), saves, token);
  }

  // ---- direct methods (issue 06) ----

  // The operator ($edgeHub) calls a method of a module of this device: the call goes to the
  // module's home loop, which forwards it to the module's session if it is connected and
  // subscribed to method requests, and 404 at once otherwise.
  void onMethodInvoke(const iothub::ParsedTopic& t, std::span<const uint8_t> payload) {
    constexpr int32_t kDefaultTimeoutSecs = 30;
    LoopState::MethodCall call;
    call.caller_loop = state_.index;
    call.caller_session = id_;
    call.caller_rid.assign(t.request_id);
    call.deadline_ms = static_cast<uint64_t>(t.timeout_secs > 0 ? t.timeout_secs : kDefaultTimeoutSecs) * 1000;
    std::string target = identity_.deviceId() + "/" + std::string(t.target_module);
    std::string method(t.method_name);
    std::string body(reinterpret_cast<const char*>(payload.data()), payload.size());
    const uint32_t home = server_.engine_.homeShardOf(target);
    LoopState* target_state = server_.loops_[home].get();
    server_.postTo(home, [target_state, target = std::move(target), method = std::move(method),
                          body = std::move(body), call = std::move(call)]() mutable {
      target_state->startMethodCall(target, method, body, std::move(call));
    });
  }

  // Sends a method request to this (module) session.
  bool sendMethodRequest(const std::string& method, uint32_t rid, const std::string& payload) {
    if (closing_ || !record_->method_requests) return false;
    topic_scratch_.assign("$iothub/methods/POST/").append(method).append("/?$rid=").append(std::to_string(rid));
    appendPublish(link_->output(),
                  Publish{topic_scratch_, 0, 0, false, false,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size())})
        .permitUncheckedError();
    markDirty();
    return true;
  }

  void onMethodResponse(const iothub::ParsedTopic& t, std::span<const uint8_t> payload) {
    uint32_t rid = 0;
    auto [ptr, ec] = std::from_chars(t.request_id.data(), t.request_id.data() + t.request_id.size(), rid);
    auto it = ec == std::errc() && ptr == t.request_id.data() + t.request_id.size() ? state_.method_calls.find(rid)
                                                                                     : state_.method_calls.end();
    if (it == state_.method_calls.end() || it->second.target_session != id_) {
      HUB_LOG_DEBUG(kLog, "%s: method response for unknown request '%.*s' ignored", info_.client_id.c_str(),
                    static_cast<int>(t.request_id.size()), t.request_id.data());
      return;
    }
    state_.finishMethodCall(rid, t.method_status,
                            std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
  }

  // On the caller's loop: the result of a call this (operator) session made.
  void deliverMethodResult(const std::string& rid, int status, const std::string& payload) {
    if (closing_) return;
    if (!method_results_) {
      HUB_LOG_INFO(kLog, "%s: method result without a $edgehub/methods/res/# subscription dropped",
                   info_.client_id.c_str());
      return;
    }
    topic_scratch_.assign("$edgehub/methods/res/").append(std::to_string(status)).append("/?$rid=").append(rid);
    appendPublish(link_->output(),
                  Publish{topic_scratch_, 0, 0, false, false,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size())})
        .permitUncheckedError();
    markDirty();
  }

  // The store has the patched twin: answer and announce it.
  void onTwinSaved(const LoopState::TwinReply& reply, const core::Status& status) {
    if (closing_) return;
    if (!status.isOk()) {
      sendTwinResponse(500, reply.rid, std::nullopt, R"({"message":"the twin could not be stored"})");
      return;
    }
    sendTwinResponse(204, reply.rid, reply.version, {});
  }

  // The cloud changed the desired section (ModuleSide::onDesiredChanged): the difference goes to
  // a subscribed session now; one that is not subscribed catches up when it subscribes.
  void sendDesiredPatch(int64_t version, const std::string& patch_json) {
    if (closing_ || !record_->desired_patches || server_.options_.twins == nullptr) return;
    core::twin::TwinEntry& e = server_.options_.twins->entry(shard_.index(), info_.client_id);
    if (e.desired_version_seen >= version) return;
    e.desired_version_seen = version;
    topic_scratch_.assign("$iothub/twin/PATCH/properties/desired/?$version=").append(std::to_string(version));
    appendPublish(link_->output(),
                  Publish{topic_scratch_, 0, 0, false, false,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(patch_json.data()),
                                                   patch_json.size())})
        .permitUncheckedError();
    markDirty();
  }

  // A module subscribing to desired patches with an older desired version than its twin's gets
  // the whole desired section first: nothing that changed while it was away is lost
  // (Azure/iotedge#2757, #7148).
  void catchUpDesired() {
    if (server_.options_.twins == nullptr) return;
    core::twin::TwinEntry& e = server_.options_.twins->entry(shard_.index(), info_.client_id);
    const int64_t v = e.twin.desiredVersion();
    if (e.desired_version_seen >= v) return;
    // A twin whose desired section was never set (version 1, empty) has nothing to catch up on.
    if (v <= 1 && e.twin.desiredJson() == "{}") return;
    e.desired_version_seen = v;
    topic_scratch_.assign("$iothub/twin/PATCH/properties/desired/?$version=").append(std::to_string(v));
    const std::string body = e.twin.desiredPatchForCatchUp();
    appendPublish(link_->output(),
                  Publish{topic_scratch_, 0, 0, false, false,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size())})
        .permitUncheckedError();
    markDirty();
  }

  void refuseTwinRequest(std::string_view rid) {
    if (!record_->twin_responses) {
      HUB_LOG_INFO(kLog, "%s: twin request without a twin response subscription ignored", info_.client_id.c_str());
      return;
    }
    // Twins arrive with a later issue; until then the request gets a definite answer.
    topic_scratch_.assign("$iothub/twin/res/501/?$rid=").append(rid);
    static constexpr std::string_view kBody = R"({"message":"module twins are not supported by this hub yet"})";
    appendPublish(link_->output(),
                  Publish{topic_scratch_, 0, 0, false, false,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kBody.data()), kBody.size())})
        .permitUncheckedError();
  }

  // The message is in every destination queue (and durable per the store).
  void onStored(uint16_t packet_id, const core::Status& status) {
    if (!status.isOk()) {
      // No PUBACK: the client keeps the message and sends it again on its next connection.
      HUB_LOG_WARN(kLog, "%s: message not stored: %s", info_.client_id.c_str(), status.toString().c_str());
      if (!closing_) closeWith(status, false, "store refused a message");
      return;
    }
    if (packet_id != 0 && !closing_) {
      appendPuback(link_->output(), packet_id);
      markDirty();
    }
  }

  core::Status onSubscribe(const Subscribe& s) {
    codes_.clear();
    for (const SubscribeTopic& t : s.topics) {
      const uint8_t granted = std::min<uint8_t>(t.requested_qos, 1);
      iothub::ParsedFilter f = iothub::classifySubscribeFilter(t.filter);
      if (!iothub::subscribeAllowed(identity_, t.filter)) {
        shard_.counters().add(core::Counter::k_subscribe_forbidden);
        HUB_LOG_INFO(kLog, "%s: subscription to '%.*s' refused", info_.client_id.c_str(),
                     static_cast<int>(t.filter.size()), t.filter.data());
        codes_.push_back(kSubackFailure);
        continue;
      }
      switch (f.kind) {
        case iothub::FilterKind::kModuleInputs:
          record_->inputs_qos = static_cast<int8_t>(granted);
          attachMailbox();
          break;
        case iothub::FilterKind::kC2d:
          record_->c2d = true;
          break;
        case iothub::FilterKind::kTwinResponses:
          record_->twin_responses = true;
          break;
        case iothub::FilterKind::kTwinDesiredPatches:
          record_->desired_patches = true;
          break;
        case iothub::FilterKind::kMethodRequests:
          record_->method_requests = true;
          break;
        case iothub::FilterKind::kMethodInvokeResults:
          method_results_ = true;
          break;
        case iothub::FilterKind::kOther:
          break;
      }
      codes_.push_back(granted);
    }
    if (!info_.clean_session) persistRecord(record_);
    core::Status st = appendSuback(link_->output(), s.packet_id, codes_);
    if (st.isOk() && record_->desired_patches) catchUpDesired();
    return st;
  }

  // Writes the identity's session record to the store (before the SUBACK/CONNACK leaves), so
  // that clean-session-0 subscriptions survive a hub restart. nullptr deletes it.
  void persistRecord(const SessionRecord* record) {
    core::Status s = server_.engine_.store().saveSession(info_.client_id, record ? record->encode() : std::string());
    if (!s.isOk()) HUB_LOG_WARN(kLog, "%s: session not stored: %s", info_.client_id.c_str(), s.toString().c_str());
  }

  void onUnsubscribe(const Unsubscribe& u) {
    for (std::string_view filter : u.filters) {
      switch (iothub::classifySubscribeFilter(filter).kind) {
        case iothub::FilterKind::kModuleInputs:
          if (iothub::subscribeAllowed(identity_, filter)) {
            record_->inputs_qos = -1;
            if (mailbox_ != nullptr && mailbox_->consumer == this) mailbox_->consumer = nullptr;
          }
          break;
        case iothub::FilterKind::kC2d:
          record_->c2d = false;
          break;
        case iothub::FilterKind::kTwinResponses:
          record_->twin_responses = false;
          break;
        case iothub::FilterKind::kTwinDesiredPatches:
          record_->desired_patches = false;
          break;
        case iothub::FilterKind::kMethodRequests:
          record_->method_requests = false;
          break;
        case iothub::FilterKind::kMethodInvokeResults:
          method_results_ = false;
          break;
        case iothub::FilterKind::kOther:
          break;
      }
    }
    if (!info_.clean_session) persistRecord(record_);
    appendUnsuback(link_->output(), u.packet_id);
  }

  // ---- delivery ----
  void attachMailbox() {
    if (mailbox_ == nullptr || closing_) return;
    if (mailbox_->consumer != nullptr && mailbox_->consumer != this) {
      // Only possible transiently during a takeover, which detached the old session already.
      return;
    }
    mailbox_->consumer = this;
    markDirty();
  }

  void onDeliveryAvailable() override { markDirty(); }

  // Called per delivered message and per PUBACK: the flag keeps it O(1) however many sessions
  // of the loop are waiting for the turn-end flush.
  void markDirty() {
    if (queued_for_flush_) return;
    queued_for_flush_ = true;
    state_.markDirty(this);
  }

  void pump() {
    if (mailbox_ == nullptr || mailbox_->consumer != this || record_->inputs_qos < 0) return;
    const bool qos1 = record_->inputs_qos == 1;
    core::Delivery d;
    while (!paused_output_ && (!qos1 || !free_slots_.empty())) {
      if (link_->pendingBytes() > server_.options_.max_pending_output) {
        paused_output_ = true;
        updateReading();
        break;
      }
      if (!shard_.pop(*mailbox_, d)) break;
      const core::EndpointInfo& endpoint = server_.engine_.endpoints()[d.endpoint];
      topic_scratch_.clear();
      core::Status s = iothub::encodeDeliveryTopic(identity_, endpoint.input, d.message.message(), topic_scratch_);
      if (!s.isOk()) {
        // Cannot happen for a module identity; never lose the message over it.
        HUB_LOG_ERROR(kLog, "%s: cannot encode delivery topic: %s", info_.client_id.c_str(), s.toString().c_str());
        shard_.requeue(std::move(d));
        break;
      }
      const auto* body = d.message->body();
      std::span<const uint8_t> payload = body != nullptr ? std::span<const uint8_t>(body->data(), body->size())
                                                         : std::span<const uint8_t>();
      uint16_t packet_id = 0;
      if (qos1) {
        const uint16_t slot = free_slots_.back();
        free_slots_.pop_back();
        packet_id = static_cast<uint16_t>(slot + 1);
      }
      s = appendPublish(link_->output(), Publish{topic_scratch_, packet_id, static_cast<uint8_t>(qos1 ? 1 : 0),
                                                 qos1 && d.redelivery, false, payload});
      if (!s.isOk()) {
        HUB_LOG_ERROR(kLog, "%s: cannot encode delivery: %s", info_.client_id.c_str(), s.toString().c_str());
        if (qos1) free_slots_.push_back(static_cast<uint16_t>(packet_id - 1));
        shard_.requeue(std::move(d));
        break;
      }
      shard_.counters().add(core::Counter::k_messages_delivered);
      if (d.redelivery) shard_.counters().add(core::Counter::k_messages_redelivered);
      if (qos1) {
        Slot& slot = slots_[packet_id - 1];
        slot.delivery = std::move(d);
        slot.send_order = ++send_counter_;
        slot.used = true;
      } else {
        shard_.acknowledge(d);
        d = core::Delivery{};
      }
    }
  }

  void onPuback(uint16_t packet_id) {
    if (packet_id == 0 || packet_id > slots_.size() || !slots_[packet_id - 1].used) {
      HUB_LOG_DEBUG(kLog, "%s: PUBACK for unknown packet id %u ignored", info_.client_id.c_str(), packet_id);
      return;
    }
    Slot& slot = slots_[packet_id - 1];
    shard_.acknowledge(slot.delivery);
    slot.delivery = core::Delivery{};
    slot.used = false;
    free_slots_.push_back(static_cast<uint16_t>(packet_id - 1));
  }

  // Gives the mailbox up; unacknowledged deliveries go back to the front of their queues in
  // their original order, to be sent again with DUP.
  void detach() {
    if (detached_) return;
    detached_ = true;
    auto& by_client = state_.sessions_by_client;
    if (auto it = by_client.find(info_.client_id); it != by_client.end() && it->second == this) {
      by_client.erase(it);
      if (core::twin::CloudSide* cloud = state_.cloudSide()) cloud->onModulePresence(info_.client_id, false);
    }
    state_.sessions_by_id.erase(id_);
    std::vector<Slot*> used;
    for (Slot& s : slots_) {
      if (s.used) used.push_back(&s);
    }
    std::sort(used.begin(), used.end(), [](Slot* a, Slot* b) { return a->send_order > b->send_order; });
    for (Slot* s : used) {
      shard_.requeue(std::move(s->delivery));
      s->used = false;
    }
    if (mailbox_ != nullptr && mailbox_->consumer == this) {
      mailbox_->consumer = nullptr;
      // Another session of the same module (takeover) may be waiting for these.
      if (!used.empty()) {
        auto it = by_client.find(info_.client_id);
        if (it != by_client.end()) it->second->attachMailbox();
      }
    }
  }

  void publishWill() {
    auto topic = iothub::parsePublishTopic(info_.will_topic);
    if (!topic.isOk() || topic.value().kind != iothub::TopicKind::kTelemetry ||
        !iothub::checkPublishAllowed(identity_, topic.value()).isOk()) {
      HUB_LOG_INFO(kLog, "%s: will on '%s' not published: not a telemetry topic of this identity",
                   info_.client_id.c_str(), info_.will_topic.c_str());
      return;
    }
    auto message = iothub::buildTelemetryMessage(builder_, bag_parser_, identity_, topic.value(),
                                                 info_.will_payload, server_.engine_.nextSequence(),
                                                 systemNowMs(server_.time_));
    if (!message.isOk()) return;
    shard_.ingest(message.value(), g_no_ack, 0);
  }

  void updateReading() {
    if (closing_) return;
    const bool want = !paused_budget_ && !paused_output_;
    if (want && !link_->reading()) {
      link_->startReading().permitUncheckedError();
    } else if (!want && link_->reading()) {
      link_->stopReading();
    }
  }

  void onKeepaliveTimer() {
    if (closing_) return;
    const int64_t idle = static_cast<int64_t>(state_.loop().nowMs() - last_activity_ms_);
    if (idle >= keepalive_ms_) {
      shard_.counters().add(core::Counter::k_keepalive_timeouts);
      closeWith(core::Status::ok(), true, "keep-alive timeout");
      return;
    }
    keepalive_timer_.enable(std::chrono::milliseconds(keepalive_ms_ - idle));
  }

  struct Slot {
    core::Delivery delivery;
    uint64_t send_order = 0;
    bool used = false;
  };

  LoopState& state_;
  MqttServer& server_;
  core::Shard& shard_;
  std::unique_ptr<Link> link_;
  ConnectInfo info_;
  const core::Identity identity_;
  Decoder decoder_;
  core::Timer keepalive_timer_;
  const uint64_t id_;
  core::MessageBuilder builder_;
  bool method_results_ = false;  // subscribed to $edgehub/methods/res/# (the operator identity)
  iothub::PropertyBagParser bag_parser_;
  core::ModuleMailbox* mailbox_ = nullptr;
  SessionRecord* record_ = nullptr;
  SessionRecord transient_record_;
  std::vector<Slot> slots_;
  std::vector<uint16_t> free_slots_;
  uint64_t send_counter_ = 0;
  std::string topic_scratch_;
  std::vector<uint8_t> codes_;
  std::string pending_close_why_;
  int64_t keepalive_ms_ = 0;
  uint64_t last_activity_ms_ = 0;
  bool queued_for_flush_ = false;  // in state_.dirty, waiting for the turn-end flush
  bool closing_ = false;
  bool graceful_ = false;
  bool detached_ = false;
  bool paused_budget_ = false;
  bool paused_output_ = false;
};

// REQUIRES: `s` is not queued yet (Session::markDirty keeps the flag).
void MqttServer::LoopState::markDirty(Session* s) {
  dirty.push_back(s);
  loop().callAtTurnEnd(this);
}

void MqttServer::LoopState::onStored(uint64_t token, const core::Status& status) {
  auto it = sessions_by_id.find(token >> 16);
  if (it == sessions_by_id.end()) return;
  it->second->onStored(static_cast<uint16_t>(token & 0xFFFF), status);
}

void MqttServer::LoopState::TwinSaves::onStored(uint64_t token, const core::Status& status) {
  auto it = pending.find(token);
  if (it == pending.end()) return;
  TwinReply reply = std::move(it->second);
  pending.erase(it);
  if (auto s = state.sessions_by_id.find(reply.session_id); s != state.sessions_by_id.end()) {
    s->second->onTwinSaved(reply, status);
  }
  if (!status.isOk()) return;
  if (core::twin::CloudSide* cloud = state.cloudSide()) cloud->onReportedStored(reply.sender.clientId());
  // The notification goes through the routes whether or not the patching session is still there.
  auto message = core::twin::TwinService::changeNotification(state.notification_builder, reply.sender, reply.version,
                                                             reply.patch, state.server.engine_.nextSequence(),
                                                             systemNowMs(state.server.time_));
  if (!message.isOk()) {
    HUB_LOG_WARN("twin", "%s: no twin change notification: %s", reply.sender.clientId().c_str(),
                 message.status().toString().c_str());
    return;
  }
  state.shard.ingest(message.value(), state.ignored, 0);
}

void MqttServer::LoopState::startMethodCall(const std::string& target_client_id, const std::string& method,
                                            const std::string& payload, MethodCall call) {
  auto it = sessions_by_client.find(target_client_id);
  if (it == sessions_by_client.end()) {
    replyToCaller(call, 404, R"({"message":"the module is not connected"})");
    return;
  }
  // The C SDK parses $rid as a number: small decimal ids, unique among the calls in flight here.
  uint32_t rid = next_method_rid;
  while (method_calls.count(rid) != 0 || rid == 0) rid = rid % 65535 + 1;
  next_method_rid = rid % 65535 + 1;
  if (!it->second->sendMethodRequest(method, rid, payload)) {
    replyToCaller(call, 404, R"({"message":"the module is not subscribed to method requests"})");
    return;
  }
  call.target_session = it->second->id();
  call.deadline_ms = loop().nowMs() + call.deadline_ms;  // the caller gave the timeout
  method_calls.emplace(rid, std::move(call));
  if (!method_timer) method_timer = std::make_unique<core::Timer>(loop(), [this] { expireMethodCalls(); });
  // Ticks only while calls are pending (disabled again by finishMethodCall).
  if (method_calls.size() == 1) method_timer->enable(std::chrono::milliseconds(100), std::chrono::milliseconds(100));
}

void MqttServer::LoopState::finishMethodCall(uint32_t rid, int status, std::string payload) {
  auto it = method_calls.find(rid);
  if (it == method_calls.end()) return;
  MethodCall call = std::move(it->second);
  method_calls.erase(it);
  if (method_calls.empty() && method_timer) method_timer->disable();
  replyToCaller(call, status, std::move(payload));
}

void MqttServer::LoopState::expireMethodCalls() {
  const uint64_t now = loop().nowMs();
  std::vector<std::pair<uint32_t, int>> done;  // Cold: 10 times a second while calls are pending.
  for (const auto& [rid, call] : method_calls) {
    if (sessions_by_id.count(call.target_session) == 0) {
      done.emplace_back(rid, 404);  // the module disconnected before answering
    } else if (now >= call.deadline_ms) {
      done.emplace_back(rid, 504);
    }
  }
  for (auto [rid, status] : done) {
    finishMethodCall(rid, status,
                     status == 504 ? R"({"message":"the module did not answer in time"})"
                                   : R"({"message":"the module disconnected before answering"})");
  }
}

void MqttServer::LoopState::replyToCaller(MethodCall& call, int status, std::string payload) {
  if (call.done) {
    // A caller on this loop (the cloud side): answered directly. Every caller of replyToCaller
    // has finished its bookkeeping first, and `done` only publishes (ModuleSide's contract).
    MethodDone done = std::move(call.done);
    done(status, std::move(payload));
    return;
  }
  LoopState* caller = server.loops_[call.caller_loop].get();
  server.postTo(call.caller_loop, [caller, caller_session = call.caller_session, rid = std::move(call.caller_rid),
                                   status, payload = std::move(payload)] {
    auto it = caller->sessions_by_id.find(caller_session);
    if (it != caller->sessions_by_id.end()) it->second->deliverMethodResult(rid, status, payload);
  });
}

void MqttServer::LoopState::invokeMethod(const std::string& client_id, const std::string& method,
                                         std::string payload, std::chrono::milliseconds timeout, MethodDone done) {
  MethodCall call;
  call.caller_loop = index;
  call.deadline_ms = static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 1));
  call.done = std::move(done);
  startMethodCall(client_id, method, payload, std::move(call));
}

void MqttServer::LoopState::onDesiredChanged(const std::string& client_id, int64_t version,
                                             const std::string& patch_json) {
  auto it = sessions_by_client.find(client_id);
  if (it != sessions_by_client.end()) it->second->sendDesiredPatch(version, patch_json);
}

void MqttServer::postTo(uint32_t loop_index, std::function<void()> fn) {
  // Cold (method calls); a full post queue is transient, and a lost post would lose an answer.
  core::Loop& target = loops_[loop_index]->loop();
  while (!target.post(fn)) std::this_thread::yield();
}

void MqttServer::LoopState::onTurnEnd() {
  flushing.swap(dirty);
  for (size_t i = 0; i < flushing.size(); ++i) {
    if (Session* s = flushing[i]) s->flushTurn();
  }
  flushing.clear();
}

// ---- Pending: a connection before its CONNECT is accepted ----------------------------------

class MqttServer::Pending final : public core::DeferredDeletable, private LinkHandler {
 public:
  Pending(LoopState& state, std::unique_ptr<Link> link)
      : state_(state), server_(state.server), link_(std::move(link)),
        timer_(state.loop(), [this] { onTimeout(); }) {
    link_->setHandler(*this);
    state_.pending.insert(this);
  }
  ~Pending() override { state_.pending.erase(this); }

  void start() {
    timer_.enable(server_.options_.connect_timeout);
    core::Status s = link_->startReading();
    if (!s.isOk()) finish();
  }

  void closeNow() { finish(); }

 private:
  void onLinkData(std::span<const uint8_t> data) override {
    if (done_) return;
    buffer_.insert(buffer_.end(), data.begin(), data.end());
    if (buffer_[0] != 0x10) {
      refuse(core::Counter::k_protocol_errors, std::nullopt,
             "the first packet is not a CONNECT (MQTT-3.1.0-1)");
      return;
    }
    // Fixed header: type byte, then the remaining length (1-4 bytes, 7 bits each).
    uint32_t remaining = 0;
    size_t header = 1;
    for (int shift = 0;; shift += 7) {
      if (header >= buffer_.size()) return;  // need more bytes
      const uint8_t b = buffer_[header++];
      remaining |= static_cast<uint32_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) break;
      if (shift == 21) {
        refuse(core::Counter::k_protocol_errors, std::nullopt, "malformed remaining length");
        return;
      }
    }
    const size_t total = header + remaining;
    if (total > kMaxConnectBytes) {
      refuse(core::Counter::k_protocol_errors, std::nullopt, "CONNECT larger than 64 KiB");
      return;
    }
    if (buffer_.size() < total) return;
    onConnectBytes(std::span<const uint8_t>(buffer_.data(), total),
                   std::span<const uint8_t>(buffer_.data() + total, buffer_.size() - total));
  }

  void onLinkWritable() override {
    if (handoff_info_ && link_ && !link_->closing() && link_->pendingBytes() == 0) {
      moveToHome(server_.engine_.homeShardOf(handoff_info_->client_id));
    }
  }
  void onLinkClosed(const core::Status& reason) override {
    if (handoff_info_) {
      // Closed while waiting to move: nothing to hand over.
      handoff_info_.reset();
      state_.loop().deferredDelete(std::unique_ptr<core::DeferredDeletable>(this));
      return;
    }
    if (done_) return;
    if (!reason.isOk()) {
      const bool tls = link_->secure();
      if (tls) state_.shard.counters().add(core::Counter::k_tls_handshake_failures);
      HUB_LOG_INFO(kLog, "connection from %s closed before CONNECT: %s", link_->peer().c_str(),
                   reason.toString().c_str());
    }
    finish();
  }

  struct ConnectCapture final : PacketHandler {
    core::Status onPacket(const Packet& packet) override {
      const Connect& c = std::get<Connect>(packet);
      info.client_id = std::string(c.client_id);
      info.clean_session = c.clean_session;
      info.keep_alive_seconds = c.keep_alive_seconds;
      info.has_will = c.has_will;
      info.will_topic = std::string(c.will_topic);
      info.will_payload.assign(c.will_payload.begin(), c.will_payload.end());
      info.will_qos = c.will_qos;
      if (c.username) username = std::string(*c.username);
      has_username = c.username.has_value();
      if (c.password) password.assign(reinterpret_cast<const char*>(c.password->data()), c.password->size());
      has_password = c.password.has_value();
      return core::Status::ok();
    }
    ConnectInfo info;
    std::string username;
    std::string password;
    bool has_username = false;
    bool has_password = false;
  };

  void onConnectBytes(std::span<const uint8_t> packet, std::span<const uint8_t> leftover) {
    ConnectCapture capture;
    Decoder decoder(DecoderOptions{Role::kServer, static_cast<uint32_t>(kMaxConnectBytes), 1024}, capture);
    core::Status s = decoder.feed(packet);
    if (!s.isOk()) {
      refuse(core::Counter::k_connect_refused_other, connackCodeFor(decoder.error()), std::string(s.message()));
      return;
    }
    ConnectInfo& info = capture.info;
    // Never log the password: only which check failed.
    auto deny = [&](std::string_view what, std::string_view detail = {}) {
      std::string why = "client id '";
      why.append(info.client_id).append("': ").append(what).append(detail);
      refuse(core::Counter::k_connect_refused_auth, ConnackCode::kNotAuthorized, why);
    };
    if (!capture.has_username) return deny("no username");
    if (!capture.has_password) return deny("no password (SAS token)");
    auto username = auth::parseMqttUsername(capture.username);
    if (!username.isOk()) return deny("bad username: ", username.status().message());
    if (core::Status m = auth::checkClientIdMatches(info.client_id, username.value()); !m.isOk()) {
      return deny(m.message());
    }
    const core::IdentityEntry* entry = server_.identities_->findByClientId(info.client_id);
    if (entry == nullptr) return deny("unknown identity");
    auto token = auth::parseSasToken(capture.password);
    if (!token.isOk()) return deny("bad SAS token: ", token.status().message());
    core::Status v = auth::verifySasToken(token.value(), *entry, server_.options_.hub_host_name,
                                          server_.time_.systemTime());
    if (!v.isOk()) return deny(v.message());
    if (server_.sessions_.load(std::memory_order_relaxed) >= server_.options_.max_connections) {
      refuse(core::Counter::k_connect_refused_other, ConnackCode::kServerUnavailable,
             "client id '" + info.client_id + "': connection limit of " +
                 std::to_string(server_.options_.max_connections) + " reached");
      return;
    }
    info.identity = entry->identity;
    handOff(std::move(info), leftover);
  }

  // Moves the connection to its identity's home loop.
  void handOff(ConnectInfo info, std::span<const uint8_t> leftover) {
    done_ = true;
    timer_.disable();
    link_->stopReading();
    handoff_info_ = std::move(info);
    handoff_rest_.assign(leftover.begin(), leftover.end());
    const uint32_t home = server_.engine_.homeShardOf(handoff_info_->client_id);
    if (home == state_.index) {
      auto* session = new Session(state_, std::move(link_), std::move(*handoff_info_));
      session->start(handoff_rest_);
      state_.loop().deferredDelete(std::unique_ptr<core::DeferredDeletable>(this));
      return;
    }
    // The socket can only move once everything written to it (the end of a TLS handshake) has
    // reached the kernel; onLinkWritable() continues then.
    if (link_->pendingBytes() == 0) moveToHome(home);
  }

  void moveToHome(uint32_t home) {
    auto released = link_->release();
    state_.loop().deferredDelete(std::unique_ptr<core::DeferredDeletable>(this));
    if (!released.isOk()) {
      HUB_LOG_WARN(kLog, "client id '%s': cannot hand the connection over: %s", handoff_info_->client_id.c_str(),
                   released.status().toString().c_str());
      return;
    }
    LoopState* target = server_.loops_[home].get();
    struct Move {
      Link::Released released;
      ConnectInfo info;
      std::vector<uint8_t> rest;
    };
    auto move = std::make_shared<Move>(Move{std::move(released).value(), std::move(*handoff_info_), std::move(handoff_rest_)});
    auto run = [target, move] {
      if (target->shut_down) {
        ::close(move->released.fd);
        return;
      }
      auto link = Link::adopt(target->loop(), std::move(move->released));
      if (!link.isOk()) {
        HUB_LOG_WARN(kLog, "client id '%s': cannot adopt the connection: %s", move->info.client_id.c_str(),
                     link.status().toString().c_str());
        return;
      }
      auto* session = new Session(*target, std::move(link).value(), std::move(move->info));
      session->start(move->rest);
    };
    while (!target->loop().post(run)) std::this_thread::yield();  // cold: once per connection
  }

  void refuse(core::Counter counter, std::optional<ConnackCode> code, const std::string& why) {
    state_.shard.counters().add(counter);
    HUB_LOG_INFO(kLog, "connection from %s refused%s: %s", link_->peer().c_str(),
                 code ? (" (CONNACK " + std::to_string(static_cast<int>(*code)) + ")").c_str() : "", why.c_str());
    if (code) {
      appendConnack(link_->output(), Connack{false, *code});
      link_->flush().permitUncheckedError();
    }
    finish();
  }

  void onTimeout() {
    if (done_) return;
    refuse(core::Counter::k_connect_refused_other, std::nullopt, "no CONNECT within the connect timeout");
  }

  void finish() {
    if (done_ && link_ == nullptr) return;
    const bool was_done = done_;
    done_ = true;
    timer_.disable();
    if (link_) link_->close();
    if (!was_done) state_.loop().deferredDelete(std::unique_ptr<core::DeferredDeletable>(this));
  }

  LoopState& state_;
  MqttServer& server_;
  std::unique_ptr<Link> link_;
  core::Timer timer_;
  std::vector<uint8_t> buffer_;
  std::optional<ConnectInfo> handoff_info_;  // set while the connection moves to its home loop
  std::vector<uint8_t> handoff_rest_;        // bytes read after the CONNECT
  bool done_ = false;
};

// ---- listeners -----------------------------------------------------------------------------

class MqttServer::LoopState::Acceptor final : public core::TcpListenerCallbacks {
 public:
  Acceptor(LoopState& state, bool tls) : state_(state), tls_(tls) {}
  void onAccept(core::TcpConnectionPtr connection) override {
    state_.shard.counters().add(core::Counter::k_connections_accepted);
    std::unique_ptr<SecureChannel> channel;
    if (tls_) channel = state_.server.options_.make_tls_channel();
    auto* pending = new Pending(state_, std::make_unique<Link>(std::move(connection), std::move(channel)));
    pending->start();
  }
  void onAcceptError(const core::Status& status) override {
    HUB_LOG_WARN(kLog, "accept failed: %s", status.toString().c_str());
  }

 private:
  LoopState& state_;
  const bool tls_;
};

// ---- MqttServer ----------------------------------------------------------------------------

MqttServer::MqttServer(MqttServerOptions options, core::Engine& engine,
                       std::shared_ptr<const core::IdentityConfig> identities, const core::TimeSource& time)
    : options_(std::move(options)), engine_(engine), identities_(std::move(identities)), time_(time) {
  loops_.resize(engine_.shardCount());
}

MqttServer::~MqttServer() = default;

void MqttServer::attachLoop(uint32_t shard) {
  auto state = std::make_unique<LoopState>(*this, shard, engine_.shard(shard));
  LoopState* raw = state.get();
  // Clean-session-0 sessions of identities homed here, as the store kept them.
  std::vector<std::pair<std::string, std::string>> stored;
  if (core::Status s = engine_.store().loadSessions(stored); !s.isOk()) {
    HUB_LOG_WARN(kLog, "stored sessions not loaded: %s", s.toString().c_str());
  }
  for (auto& [client_id, bytes] : stored) {
    if (engine_.homeShardOf(client_id) != shard) continue;
    if (auto record = SessionRecord::decode(bytes)) {
      state->records[client_id] = *record;
    } else {
      HUB_LOG_WARN(kLog, "%s: stored session record is malformed; ignored", client_id.c_str());
    }
  }
  engine_.shard(shard).setResumeHandler([raw](uint64_t id) {
    auto it = raw->sessions_by_id.find(id);
    if (it != raw->sessions_by_id.end()) it->second->resumeFromBudget();
  });
  if (options_.twins != nullptr) options_.twins->attachModuleSide(shard, raw);
  loops_[shard] = std::move(state);
}

core::Status MqttServer::startListening() {
  LoopState& state = *loops_[0];
  auto listen = [&state](const std::string& text, bool tls, std::unique_ptr<LoopState::Acceptor>& acceptor,
                         core::TcpListenerPtr& listener, std::string& bound) -> core::Status {
    HUB_ASSIGN_OR_RETURN(core::SocketAddress address, core::parseSocketAddress(text));
    acceptor = std::make_unique<LoopState::Acceptor>(state, tls);
    auto l = core::TcpListener::create(state.loop(), address, *acceptor);
    if (!l.isOk()) return l.status().withContext(std::string(tls ? "cannot listen for MQTT over TLS on " : "cannot listen for MQTT on ") + text);
    listener = std::move(l).value();
    bound = core::formatSocketAddress(listener->localAddress());
    return core::Status::ok();
  };
  if (!options_.plain_listen.empty()) {
    HUB_RETURN_IF_ERROR(listen(options_.plain_listen, false, state.plain_acceptor, state.plain_listener, plain_address_));
  }
  if (!options_.tls_listen.empty()) {
    if (!options_.make_tls_channel) return core::invalidArgument("TLS listener without a TLS configuration");
    HUB_RETURN_IF_ERROR(listen(options_.tls_listen, true, state.tls_acceptor, state.tls_listener, tls_address_));
  }
  return core::Status::ok();
}

void MqttServer::shutdownLoop(uint32_t shard) {
  LoopState* state = loops_[shard].get();
  if (state == nullptr) return;
  state->shut_down = true;
  state->plain_listener.reset();
  state->tls_listener.reset();
  std::vector<Pending*> pending(state->pending.begin(), state->pending.end());
  for (Pending* p : pending) p->closeNow();
  std::vector<Session*> sessions;
  for (auto& [id, s] : state->sessions_by_id) sessions.push_back(s);
  for (Session* s : sessions) s->closeWith(core::Status::ok(), false, "");
  state->loop().cancelTurnEnd(state);
  state->method_timer.reset();  // a timer dies on its loop
  state->method_calls.clear();
  if (options_.twins != nullptr) options_.twins->attachModuleSide(shard, nullptr);
  engine_.shard(shard).setResumeHandler(nullptr);
}

}  // namespace edgehub::transports::mqtt
