#pragma once
// MQTT 3.1.1 packet encoders, for the server side (CONNACK, PUBLISH, PUBACK, SUBACK, UNSUBACK,
// PINGRESP) and the client side (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) used by
// tests and the load generator.
//
// Encoders append to a caller-owned ByteBuffer; clear() it between batches and it stops
// allocating once its capacity covers a batch. Many packets appended back to back are one
// write (design.md: batch every packet of a loop iteration into one write).
// PUBLISH also has a header-only form, encodePublishHeader(), writing into a caller-provided
// span so a transport can writev(header, payload) without copying the payload.
//
// Encoders check only what the wire format needs (string lengths <= 65535, remaining length
// <= 268435455, QoS <= 2); semantic rules (wildcards in a topic, packet id 0) are the caller's,
// which lets tests build deliberately invalid packets. Failures are kInvalidArgument and leave
// `out` unchanged.
//
// Thread-safety: pure functions; a ByteBuffer must not be shared between threads.
// Ownership: nothing is retained; views in the input packets need only live for the call.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "transports/mqtt/packet.h"

namespace edgehub::transports::mqtt {

using ByteBuffer = std::vector<uint8_t>;

inline constexpr uint32_t kMaxRemainingLength = 268'435'455;
// Fixed header (5) + topic length (2) + topic (65535) + packet id (2).
inline constexpr size_t kMaxPublishHeaderSize = 5 + 2 + 65535 + 2;

// Size of the PUBLISH header (everything but the payload) for this topic and QoS.
size_t publishHeaderSize(std::string_view topic, uint8_t qos, size_t payload_size);

// Writes the PUBLISH fixed header, topic and packet id (QoS > 0) into `out`; the remaining
// length covers publish.payload.size(), whose bytes are not written. Returns the header length.
// Fails if `out` is too small (kMaxPublishHeaderSize always suffices) or lengths overflow.
core::Result<size_t> encodePublishHeader(std::span<uint8_t> out, const Publish& publish);

// Server side.
void appendConnack(ByteBuffer& out, const Connack& connack);
core::Status appendPublish(ByteBuffer& out, const Publish& publish);  // header + payload
void appendPuback(ByteBuffer& out, uint16_t packet_id);
void appendPubrec(ByteBuffer& out, uint16_t packet_id);
void appendPubrel(ByteBuffer& out, uint16_t packet_id);
void appendPubcomp(ByteBuffer& out, uint16_t packet_id);
core::Status appendSuback(ByteBuffer& out, uint16_t packet_id,
                          std::span<const uint8_t> return_codes);
void appendUnsuback(ByteBuffer& out, uint16_t packet_id);
void appendPingresp(ByteBuffer& out);

// Client side.
core::Status appendConnect(ByteBuffer& out, const Connect& connect);
core::Status appendSubscribe(ByteBuffer& out, uint16_t packet_id,
                             std::span<const SubscribeTopic> topics);
core::Status appendUnsubscribe(ByteBuffer& out, uint16_t packet_id,
                               std::span<const std::string_view> filters);
void appendPingreq(ByteBuffer& out);
void appendDisconnect(ByteBuffer& out);

// Any packet (dispatches to the functions above). Connect::protocol_name and protocol_level
// are written as given, so a test can encode a CONNECT the decoder must refuse.
core::Status appendPacket(ByteBuffer& out, const Packet& packet);

}  // namespace edgehub::transports::mqtt
