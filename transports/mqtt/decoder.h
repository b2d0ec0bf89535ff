#pragma once
// Decoder: an incremental MQTT 3.1.1 stream decoder (pure logic, no IO).
//
// Feed it the bytes of one connection in whatever chunks the socket returns; it calls
// PacketHandler::onPacket() once per complete packet, in stream order, synchronously inside
// feed(). A packet may be split across chunks at any byte, and one chunk may hold many packets.
//
// Zero copy: a packet whose bytes lie entirely inside one chunk is decoded in place, so PUBLISH
// topic and payload point into the caller's chunk. Only a packet split across chunks is copied,
// into one internal buffer that is reserved at construction and reused; it never grows past
// max_packet_size, because the size check runs on the fixed header, before any body byte is
// buffered. At steady state the decoder allocates nothing (SUBSCRIBE/UNSUBSCRIBE topic lists
// reuse member vectors; an error allocates its Status message once).
//
// Validation is strict (malformed input is from outside and ends the connection): every
// violation yields a non-OK Status whose message names the packet and the reason, plus a
// DecodeError for callers that branch (e.g. CONNACK 0x01 for an unsupported protocol level).
// After the first error the decoder is failed for good: feed() returns the same error and
// delivers nothing, because the stream position after a malformed packet is meaningless.
//
// Connection-level rules (CONNECT must come first and only once, keep-alive, QoS 2 refusal,
// flow control) belong to the server's session state machine, not here.
//
// Thread-safety: not thread-safe; one decoder per connection, used on that connection's loop
// thread. The handler is called on the thread that calls feed().
// Re-entrancy: onPacket() must not call feed() on the same decoder, nor destroy it; a session
// that decides to close returns an error (or records the decision) and tears down afterwards.
// Ownership: the decoder does not own the handler, which must outlive it. Views in a delivered
// packet are valid only during onPacket() (see packet.h).
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "transports/mqtt/packet.h"

namespace edgehub::transports::mqtt {

// Every reason a stream is refused. Stable names via decodeErrorName().
enum class DecodeError : uint8_t {
  kNone = 0,
  kRemainingLengthTooLong,    // remaining length encoded in more than 4 bytes
  kReservedPacketType,        // type 0 or 15
  kUnexpectedPacketType,      // a packet the peer's role never sends (CONNACK from a client)
  kInvalidFixedHeaderFlags,   // reserved flag bits wrong for the packet type
  kInvalidRemainingLength,    // wrong length for a fixed-size packet
  kPacketTooLarge,            // larger than DecoderOptions::max_packet_size
  kTruncated,                 // a field runs past the end of the packet
  kTrailingBytes,             // bytes left over inside a packet after its last field
  kInvalidUtf8,               // MQTT-1.5.3-1/-2
  kInvalidTopicName,          // empty or wildcard topic in PUBLISH or the will
  kInvalidTopicFilter,        // bad filter in SUBSCRIBE/UNSUBSCRIBE
  kInvalidQos,                // QoS 3 anywhere, or a reserved bit in a SUBSCRIBE option byte
  kDupWithQos0,               // MQTT-3.3.1-2
  kZeroPacketId,              // MQTT-2.3.1-1
  kNoTopics,                  // SUBSCRIBE/UNSUBSCRIBE/SUBACK without entries
  kInvalidProtocolName,       // not "MQTT" (MQTT-3.1.2-1): close without CONNACK
  kUnsupportedProtocolLevel,  // not 4 (MQTT-3.1.2-2): answer CONNACK 0x01, then close
  kReservedConnectFlag,       // MQTT-3.1.2-3
  kPasswordWithoutUsername,   // MQTT-3.1.2-22
  kInvalidWillFlags,          // will QoS/retain set without the will flag (MQTT-3.1.2-13/-15)
  kClientIdRejected,          // empty client id with clean session 0 (MQTT-3.1.3-8): CONNACK 0x02
  kInvalidConnackFlags,       // reserved CONNACK acknowledge-flag bits set
  kInvalidReturnCode,         // CONNACK code > 5 or SUBACK code not 0/1/2/0x80
  kHandlerError,              // PacketHandler::onPacket() returned an error
};

std::string_view decodeErrorName(DecodeError error);

// The CONNACK return code the server sends before closing, for the errors MQTT says to answer
// (MQTT-3.1.2-2, MQTT-3.1.3-8); nullopt means close without a CONNACK.
std::optional<ConnackCode> connackCodeFor(DecodeError error);

// Which side of the connection the decoder is on: a server decodes what clients send.
enum class Role : uint8_t { kServer, kClient };

struct DecoderOptions {
  Role role = Role::kServer;
  // Largest whole packet (fixed header included). IoT Hub caps messages at 256 KiB; the rest
  // leaves room for a long topic carrying a property bag.
  uint32_t max_packet_size = 256 * 1024 + 8 * 1024;
  // Reserved once for packets split across chunks; grows (up to max_packet_size) only when a
  // larger split packet arrives, then keeps its capacity.
  uint32_t initial_buffer_capacity = 4096;
};

// Receives decoded packets. Called synchronously from Decoder::feed() on the caller's thread.
class PacketHandler {
 public:
  virtual ~PacketHandler() = default;
  // A non-OK return stops decoding: feed() fails with DecodeError::kHandlerError and this
  // status (so a session can reject, e.g., a QoS 2 PUBLISH, from inside the callback).
  virtual core::Status onPacket(const Packet& packet) = 0;
};

class Decoder {
 public:
  Decoder(const DecoderOptions& options, PacketHandler& handler);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Consumes all of `bytes`, delivering each complete packet. Returns the first error (and
  // every later call returns it again). `bytes` need only live for the duration of the call.
  core::Status feed(std::span<const uint8_t> bytes);

  bool failed() const { return error_ != DecodeError::kNone; }
  DecodeError error() const { return error_; }
  const core::Status& status() const { return status_; }
  // True between packets (no partial packet held): a clean point to close.
  bool idle() const { return state_ == State::kHeader && header_len_ == 0; }
  uint64_t packetsDecoded() const { return packets_decoded_; }
  // Body bytes copied into the reassembly buffer (zero when every packet lay in one chunk).
  uint64_t bytesCopied() const { return bytes_copied_; }
  size_t bufferCapacityForTest() const { return body_.capacity(); }

 private:
  enum class State : uint8_t { kHeader, kBody };

  core::Status fail(DecodeError error, PacketType type, std::string_view reason);
  core::Status failHeader(DecodeError error, std::string_view reason);
  // Validates the fixed header once the remaining length is known.
  core::Status checkFixedHeader();
  core::Status dispatch(std::span<const uint8_t> body);
  core::Status decodeConnect(std::span<const uint8_t> body, Packet& out);
  core::Status decodePublish(std::span<const uint8_t> body, Packet& out);
  core::Status decodeSubscribe(std::span<const uint8_t> body, Packet& out);
  core::Status decodeUnsubscribe(std::span<const uint8_t> body, Packet& out);
  core::Status decodeSuback(std::span<const uint8_t> body, Packet& out);

  const DecoderOptions options_;
  PacketHandler& handler_;

  State state_ = State::kHeader;
  // Fixed header being assembled: first byte plus up to four remaining-length bytes.
  std::array<uint8_t, 5> header_{};
  uint8_t header_len_ = 0;
  uint8_t first_byte_ = 0;
  uint32_t remaining_ = 0;
  std::vector<uint8_t> body_;  // reassembly buffer for split packets
  // Reused per SUBSCRIBE/UNSUBSCRIBE so their topic lists cost no allocation once warm.
  std::vector<SubscribeTopic> subscribe_topics_;
  std::vector<std::string_view> unsubscribe_filters_;

  DecodeError error_ = DecodeError::kNone;
  core::Status status_;
  uint64_t packets_decoded_ = 0;
  uint64_t bytes_copied_ = 0;
};

}  // namespace edgehub::transports::mqtt
