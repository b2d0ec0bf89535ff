#pragma once
// MQTT 3.1.1 control packets as plain value structs (OASIS MQTT 3.1.1, section 3).
//
// Thread-safety: plain values, as std::string_view.
// Ownership: every string_view and span in a decoded packet points either into the chunk passed
// to Decoder::feed() or into the decoder's internal reassembly buffer. Those views are valid only
// for the duration of the PacketHandler::onPacket() call that delivers the packet; a consumer
// that keeps anything (for example a PUBLISH payload put into a store message) copies it there.
// The same holds for the span-of-structs fields (Subscribe::topics, Unsubscribe::filters), which
// point into storage the decoder reuses for the next packet. Keeping views instead of owning
// strings is what makes decoding allocation-free at steady state (style rules 32-33).
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

namespace edgehub::transports::mqtt {

// The 4-bit packet type of the fixed header (MQTT 3.1.1 table 2.1). 0 and 15 are reserved.
enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

std::string_view packetTypeName(PacketType type);

// The CONNACK return codes (MQTT 3.1.1 table 3.1). The IoT Hub dialect uses 0, 1, 2, 3 and 5.
enum class ConnackCode : uint8_t {
  kAccepted = 0,
  kUnacceptableProtocolVersion = 1,
  kIdentifierRejected = 2,
  kServerUnavailable = 3,
  kBadUsernameOrPassword = 4,
  kNotAuthorized = 5,
};

// The SUBACK failure return code (MQTT 3.1.1 section 3.9.3); success codes are the granted QoS.
inline constexpr uint8_t kSubackFailure = 0x80;

// The only protocol level this codec speaks (MQTT 3.1.1).
inline constexpr uint8_t kProtocolLevel311 = 4;

struct Connect {
  std::string_view protocol_name;  // always "MQTT" once decoded (validated)
  uint8_t protocol_level = kProtocolLevel311;
  bool clean_session = false;
  uint16_t keep_alive_seconds = 0;
  std::string_view client_id;  // may be empty only with clean_session (MQTT-3.1.3-7/8)
  bool has_will = false;
  std::string_view will_topic;  // valid topic name when has_will
  std::span<const uint8_t> will_payload;
  uint8_t will_qos = 0;
  bool will_retain = false;
  std::optional<std::string_view> username;
  std::optional<std::span<const uint8_t>> password;  // binary data, not UTF-8 (section 3.1.3.5)
};

struct Connack {
  bool session_present = false;
  ConnackCode code = ConnackCode::kAccepted;
};

struct Publish {
  std::string_view topic;  // valid topic name: UTF-8, non-empty, no wildcards
  uint16_t packet_id = 0;  // 0 for QoS 0, non-zero otherwise
  uint8_t qos = 0;         // 0, 1 or 2 (the server refuses 2; the codec reports it)
  bool dup = false;
  bool retain = false;
  std::span<const uint8_t> payload;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP carry only a packet id; distinct types let a std::visit
// consumer treat them differently (the server refuses the three QoS 2 ones).
struct Puback {
  uint16_t packet_id = 0;
};
struct Pubrec {
  uint16_t packet_id = 0;
};
struct Pubrel {
  uint16_t packet_id = 0;
};
struct Pubcomp {
  uint16_t packet_id = 0;
};

struct SubscribeTopic {
  std::string_view filter;  // valid topic filter
  uint8_t requested_qos = 0;  // 0, 1 or 2
};

struct Subscribe {
  uint16_t packet_id = 0;
  std::span<const SubscribeTopic> topics;  // never empty once decoded (MQTT-3.8.3-3)
};

struct Suback {
  uint16_t packet_id = 0;
  std::span<const uint8_t> return_codes;  // each 0, 1, 2 or kSubackFailure
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  std::span<const std::string_view> filters;  // never empty once decoded (MQTT-3.10.3-2)
};

struct Unsuback {
  uint16_t packet_id = 0;
};

struct Pingreq {};
struct Pingresp {};
struct Disconnect {};

// One decoded packet. The alternative index order is the packet type order minus one, so
// packetTypeOf() is a cheap index computation.
using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect>;

inline PacketType packetTypeOf(const Packet& packet) {
  return static_cast<PacketType>(packet.index() + 1);
}

}  // namespace edgehub::transports::mqtt
