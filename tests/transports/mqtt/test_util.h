#pragma once
// Helpers shared by the MQTT codec tests: a packet collector, a canonical text form of a packet
// (so tests compare owned strings after the decoder's views have expired), and byte builders
// for hand-made (often malformed) packets.
//
// Thread-safety: test-only, single-threaded.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "transports/mqtt/decoder.h"
#include "transports/mqtt/packet.h"

namespace edgehub::transports::mqtt::test {

using Bytes = std::vector<uint8_t>;

inline std::string hex(std::span<const uint8_t> bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

inline std::span<const uint8_t> asBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A canonical one-line description holding copies of every field.
inline std::string describe(const Packet& packet) {
  std::string out(packetTypeName(packetTypeOf(packet)));
  auto field = [&out](std::string_view name, std::string_view value) {
    out.append(" ");
    out.append(name);
    out.append("=");
    out.append(value);
  };
  auto num = [&field](std::string_view name, uint64_t v) { field(name, std::to_string(v)); };
  if (const auto* c = std::get_if<Connect>(&packet)) {
    field("proto", c->protocol_name);
    num("level", c->protocol_level);
    num("clean", c->clean_session);
    num("keepalive", c->keep_alive_seconds);
    field("client", c->client_id);
    if (c->has_will) {
      field("will_topic", c->will_topic);
      field("will_payload", hex(c->will_payload));
      num("will_qos", c->will_qos);
      num("will_retain", c->will_retain);
    }
    if (c->username) field("user", *c->username);
    if (c->password) field("password", hex(*c->password));
  } else if (const auto* a = std::get_if<Connack>(&packet)) {
    num("sp", a->session_present);
    num("code", static_cast<uint8_t>(a->code));
  } else if (const auto* p = std::get_if<Publish>(&packet)) {
    field("topic", p->topic);
    num("id", p->packet_id);
    num("qos", p->qos);
    num("dup", p->dup);
    num("retain", p->retain);
    field("payload", hex(p->payload));
  } else if (const auto* x = std::get_if<Puback>(&packet)) {
    num("id", x->packet_id);
  } else if (const auto* x1 = std::get_if<Pubrec>(&packet)) {
    num("id", x1->packet_id);
  } else if (const auto* x2 = std::get_if<Pubrel>(&packet)) {
    num("id", x2->packet_id);
  } else if (const auto* x3 = std::get_if<Pubcomp>(&packet)) {
    num("id", x3->packet_id);
  } else if (const auto* s = std::get_if<Subscribe>(&packet)) {
    num("id", s->packet_id);
    for (const auto& t : s->topics) {
      field("filter", t.filter);
      num("qos", t.requested_qos);
    }
  } else if (const auto* sa = std::get_if<Suback>(&packet)) {
    num("id", sa->packet_id);
    field("codes", hex(sa->return_codes));
  } else if (const auto* u = std::get_if<Unsubscribe>(&packet)) {
    num("id", u->packet_id);
    for (auto f : u->filters) field("filter", f);
  } else if (const auto* ua = std::get_if<Unsuback>(&packet)) {
    num("id", ua->packet_id);
  }
  return out;
}

// Records every packet; optionally fails on the n-th one.
class Collector : public PacketHandler {
 public:
  core::Status onPacket(const Packet& packet) override {
    packets.push_back(describe(packet));
    if (const auto* p = std::get_if<Publish>(&packet)) {
      payload_pointers.push_back(p->payload.data());
    }
    if (fail_on_qos2) {
      const auto* p = std::get_if<Publish>(&packet);
      if (p != nullptr && p->qos == 2) return core::failedPrecondition("QoS 2 is not supported");
    }
    return core::Status::ok();
  }
  std::vector<std::string> packets;
  std::vector<const uint8_t*> payload_pointers;
  bool fail_on_qos2 = false;
};

// Builds a packet body field by field.
class Body {
 public:
  Body& u8(uint8_t v) {
    bytes_.push_back(v);
    return *this;
  }
  Body& u16(uint16_t v) {
    bytes_.push_back(static_cast<uint8_t>(v >> 8));
    bytes_.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Body& str(std::string_view s) {
    u16(static_cast<uint16_t>(s.size()));
    return raw(s);
  }
  Body& raw(std::string_view s) {
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  Body& raw(std::initializer_list<uint8_t> b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
    return *this;
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

// First byte, a correct remaining length, then the body.
inline Bytes frame(uint8_t first, const Bytes& body) {
  Bytes out{first};
  size_t len = body.size();
  do {
    uint8_t b = len & 0x7F;
    len >>= 7;
    if (len > 0) b |= 0x80;
    out.push_back(b);
  } while (len > 0);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}
inline Bytes frame(uint8_t first, const Body& body) { return frame(first, body.bytes()); }

// The standard body of a valid MQTT 3.1.1 CONNECT prefix: name, level, flags, keep-alive.
inline Body connectPrefix(uint8_t flags, std::string_view name = "MQTT", uint8_t level = 4) {
  Body b;
  b.str(name).u8(level).u8(flags).u16(60);
  return b;
}

}  // namespace edgehub::transports::mqtt::test
