#include "transports/mqtt/decoder.h"

#include <algorithm>
#include <string>

#include "transports/mqtt/topic.h"
#include "transports/mqtt/utf8.h"

namespace edgehub::transports::mqtt {
namespace {

// Bounds-checked big-endian reads over one packet body. Every read that would run past the end
// returns false; the caller turns that into kTruncated with the field's name.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> body) : p_(body.data()), left_(body.size()) {}

  size_t left() const { return left_; }
  bool u8(uint8_t& v) {
    if (left_ < 1) return false;
    v = *p_++;
    --left_;
    return true;
  }
  bool u16(uint16_t& v) {
    if (left_ < 2) return false;
    v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    left_ -= 2;
    return true;
  }
  // A two-byte length prefix and that many bytes (MQTT 3.1.1 sections 1.5.3 and 3.1.3.5).
  bool prefixed(std::span<const uint8_t>& out) {
    uint16_t len;
    if (!u16(len)) return false;
    if (left_ < len) return false;
    out = std::span<const uint8_t>(p_, len);
    p_ += len;
    left_ -= len;
    return true;
  }
  bool string(std::string_view& out) {
    std::span<const uint8_t> raw;
    if (!prefixed(raw)) return false;
    out = std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size());
    return true;
  }
  std::span<const uint8_t> rest() {
    std::span<const uint8_t> out(p_, left_);
    p_ += left_;
    left_ = 0;
    return out;
  }

 private:
  const uint8_t* p_;
  size_t left_;
};

bool isValidType(uint8_t type) { return type >= 1 && type <= 14; }

// Packets only a client sends (a server decoder accepts them) and only a server sends.
bool clientOnly(PacketType t) {
  return t == PacketType::kConnect || t == PacketType::kSubscribe ||
         t == PacketType::kUnsubscribe || t == PacketType::kPingreq ||
         t == PacketType::kDisconnect;
}
bool serverOnly(PacketType t) {
  return t == PacketType::kConnack || t == PacketType::kSuback || t == PacketType::kUnsuback ||
         t == PacketType::kPingresp;
}

// The exact remaining length of fixed-size packets, or -1.
int fixedRemainingLength(PacketType t) {
  switch (t) {
    case PacketType::kConnack:
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kUnsuback:
      return 2;
    case PacketType::kPingreq:
    case PacketType::kPingresp:
    case PacketType::kDisconnect:
      return 0;
    default:
      return -1;
  }
}

}  // namespace

std::string_view packetTypeName(PacketType type) {
  switch (type) {
    case PacketType::kConnect: return "CONNECT";
    case PacketType::kConnack: return "CONNACK";
    case PacketType::kPublish: return "PUBLISH";
    case PacketType::kPuback: return "PUBACK";
    case PacketType::kPubrec: return "PUBREC";
    case PacketType::kPubrel: return "PUBREL";
    case PacketType::kPubcomp: return "PUBCOMP";
    case PacketType::kSubscribe: return "SUBSCRIBE";
    case PacketType::kSuback: return "SUBACK";
    case PacketType::kUnsubscribe: return "UNSUBSCRIBE";
    case PacketType::kUnsuback: return "UNSUBACK";
    case PacketType::kPingreq: return "PINGREQ";
    case PacketType::kPingresp: return "PINGRESP";
    case PacketType::kDisconnect: return "DISCONNECT";
  }
  return "UNKNOWN";
}

std::string_view decodeErrorName(DecodeError error) {
  switch (error) {
    case DecodeError::kNone: return "none";
    case DecodeError::kRemainingLengthTooLong: return "remaining_length_too_long";
    case DecodeError::kReservedPacketType: return "reserved_packet_type";
    case DecodeError::kUnexpectedPacketType: return "unexpected_packet_type";
    case DecodeError::kInvalidFixedHeaderFlags: return "invalid_fixed_header_flags";
    case DecodeError::kInvalidRemainingLength: return "invalid_remaining_length";
    case DecodeError::kPacketTooLarge: return "packet_too_large";
    case DecodeError::kTruncated: return "truncated";
    case DecodeError::kTrailingBytes: return "trailing_bytes";
    case DecodeError::kInvalidUtf8: return "invalid_utf8";
    case DecodeError::kInvalidTopicName: return "invalid_topic_name";
    case DecodeError::kInvalidTopicFilter: return "invalid_topic_filter";
    case DecodeError::kInvalidQos: return "invalid_qos";
    case DecodeError::kDupWithQos0: return "dup_with_qos0";
    case DecodeError::kZeroPacketId: return "zero_packet_id";
    case DecodeError::kNoTopics: return "no_topics";
    case DecodeError::kInvalidProtocolName: return "invalid_protocol_name";
    case DecodeError::kUnsupportedProtocolLevel: return "unsupported_protocol_level";
    case DecodeError::kReservedConnectFlag: return "reserved_connect_flag";
    case DecodeError::kPasswordWithoutUsername: return "password_without_username";
    case DecodeError::kInvalidWillFlags: return "invalid_will_flags";
    case DecodeError::kClientIdRejected: return "client_id_rejected";
    case DecodeError::kInvalidConnackFlags: return "invalid_connack_flags";
    case DecodeError::kInvalidReturnCode: return "invalid_return_code";
    case DecodeError::kHandlerError: return "handler_error";
  }
  return "unknown";
}

std::optional<ConnackCode> connackCodeFor(DecodeError error) {
  switch (error) {
    case DecodeError::kUnsupportedProtocolLevel: return ConnackCode::kUnacceptableProtocolVersion;
    case DecodeError::kClientIdRejected: return ConnackCode::kIdentifierRejected;
    default: return std::nullopt;
  }
}

Decoder::Decoder(const DecoderOptions& options, PacketHandler& handler)
    : options_(options), handler_(handler) {
  body_.reserve(std::min(options_.initial_buffer_capacity, options_.max_packet_size));
}

core::Status Decoder::fail(DecodeError error, PacketType type, std::string_view reason) {
  std::string message("malformed ");
  message.append(packetTypeName(type));
  message.append(": ");
  message.append(reason);
  error_ = error;
  status_ = error == DecodeError::kPacketTooLarge ? core::resourceExhausted(std::move(message))
                                                  : core::invalidArgument(std::move(message));
  return status_;
}

core::Status Decoder::failHeader(DecodeError error, std::string_view reason) {
  std::string message("malformed fixed header: ");
  message.append(reason);
  error_ = error;
  status_ = core::invalidArgument(std::move(message));
  return status_;
}

core::Status Decoder::feed(std::span<const uint8_t> bytes) {
  if (failed()) return status_;
  const uint8_t* in = bytes.data();
  const size_t n = bytes.size();
  size_t pos = 0;
  while (pos < n) {
    if (state_ == State::kHeader) {
      uint8_t b = in[pos++];
      header_[header_len_++] = b;
      if (header_len_ == 1) {
        first_byte_ = b;
        // Type and flags are checked on the first byte so garbage is refused at once.
        uint8_t type = b >> 4;
        if (!isValidType(type)) {
          std::string reason("reserved packet type ");
          reason.append(std::to_string(type));
          return failHeader(DecodeError::kReservedPacketType, reason);
        }
        continue;
      }
      if (b & 0x80) {
        if (header_len_ == header_.size()) {
          return failHeader(DecodeError::kRemainingLengthTooLong,
                            "remaining length encoded in more than 4 bytes");
        }
        continue;
      }
      // Remaining length complete (MQTT 3.1.1 section 2.2.3).
      uint32_t value = 0;
      for (int i = header_len_ - 1; i >= 1; --i) value = (value << 7) | (header_[i] & 0x7F);
      remaining_ = value;
      HUB_RETURN_IF_ERROR(checkFixedHeader());
      header_len_ = 0;
      if (n - pos >= remaining_) {
        // Whole body in this chunk: decode in place (the zero-copy path).
        std::span<const uint8_t> body(in + pos, remaining_);
        pos += remaining_;
        HUB_RETURN_IF_ERROR(dispatch(body));
      } else {
        body_.clear();
        state_ = State::kBody;
      }
    } else {
      size_t take = std::min<size_t>(remaining_ - body_.size(), n - pos);
      body_.insert(body_.end(), in + pos, in + pos + take);
      bytes_copied_ += take;
      pos += take;
      if (body_.size() == remaining_) {
        state_ = State::kHeader;
        HUB_RETURN_IF_ERROR(dispatch(body_));
      }
    }
  }
  return core::Status::ok();
}

core::Status Decoder::checkFixedHeader() {
  const auto type = static_cast<PacketType>(first_byte_ >> 4);
  const uint8_t flags = first_byte_ & 0x0F;
  if (options_.role == Role::kServer ? serverOnly(type) : clientOnly(type)) {
    std::string reason(options_.role == Role::kServer ? "sent by a client"
                                                      : "sent by a server");
    reason.append(" (the packet only travels the other way)");
    return fail(DecodeError::kUnexpectedPacketType, type, reason);
  }
  if (type == PacketType::kPublish) {
    uint8_t qos = (flags >> 1) & 0x03;
    if (qos == 3) return fail(DecodeError::kInvalidQos, type, "QoS 3 in the fixed header");
    if (qos == 0 && (flags & 0x08)) {
      return fail(DecodeError::kDupWithQos0, type, "DUP flag set on a QoS 0 message");
    }
  } else {
    // MQTT 3.1.1 table 2.2: PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010, the rest 0.
    uint8_t expected = (type == PacketType::kPubrel || type == PacketType::kSubscribe ||
                        type == PacketType::kUnsubscribe)
                           ? 0x02
                           : 0x00;
    if (flags != expected) {
      std::string reason("reserved fixed header flags are ");
      reason.append(std::to_string(flags));
      reason.append(", must be ");
      reason.append(std::to_string(expected));
      return fail(DecodeError::kInvalidFixedHeaderFlags, type, reason);
    }
  }
  uint64_t total = uint64_t{header_len_} + remaining_;
  if (total > options_.max_packet_size) {
    std::string reason("packet of ");
    reason.append(std::to_string(total));
    reason.append(" bytes exceeds the maximum packet size of ");
    reason.append(std::to_string(options_.max_packet_size));
    reason.append(" bytes");
    return fail(DecodeError::kPacketTooLarge, type, reason);
  }
  int fixed = fixedRemainingLength(type);
  if (fixed >= 0 && remaining_ != static_cast<uint32_t>(fixed)) {
    std::string reason("remaining length ");
    reason.append(std::to_string(remaining_));
    reason.append(", must be ");
    reason.append(std::to_string(fixed));
    return fail(DecodeError::kInvalidRemainingLength, type, reason);
  }
  return core::Status::ok();
}

core::Status Decoder::dispatch(std::span<const uint8_t> body) {
  const auto type = static_cast<PacketType>(first_byte_ >> 4);
  Packet packet;
  core::Status s;
  switch (type) {
    case PacketType::kConnect:
      s = decodeConnect(body, packet);
      break;
    case PacketType::kPublish:
      s = decodePublish(body, packet);
      break;
    case PacketType::kSubscribe:
      s = decodeSubscribe(body, packet);
      break;
    case PacketType::kUnsubscribe:
      s = decodeUnsubscribe(body, packet);
      break;
    case PacketType::kSuback:
      s = decodeSuback(body, packet);
      break;
    case PacketType::kConnack: {
      // Length 2 was checked on the fixed header.
      if (body[0] & 0xFE) {
        return fail(DecodeError::kInvalidConnackFlags, type, "reserved acknowledge flags set");
      }
      if (body[1] > 5) {
        return fail(DecodeError::kInvalidReturnCode, type, "return code above 5");
      }
      packet = Connack{(body[0] & 0x01) != 0, static_cast<ConnackCode>(body[1])};
      break;
    }
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kUnsuback: {
      auto id = static_cast<uint16_t>((body[0] << 8) | body[1]);
      if (id == 0) return fail(DecodeError::kZeroPacketId, type, "packet id 0");
      if (type == PacketType::kPuback) packet = Puback{id};
      if (type == PacketType::kPubrec) packet = Pubrec{id};
      if (type == PacketType::kPubrel) packet = Pubrel{id};
      if (type == PacketType::kPubcomp) packet = Pubcomp{id};
      if (type == PacketType::kUnsuback) packet = Unsuback{id};
      break;
    }
    case PacketType::kPingreq:
      packet = Pingreq{};
      break;
    case PacketType::kPingresp:
      packet = Pingresp{};
      break;
    case PacketType::kDisconnect:
      packet = Disconnect{};
      break;
  }
  HUB_RETURN_IF_ERROR(s);
  ++packets_decoded_;
  core::Status handled = handler_.onPacket(packet);
  if (!handled.isOk()) {
    error_ = DecodeError::kHandlerError;
    status_ = std::move(handled);
    return status_;
  }
  return core::Status::ok();
}

core::Status Decoder::decodeConnect(std::span<const uint8_t> body, Packet& out) {
  constexpr PacketType kT = PacketType::kConnect;
  Reader r(body);
  Connect c;
  if (!r.string(c.protocol_name)) return fail(DecodeError::kTruncated, kT, "truncated protocol name");
  if (c.protocol_name == "MQIsdp") {
    // MQTT 3.1 clients get CONNACK 0x01 rather than a silent close: it tells them why.
    return fail(DecodeError::kUnsupportedProtocolLevel, kT,
                "protocol MQIsdp (MQTT 3.1) is not supported, only MQTT 3.1.1");
  }
  if (c.protocol_name != "MQTT") {
    return fail(DecodeError::kInvalidProtocolName, kT, "protocol name is not \"MQTT\"");
  }
  if (!r.u8(c.protocol_level)) return fail(DecodeError::kTruncated, kT, "truncated protocol level");
  if (c.protocol_level != kProtocolLevel311) {
    // Stop here: the rest of, e.g., an MQTT 5 CONNECT has a different layout.
    std::string reason("protocol level ");
    reason.append(std::to_string(c.protocol_level));
    reason.append(" is not supported, only 4 (MQTT 3.1.1)");
    return fail(DecodeError::kUnsupportedProtocolLevel, kT, reason);
  }
  uint8_t flags;
  if (!r.u8(flags)) return fail(DecodeError::kTruncated, kT, "truncated connect flags");
  if (flags & 0x01) return fail(DecodeError::kReservedConnectFlag, kT, "reserved connect flag set");
  c.clean_session = (flags & 0x02) != 0;
  c.has_will = (flags & 0x04) != 0;
  c.will_qos = (flags >> 3) & 0x03;
  c.will_retain = (flags & 0x20) != 0;
  const bool has_password = (flags & 0x40) != 0;
  const bool has_username = (flags & 0x80) != 0;
  if (c.will_qos == 3) return fail(DecodeError::kInvalidQos, kT, "will QoS 3");
  if (!c.has_will && (c.will_qos != 0 || c.will_retain)) {
    return fail(DecodeError::kInvalidWillFlags, kT, "will QoS or will retain set without will flag");
  }
  if (has_password && !has_username) {
    return fail(DecodeError::kPasswordWithoutUsername, kT, "password flag set without username flag");
  }
  if (!r.u16(c.keep_alive_seconds)) return fail(DecodeError::kTruncated, kT, "truncated keep alive");
  if (!r.string(c.client_id)) return fail(DecodeError::kTruncated, kT, "truncated client id");
  if (!isValidMqttUtf8(c.client_id)) return fail(DecodeError::kInvalidUtf8, kT, "client id is not valid UTF-8");
  if (c.has_will) {
    if (!r.string(c.will_topic)) return fail(DecodeError::kTruncated, kT, "truncated will topic");
    if (!isValidMqttUtf8(c.will_topic)) {
      return fail(DecodeError::kInvalidUtf8, kT, "will topic is not valid UTF-8");
    }
    core::Status topic = validateTopicName(c.will_topic);
    if (!topic.isOk()) {
      std::string reason("will topic: ");
      reason.append(topic.message());
      return fail(DecodeError::kInvalidTopicName, kT, reason);
    }
    if (!r.prefixed(c.will_payload)) return fail(DecodeError::kTruncated, kT, "truncated will message");
  }
  if (has_username) {
    std::string_view username;
    if (!r.string(username)) return fail(DecodeError::kTruncated, kT, "truncated username");
    if (!isValidMqttUtf8(username)) return fail(DecodeError::kInvalidUtf8, kT, "username is not valid UTF-8");
    c.username = username;
  }
  if (has_password) {
    std::span<const uint8_t> password;
    if (!r.prefixed(password)) return fail(DecodeError::kTruncated, kT, "truncated password");
    c.password = password;
  }
  if (r.left() != 0) return fail(DecodeError::kTrailingBytes, kT, "trailing bytes after the payload");
  // Checked last so a truncated packet reports truncation first; an empty id is legal MQTT
  // only with clean session 1 (MQTT-3.1.3-7), otherwise the server answers CONNACK 0x02.
  if (c.client_id.empty() && !c.clean_session) {
    return fail(DecodeError::kClientIdRejected, kT, "empty client id with clean session 0");
  }
  out = c;
  return core::Status::ok();
}

core::Status Decoder::decodePublish(std::span<const uint8_t> body, Packet& out) {
  constexpr PacketType kT = PacketType::kPublish;
  Reader r(body);
  Publish p;
  p.qos = (first_byte_ >> 1) & 0x03;
  p.dup = (first_byte_ & 0x08) != 0;
  p.retain = (first_byte_ & 0x01) != 0;
  if (!r.string(p.topic)) return fail(DecodeError::kTruncated, kT, "truncated topic name");
  if (!isValidMqttUtf8(p.topic)) return fail(DecodeError::kInvalidUtf8, kT, "topic name is not valid UTF-8");
  core::Status topic = validateTopicName(p.topic);
  if (!topic.isOk()) return fail(DecodeError::kInvalidTopicName, kT, topic.message());
  if (p.qos > 0) {
    if (!r.u16(p.packet_id)) return fail(DecodeError::kTruncated, kT, "truncated packet id");
    if (p.packet_id == 0) return fail(DecodeError::kZeroPacketId, kT, "packet id 0 with QoS > 0");
  }
  p.payload = r.rest();
  out = p;
  return core::Status::ok();
}

core::Status Decoder::decodeSubscribe(std::span<const uint8_t> body, Packet& out) {
  constexpr PacketType kT = PacketType::kSubscribe;
  Reader r(body);
  Subscribe s;
  if (!r.u16(s.packet_id)) return fail(DecodeError::kTruncated, kT, "truncated packet id");
  if (s.packet_id == 0) return fail(DecodeError::kZeroPacketId, kT, "packet id 0");
  subscribe_topics_.clear();
  while (r.left() > 0) {
    SubscribeTopic t;
    if (!r.string(t.filter)) return fail(DecodeError::kTruncated, kT, "truncated topic filter");
    if (!isValidMqttUtf8(t.filter)) return fail(DecodeError::kInvalidUtf8, kT, "topic filter is not valid UTF-8");
    core::Status filter = validateTopicFilter(t.filter);
    if (!filter.isOk()) return fail(DecodeError::kInvalidTopicFilter, kT, filter.message());
    uint8_t options;
    if (!r.u8(options)) return fail(DecodeError::kTruncated, kT, "truncated requested QoS");
    if (options & 0xFC) {
      return fail(DecodeError::kInvalidQos, kT, "reserved bits set in the requested QoS byte");
    }
    if (options == 3) return fail(DecodeError::kInvalidQos, kT, "requested QoS 3");
    t.requested_qos = options;
    subscribe_topics_.push_back(t);
  }
  if (subscribe_topics_.empty()) return fail(DecodeError::kNoTopics, kT, "no topic filters");
  s.topics = subscribe_topics_;
  out = s;
  return core::Status::ok();
}

core::Status Decoder::decodeUnsubscribe(std::span<const uint8_t> body, Packet& out) {
  constexpr PacketType kT = PacketType::kUnsubscribe;
  Reader r(body);
  Unsubscribe u;
  if (!r.u16(u.packet_id)) return fail(DecodeError::kTruncated, kT, "truncated packet id");
  if (u.packet_id == 0) return fail(DecodeError::kZeroPacketId, kT, "packet id 0");
  unsubscribe_filters_.clear();
  while (r.left() > 0) {
    std::string_view f;
    if (!r.string(f)) return fail(DecodeError::kTruncated, kT, "truncated topic filter");
    if (!isValidMqttUtf8(f)) return fail(DecodeError::kInvalidUtf8, kT, "topic filter is not valid UTF-8");
    core::Status filter = validateTopicFilter(f);
    if (!filter.isOk()) return fail(DecodeError::kInvalidTopicFilter, kT, filter.message());
    unsubscribe_filters_.push_back(f);
  }
  if (unsubscribe_filters_.empty()) return fail(DecodeError::kNoTopics, kT, "no topic filters");
  u.filters = unsubscribe_filters_;
  out = u;
  return core::Status::ok();
}

core::Status Decoder::decodeSuback(std::span<const uint8_t> body, Packet& out) {
  constexpr PacketType kT = PacketType::kSuback;
  Reader r(body);
  Suback s;
  if (!r.u16(s.packet_id)) return fail(DecodeError::kTruncated, kT, "truncated packet id");
  if (s.packet_id == 0) return fail(DecodeError::kZeroPacketId, kT, "packet id 0");
  s.return_codes = r.rest();
  if (s.return_codes.empty()) return fail(DecodeError::kNoTopics, kT, "no return codes");
  for (uint8_t code : s.return_codes) {
    if (code > 2 && code != kSubackFailure) {
      return fail(DecodeError::kInvalidReturnCode, kT, "return code not 0, 1, 2 or 0x80");
    }
  }
  out = s;
  return core::Status::ok();
}

}  // namespace edgehub::transports::mqtt
