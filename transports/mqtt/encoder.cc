#include "transports/mqtt/encoder.h"

#include <cstring>
#include <string>
#include <type_traits>

namespace edgehub::transports::mqtt {
namespace {

constexpr size_t kMaxStringLength = 65535;

size_t varintSize(size_t value) {
  if (value < 128) return 1;
  if (value < 16384) return 2;
  if (value < 2097152) return 3;
  return 4;
}

// Writes forward into a pre-sized region; the callers compute the exact size first so a packet
// costs one resize of the buffer, not one per field.
class Writer {
 public:
  explicit Writer(uint8_t* p) : p_(p) {}
  uint8_t* position() const { return p_; }
  void u8(uint8_t v) { *p_++ = v; }
  void u16(uint16_t v) {
    *p_++ = static_cast<uint8_t>(v >> 8);
    *p_++ = static_cast<uint8_t>(v);
  }
  void varint(size_t value) {
    do {
      uint8_t b = value & 0x7F;
      value >>= 7;
      if (value > 0) b |= 0x80;
      *p_++ = b;
    } while (value > 0);
  }
  void bytes(const void* data, size_t n) {
    if (n > 0) std::memcpy(p_, data, n);
    p_ += n;
  }
  void prefixed(const void* data, size_t n) {
    u16(static_cast<uint16_t>(n));
    bytes(data, n);
  }

 private:
  uint8_t* p_;
};

// Grows `out` by `n` bytes and returns a writer at the old end.
Writer extend(ByteBuffer& out, size_t n) {
  size_t old = out.size();
  out.resize(old + n);
  return Writer(out.data() + old);
}

core::Status tooLong(std::string_view what) {
  std::string message(what);
  message.append(" is longer than 65535 bytes");
  return core::invalidArgument(std::move(message));
}

core::Status checkRemaining(size_t remaining) {
  if (remaining > kMaxRemainingLength) {
    return core::invalidArgument("packet exceeds the MQTT maximum remaining length 268435455");
  }
  return core::Status::ok();
}

void appendIdOnly(ByteBuffer& out, uint8_t first, uint16_t packet_id) {
  Writer w = extend(out, 4);
  w.u8(first);
  w.u8(2);
  w.u16(packet_id);
}

}  // namespace

size_t publishHeaderSize(std::string_view topic, uint8_t qos, size_t payload_size) {
  size_t variable = 2 + topic.size() + (qos > 0 ? 2 : 0);
  return 1 + varintSize(variable + payload_size) + variable;
}

core::Result<size_t> encodePublishHeader(std::span<uint8_t> out, const Publish& publish) {
  if (publish.topic.size() > kMaxStringLength) return tooLong("topic");
  if (publish.qos > 2) return core::invalidArgument("QoS above 2");
  size_t variable = 2 + publish.topic.size() + (publish.qos > 0 ? 2 : 0);
  size_t remaining = variable + publish.payload.size();
  HUB_RETURN_IF_ERROR(checkRemaining(remaining));
  size_t size = 1 + varintSize(remaining) + variable;
  if (out.size() < size) return core::invalidArgument("output buffer too small for the PUBLISH header");
  Writer w(out.data());
  w.u8(static_cast<uint8_t>(0x30 | (publish.dup ? 0x08 : 0) | (publish.qos << 1) |
                            (publish.retain ? 0x01 : 0)));
  w.varint(remaining);
  w.prefixed(publish.topic.data(), publish.topic.size());
  if (publish.qos > 0) w.u16(publish.packet_id);
  return size;
}

void appendConnack(ByteBuffer& out, const Connack& connack) {
  Writer w = extend(out, 4);
  w.u8(0x20);
  w.u8(2);
  w.u8(connack.session_present ? 1 : 0);
  w.u8(static_cast<uint8_t>(connack.code));
}

core::Status appendPublish(ByteBuffer& out, const Publish& publish) {
  if (publish.topic.size() > kMaxStringLength) return tooLong("topic");
  size_t header = publishHeaderSize(publish.topic, publish.qos, publish.payload.size());
  size_t old = out.size();
  out.resize(old + header + publish.payload.size());
  auto written = encodePublishHeader(std::span<uint8_t>(out.data() + old, header), publish);
  if (!written.isOk()) {
    out.resize(old);
    return written.status();
  }
  if (!publish.payload.empty()) {
    std::memcpy(out.data() + old + header, publish.payload.data(), publish.payload.size());
  }
  return core::Status::ok();
}

void appendPuback(ByteBuffer& out, uint16_t packet_id) { appendIdOnly(out, 0x40, packet_id); }
void appendPubrec(ByteBuffer& out, uint16_t packet_id) { appendIdOnly(out, 0x50, packet_id); }
void appendPubrel(ByteBuffer& out, uint16_t packet_id) { appendIdOnly(out, 0x62, packet_id); }
void appendPubcomp(ByteBuffer& out, uint16_t packet_id) { appendIdOnly(out, 0x70, packet_id); }
void appendUnsuback(ByteBuffer& out, uint16_t packet_id) { appendIdOnly(out, 0xB0, packet_id); }

core::Status appendSuback(ByteBuffer& out, uint16_t packet_id,
                          std::span<const uint8_t> return_codes) {
  size_t remaining = 2 + return_codes.size();
  HUB_RETURN_IF_ERROR(checkRemaining(remaining));
  Writer w = extend(out, 1 + varintSize(remaining) + remaining);
  w.u8(0x90);
  w.varint(remaining);
  w.u16(packet_id);
  w.bytes(return_codes.data(), return_codes.size());
  return core::Status::ok();
}

void appendPingresp(ByteBuffer& out) {
  Writer w = extend(out, 2);
  w.u8(0xD0);
  w.u8(0);
}

void appendPingreq(ByteBuffer& out) {
  Writer w = extend(out, 2);
  w.u8(0xC0);
  w.u8(0);
}

void appendDisconnect(ByteBuffer& out) {
  Writer w = extend(out, 2);
  w.u8(0xE0);
  w.u8(0);
}

core::Status appendConnect(ByteBuffer& out, const Connect& c) {
  if (c.protocol_name.size() > kMaxStringLength) return tooLong("protocol name");
  if (c.client_id.size() > kMaxStringLength) return tooLong("client id");
  if (c.has_will && c.will_topic.size() > kMaxStringLength) return tooLong("will topic");
  if (c.has_will && c.will_payload.size() > kMaxStringLength) return tooLong("will message");
  if (c.username && c.username->size() > kMaxStringLength) return tooLong("username");
  if (c.password && c.password->size() > kMaxStringLength) return tooLong("password");
  if (c.will_qos > 2) return core::invalidArgument("will QoS above 2");
  size_t remaining = 2 + c.protocol_name.size() + 1 + 1 + 2 + 2 + c.client_id.size();
  if (c.has_will) remaining += 2 + c.will_topic.size() + 2 + c.will_payload.size();
  if (c.username) remaining += 2 + c.username->size();
  if (c.password) remaining += 2 + c.password->size();
  uint8_t flags = 0;
  if (c.clean_session) flags |= 0x02;
  if (c.has_will) flags |= static_cast<uint8_t>(0x04 | (c.will_qos << 3) | (c.will_retain ? 0x20 : 0));
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  Writer w = extend(out, 1 + varintSize(remaining) + remaining);
  w.u8(0x10);
  w.varint(remaining);
  w.prefixed(c.protocol_name.data(), c.protocol_name.size());
  w.u8(c.protocol_level);
  w.u8(flags);
  w.u16(c.keep_alive_seconds);
  w.prefixed(c.client_id.data(), c.client_id.size());
  if (c.has_will) {
    w.prefixed(c.will_topic.data(), c.will_topic.size());
    w.prefixed(c.will_payload.data(), c.will_payload.size());
  }
  if (c.username) w.prefixed(c.username->data(), c.username->size());
  if (c.password) w.prefixed(c.password->data(), c.password->size());
  return core::Status::ok();
}

core::Status appendSubscribe(ByteBuffer& out, uint16_t packet_id,
                             std::span<const SubscribeTopic> topics) {
  size_t remaining = 2;
  for (const auto& t : topics) {
    if (t.filter.size() > kMaxStringLength) return tooLong("topic filter");
    remaining += 2 + t.filter.size() + 1;
  }
  HUB_RETURN_IF_ERROR(checkRemaining(remaining));
  Writer w = extend(out, 1 + varintSize(remaining) + remaining);
  w.u8(0x82);
  w.varint(remaining);
  w.u16(packet_id);
  for (const auto& t : topics) {
    w.prefixed(t.filter.data(), t.filter.size());
    w.u8(t.requested_qos);
  }
  return core::Status::ok();
}

core::Status appendUnsubscribe(ByteBuffer& out, uint16_t packet_id,
                               std::span<const std::string_view> filters) {
  size_t remaining = 2;
  for (auto f : filters) {
    if (f.size() > kMaxStringLength) return tooLong("topic filter");
    remaining += 2 + f.size();
  }
  HUB_RETURN_IF_ERROR(checkRemaining(remaining));
  Writer w = extend(out, 1 + varintSize(remaining) + remaining);
  w.u8(0xA2);
  w.varint(remaining);
  w.u16(packet_id);
  for (auto f : filters) w.prefixed(f.data(), f.size());
  return core::Status::ok();
}

core::Status appendPacket(ByteBuffer& out, const Packet& packet) {
  return std::visit(
      [&out](const auto& p) -> core::Status {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) {
          return appendConnect(out, p);
        } else if constexpr (std::is_same_v<T, Connack>) {
          appendConnack(out, p);
        } else if constexpr (std::is_same_v<T, Publish>) {
          return appendPublish(out, p);
        } else if constexpr (std::is_same_v<T, Puback>) {
          appendPuback(out, p.packet_id);
        } else if constexpr (std::is_same_v<T, Pubrec>) {
          appendPubrec(out, p.packet_id);
        } else if constexpr (std::is_same_v<T, Pubrel>) {
          appendPubrel(out, p.packet_id);
        } else if constexpr (std::is_same_v<T, Pubcomp>) {
          appendPubcomp(out, p.packet_id);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          return appendSubscribe(out, p.packet_id, p.topics);
        } else if constexpr (std::is_same_v<T, Suback>) {
          return appendSuback(out, p.packet_id, p.return_codes);
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          return appendUnsubscribe(out, p.packet_id, p.filters);
        } else if constexpr (std::is_same_v<T, Unsuback>) {
          appendUnsuback(out, p.packet_id);
        } else if constexpr (std::is_same_v<T, Pingreq>) {
          appendPingreq(out);
        } else if constexpr (std::is_same_v<T, Pingresp>) {
          appendPingresp(out);
        } else {
          static_assert(std::is_same_v<T, Disconnect>);
          appendDisconnect(out);
        }
        return core::Status::ok();
      },
      packet);
}

}  // namespace edgehub::transports::mqtt
