#include "transports/mqtt/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "tests/transports/mqtt/test_util.h"
#include "transports/mqtt/encoder.h"

namespace edgehub::transports::mqtt {
namespace {

using test::Body;
using test::Bytes;
using test::Collector;
using test::describe;
using test::connectPrefix;
using test::frame;

struct Decoded {
  std::vector<std::string> packets;
  core::Status status;
  DecodeError error = DecodeError::kNone;
};

// Feeds `stream` cut at the given (sorted) positions.
Decoded decodeChunked(const Bytes& stream, const std::vector<size_t>& cuts,
                      Role role = Role::kServer, uint32_t max_packet_size = 1 << 20) {
  Collector collector;
  DecoderOptions options;
  options.role = role;
  options.max_packet_size = max_packet_size;
  Decoder decoder(options, collector);
  size_t start = 0;
  Decoded out;
  auto feedRange = [&](size_t from, size_t to) {
    core::Status s = decoder.feed(std::span<const uint8_t>(stream.data() + from, to - from));
    if (!s.isOk() && out.status.isOk()) out.status = s;
  };
  for (size_t cut : cuts) {
    feedRange(start, cut);
    start = cut;
  }
  feedRange(start, stream.size());
  out.packets = collector.packets;
  out.error = decoder.error();
  EXPECT_EQ(out.status.isOk(), !decoder.failed());
  return out;
}

Decoded decodeWhole(const Bytes& stream, Role role = Role::kServer) {
  return decodeChunked(stream, {}, role);
}

Decoded decodeBytewise(const Bytes& stream, Role role = Role::kServer) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  return decodeChunked(stream, cuts, role);
}

// Sample packets in each direction; string storage is static so the views stay valid.
const uint8_t kPassword[] = {'S', 'A', 'S', 0x00, 0xff};
const uint8_t kPayload[] = {'{', '"', 't', '"', ':', '1', '}'};
const uint8_t kWillPayload[] = {'b', 'y', 'e'};
const SubscribeTopic kSubTopics[] = {{"devices/dev1/messages/devicebound/#", 1},
                                     {"$iothub/twin/res/#", 0},
                                     {"$iothub/methods/POST/+", 2}};
const std::string_view kUnsubFilters[] = {"a/+/c", "#"};
const uint8_t kSubackCodes[] = {1, 0, 0x80};

std::vector<Packet> clientToServerPackets() {
  Connect connect;
  connect.protocol_name = "MQTT";
  connect.client_id = "dev1/mod1";
  connect.keep_alive_seconds = 180;
  connect.username = "myhub.azure-devices.net/dev1/mod1/?api-version=2021-04-12";
  connect.password = std::span<const uint8_t>(kPassword);
  Connect with_will;
  with_will.protocol_name = "MQTT";
  with_will.clean_session = true;
  with_will.client_id = "";
  with_will.has_will = true;
  with_will.will_topic = "devices/dev1/messages/events/";
  with_will.will_payload = kWillPayload;
  with_will.will_qos = 1;
  with_will.will_retain = true;
  return {
      connect,
      with_will,
      Publish{"devices/dev1/messages/events/", 7, 1, false, false, kPayload},
      Publish{"t", 0, 0, false, true, {}},
      Publish{"caf\xc3\xa9/\xf0\x9f\x98\x80", 65535, 2, true, false, kPayload},
      Puback{1},
      Pubrec{2},
      Pubrel{3},
      Pubcomp{4},
      Subscribe{10, kSubTopics},
      Unsubscribe{11, kUnsubFilters},
      Pingreq{},
      Disconnect{},
  };
}

std::vector<Packet> serverToClientPackets() {
  return {
      Connack{true, ConnackCode::kAccepted},
      Connack{false, ConnackCode::kNotAuthorized},
      Publish{"devices/dev1/messages/devicebound/x", 9, 1, true, false, kPayload},
      Puback{5},
      Pubrec{6},
      Pubrel{7},
      Pubcomp{8},
      Suback{10, kSubackCodes},
      Unsuback{11},
      Pingresp{},
  };
}

Bytes encodeAll(const std::vector<Packet>& packets, std::vector<std::string>* expected) {
  ByteBuffer out;
  for (const auto& p : packets) {
    EXPECT_TRUE(appendPacket(out, p).isOk());
    if (expected) expected->push_back(describe(p));
  }
  return out;
}

TEST(DecoderTest, RoundTripsEveryClientPacket) {
  std::vector<std::string> expected;
  Bytes stream = encodeAll(clientToServerPackets(), &expected);
  Decoded d = decodeWhole(stream);
  ASSERT_TRUE(d.status.isOk()) << d.status.toString();
  EXPECT_EQ(d.packets, expected);
}

TEST(DecoderTest, RoundTripsEveryServerPacketInClientRole) {
  std::vector<std::string> expected;
  Bytes stream = encodeAll(serverToClientPackets(), &expected);
  Decoded d = decodeWhole(stream, Role::kClient);
  ASSERT_TRUE(d.status.isOk()) << d.status.toString();
  EXPECT_EQ(d.packets, expected);
}

TEST(DecoderTest, SplitAtEveryBytePositionGivesSamePackets) {
  for (Role role : {Role::kServer, Role::kClient}) {
    std::vector<std::string> expected;
    Bytes stream = encodeAll(
        role == Role::kServer ? clientToServerPackets() : serverToClientPackets(), &expected);
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      Decoded d = decodeChunked(stream, {cut}, role);
      ASSERT_TRUE(d.status.isOk()) << "cut " << cut << ": " << d.status.toString();
      ASSERT_EQ(d.packets, expected) << "cut " << cut;
    }
    Decoded bytewise = decodeBytewise(stream, role);
    ASSERT_TRUE(bytewise.status.isOk());
    EXPECT_EQ(bytewise.packets, expected);
  }
}

TEST(DecoderTest, SplitAtEveryPairOfPositions) {
  std::vector<Packet> packets = {
      Publish{"a/b", 1, 1, false, false, kPayload}, Pingreq{}, Subscribe{2, kSubTopics},
      Publish{"c", 0, 0, false, false, kPayload}};
  std::vector<std::string> expected;
  Bytes stream = encodeAll(packets, &expected);
  for (size_t i = 0; i <= stream.size(); ++i) {
    for (size_t j = i; j <= stream.size(); ++j) {
      Decoded d = decodeChunked(stream, {i, j});
      ASSERT_TRUE(d.status.isOk()) << i << "," << j;
      ASSERT_EQ(d.packets, expected) << i << "," << j;
    }
  }
}

TEST(DecoderTest, ZeroCopyWhenPacketIsInOneChunk) {
  ByteBuffer stream;
  for (uint16_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(appendPublish(stream, Publish{"t/x", id, 1, false, false, kPayload}).isOk());
  }
  Collector collector;
  Decoder decoder(DecoderOptions{}, collector);
  ASSERT_TRUE(decoder.feed(stream).isOk());
  ASSERT_EQ(collector.payload_pointers.size(), 3u);
  for (const uint8_t* p : collector.payload_pointers) {
    EXPECT_GE(p, stream.data());
    EXPECT_LT(p, stream.data() + stream.size());
  }
  EXPECT_EQ(decoder.bytesCopied(), 0u);
  EXPECT_EQ(decoder.packetsDecoded(), 3u);
  EXPECT_TRUE(decoder.idle());
}

TEST(DecoderTest, SplitPacketIsReassembledWithoutGrowingWarmBuffer) {
  ByteBuffer stream;
  ASSERT_TRUE(appendPublish(stream, Publish{"t/x", 1, 1, false, false, kPayload}).isOk());
  Collector collector;
  DecoderOptions options;
  options.initial_buffer_capacity = 64;
  Decoder decoder(options, collector);
  const size_t capacity = decoder.bufferCapacityForTest();
  EXPECT_GE(capacity, 64u);
  for (int round = 0; round < 100; ++round) {
    ASSERT_TRUE(decoder.feed(std::span<const uint8_t>(stream.data(), 5)).isOk());
    EXPECT_FALSE(decoder.idle());
    ASSERT_TRUE(decoder.feed(std::span<const uint8_t>(stream.data() + 5, stream.size() - 5)).isOk());
    EXPECT_TRUE(decoder.idle());
  }
  EXPECT_EQ(collector.packets.size(), 100u);
  EXPECT_EQ(decoder.bufferCapacityForTest(), capacity);
  EXPECT_GT(decoder.bytesCopied(), 0u);
}

TEST(DecoderTest, EmptyFeedIsHarmless) {
  Collector collector;
  Decoder decoder(DecoderOptions{}, collector);
  EXPECT_TRUE(decoder.feed({}).isOk());
  EXPECT_TRUE(decoder.idle());
}

TEST(DecoderTest, RemainingLengthBoundariesDecode) {
  for (size_t payload_size : {0u, 1u, 120u, 121u, 122u, 16375u, 16376u, 16377u, 70000u}) {
    std::vector<uint8_t> payload(payload_size, 0x5a);
    Publish p{"abc", 3, 1, false, false, payload};
    ByteBuffer stream;
    ASSERT_TRUE(appendPublish(stream, p).isOk());
    Decoded d = decodeBytewise(stream);
    ASSERT_TRUE(d.status.isOk()) << payload_size;
    ASSERT_EQ(d.packets, std::vector<std::string>{describe(p)});
  }
}

TEST(DecoderTest, FourByteRemainingLengthIsAccepted) {
  // 0xFF 0xFF 0xFF 0x7F = 268435455, the maximum; rejected only by the size limit.
  Collector collector;
  Decoder decoder(DecoderOptions{}, collector);
  const Bytes header = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
  core::Status s = decoder.feed(header);
  EXPECT_EQ(decoder.error(), DecodeError::kPacketTooLarge);
  EXPECT_EQ(s.message(),
            "malformed PUBLISH: packet of 268435460 bytes exceeds the maximum packet size of "
            "270336 bytes");
}

TEST(DecoderTest, MaxPacketSizeRejectsBeforeBufferingBody) {
  DecoderOptions options;
  options.max_packet_size = 100;
  options.initial_buffer_capacity = 16;
  Collector collector;
  Decoder decoder(options, collector);
  std::vector<uint8_t> payload(200, 1);
  ByteBuffer stream;
  ASSERT_TRUE(appendPublish(stream, Publish{"t", 1, 1, false, false, payload}).isOk());
  // Only the fixed header: the error is known before any body byte arrives.
  core::Status s = decoder.feed(std::span<const uint8_t>(stream.data(), 3));
  EXPECT_EQ(s.code(), core::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            "malformed PUBLISH: packet of 208 bytes exceeds the maximum packet size of 100 bytes");
  EXPECT_EQ(decoder.bytesCopied(), 0u);
  EXPECT_EQ(decoder.bufferCapacityForTest(), 16u);
  EXPECT_TRUE(collector.packets.empty());
}

TEST(DecoderTest, PacketOfExactlyMaxSizeIsAccepted) {
  std::vector<uint8_t> payload(100 - 2 - 3 - 2, 1);  // header 1+1, topic 2+1, id 2
  ByteBuffer stream;
  ASSERT_TRUE(appendPublish(stream, Publish{"t", 1, 1, false, false, payload}).isOk());
  ASSERT_EQ(stream.size(), 100u);
  EXPECT_TRUE(decodeChunked(stream, {50}, Role::kServer, 100).status.isOk());
  EXPECT_EQ(decodeChunked(stream, {50}, Role::kServer, 99).error, DecodeError::kPacketTooLarge);
}

TEST(DecoderTest, StaysFailedAfterError) {
  Collector collector;
  Decoder decoder(DecoderOptions{}, collector);
  const Bytes bad = {0x00, 0x00};
  core::Status first = decoder.feed(bad);
  ASSERT_FALSE(first.isOk());
  ByteBuffer good;
  appendPingreq(good);
  core::Status again = decoder.feed(good);
  EXPECT_EQ(again, first);
  EXPECT_TRUE(decoder.failed());
  EXPECT_TRUE(collector.packets.empty());
}

TEST(DecoderTest, PacketsBeforeAnErrorInTheSameChunkAreDelivered) {
  ByteBuffer stream;
  appendPingreq(stream);
  appendPuback(stream, 9);
  stream.push_back(0xF0);  // reserved type 15
  stream.push_back(0x00);
  appendPingreq(stream);
  Decoded d = decodeWhole(stream);
  EXPECT_EQ(d.packets, (std::vector<std::string>{"PINGREQ", "PUBACK id=9"}));
  EXPECT_EQ(d.error, DecodeError::kReservedPacketType);
}

TEST(DecoderTest, HandlerErrorStopsDecoding) {
  ByteBuffer stream;
  ASSERT_TRUE(appendPublish(stream, Publish{"t", 1, 2, false, false, kPayload}).isOk());
  appendPingreq(stream);
  Collector collector;
  collector.fail_on_qos2 = true;
  Decoder decoder(DecoderOptions{}, collector);
  core::Status s = decoder.feed(stream);
  EXPECT_EQ(s.code(), core::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "QoS 2 is not supported");
  EXPECT_EQ(decoder.error(), DecodeError::kHandlerError);
  EXPECT_EQ(collector.packets.size(), 1u);  // the PINGREQ after it was not delivered
}

TEST(DecoderTest, ConnackCodeForErrors) {
  EXPECT_EQ(connackCodeFor(DecodeError::kUnsupportedProtocolLevel),
            ConnackCode::kUnacceptableProtocolVersion);
  EXPECT_EQ(connackCodeFor(DecodeError::kClientIdRejected), ConnackCode::kIdentifierRejected);
  EXPECT_EQ(connackCodeFor(DecodeError::kInvalidProtocolName), std::nullopt);
  EXPECT_EQ(connackCodeFor(DecodeError::kInvalidUtf8), std::nullopt);
  EXPECT_EQ(decodeErrorName(DecodeError::kZeroPacketId), "zero_packet_id");
}

// ---- Malformed input: one row per rule, with the exact reason. ----

struct MalformedCase {
  const char* name;
  Bytes bytes;
  DecodeError error;
  const char* message;
  Role role = Role::kServer;
};

Bytes publishBody(std::string_view topic, uint8_t first = 0x32, bool with_id = true,
                  uint16_t id = 1) {
  Body b;
  b.str(topic);
  if (with_id) b.u16(id);
  b.raw("x");
  return frame(first, b);
}

Bytes subscribe(const Body& body, uint8_t first = 0x82) { return frame(first, body); }

std::vector<MalformedCase> malformedCases() {
  std::vector<MalformedCase> c;
  auto add = [&c](const char* name, Bytes bytes, DecodeError error, const char* message,
                  Role role = Role::kServer) {
    c.push_back(MalformedCase{name, std::move(bytes), error, message, role});
  };
  // Fixed header.
  add("remaining length 5 bytes", {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},
      DecodeError::kRemainingLengthTooLong,
      "malformed fixed header: remaining length encoded in more than 4 bytes");
  add("type 0", {0x00, 0x00}, DecodeError::kReservedPacketType,
      "malformed fixed header: reserved packet type 0");
  add("type 15", {0xF0, 0x00}, DecodeError::kReservedPacketType,
      "malformed fixed header: reserved packet type 15");
  add("subscribe flags 0", subscribe(Body().u16(1).str("a").u8(0), 0x80),
      DecodeError::kInvalidFixedHeaderFlags,
      "malformed SUBSCRIBE: reserved fixed header flags are 0, must be 2");
  add("unsubscribe flags 3", frame(0xA3, Body().u16(1).str("a")),
      DecodeError::kInvalidFixedHeaderFlags,
      "malformed UNSUBSCRIBE: reserved fixed header flags are 3, must be 2");
  add("pubrel flags 0", {0x60, 0x02, 0x00, 0x01}, DecodeError::kInvalidFixedHeaderFlags,
      "malformed PUBREL: reserved fixed header flags are 0, must be 2");
  add("puback flags 1", {0x41, 0x02, 0x00, 0x01}, DecodeError::kInvalidFixedHeaderFlags,
      "malformed PUBACK: reserved fixed header flags are 1, must be 0");
  add("connect flags 8", frame(0x18, connectPrefix(0x02).str("c")),
      DecodeError::kInvalidFixedHeaderFlags,
      "malformed CONNECT: reserved fixed header flags are 8, must be 0");
  add("pingreq with body", {0xC0, 0x01, 0x00}, DecodeError::kInvalidRemainingLength,
      "malformed PINGREQ: remaining length 1, must be 0");
  add("disconnect with body", {0xE0, 0x01, 0x00}, DecodeError::kInvalidRemainingLength,
      "malformed DISCONNECT: remaining length 1, must be 0");
  add("puback length 3", {0x40, 0x03, 0x00, 0x01, 0x00}, DecodeError::kInvalidRemainingLength,
      "malformed PUBACK: remaining length 3, must be 2");
  add("puback length 1", {0x40, 0x01, 0x01}, DecodeError::kInvalidRemainingLength,
      "malformed PUBACK: remaining length 1, must be 2");
  add("connack from a client", {0x20, 0x02, 0x00, 0x00}, DecodeError::kUnexpectedPacketType,
      "malformed CONNACK: sent by a client (the packet only travels the other way)");
  add("suback from a client", {0x90, 0x03, 0x00, 0x01, 0x00}, DecodeError::kUnexpectedPacketType,
      "malformed SUBACK: sent by a client (the packet only travels the other way)");
  add("pingresp from a client", {0xD0, 0x00}, DecodeError::kUnexpectedPacketType,
      "malformed PINGRESP: sent by a client (the packet only travels the other way)");
  add("connect from a server", frame(0x10, connectPrefix(0x02).str("c")),
      DecodeError::kUnexpectedPacketType,
      "malformed CONNECT: sent by a server (the packet only travels the other way)",
      Role::kClient);
  // PUBLISH.
  add("publish qos 3", publishBody("a", 0x36), DecodeError::kInvalidQos,
      "malformed PUBLISH: QoS 3 in the fixed header");
  add("publish dup with qos 0", publishBody("a", 0x38, false), DecodeError::kDupWithQos0,
      "malformed PUBLISH: DUP flag set on a QoS 0 message");
  add("publish topic with +", publishBody("a/+/b"), DecodeError::kInvalidTopicName,
      "malformed PUBLISH: invalid topic name: wildcard '+' or '#' in a topic name");
  add("publish topic with #", publishBody("a/#", 0x30, false), DecodeError::kInvalidTopicName,
      "malformed PUBLISH: invalid topic name: wildcard '+' or '#' in a topic name");
  add("publish empty topic", publishBody(""), DecodeError::kInvalidTopicName,
      "malformed PUBLISH: invalid topic name: empty");
  add("publish topic with NUL", publishBody(std::string_view("a\0b", 3)),
      DecodeError::kInvalidUtf8, "malformed PUBLISH: topic name is not valid UTF-8");
  add("publish topic with surrogate", publishBody("\xed\xa0\x80"), DecodeError::kInvalidUtf8,
      "malformed PUBLISH: topic name is not valid UTF-8");
  add("publish topic overlong", publishBody("\xc0\xaf"), DecodeError::kInvalidUtf8,
      "malformed PUBLISH: topic name is not valid UTF-8");
  add("publish qos1 packet id 0", publishBody("a", 0x32, true, 0), DecodeError::kZeroPacketId,
      "malformed PUBLISH: packet id 0 with QoS > 0");
  add("publish truncated topic", frame(0x30, Body().u16(5).raw("ab")), DecodeError::kTruncated,
      "malformed PUBLISH: truncated topic name");
  add("publish truncated packet id", frame(0x32, Body().str("ab").u8(1)),
      DecodeError::kTruncated, "malformed PUBLISH: truncated packet id");
  add("publish empty body", {0x30, 0x00}, DecodeError::kTruncated,
      "malformed PUBLISH: truncated topic name");
  // PUBACK family.
  add("puback id 0", {0x40, 0x02, 0x00, 0x00}, DecodeError::kZeroPacketId,
      "malformed PUBACK: packet id 0");
  add("pubrel id 0", {0x62, 0x02, 0x00, 0x00}, DecodeError::kZeroPacketId,
      "malformed PUBREL: packet id 0");
  // SUBSCRIBE.
  add("subscribe no filters", subscribe(Body().u16(1)), DecodeError::kNoTopics,
      "malformed SUBSCRIBE: no topic filters");
  add("subscribe id 0", subscribe(Body().u16(0).str("a").u8(0)), DecodeError::kZeroPacketId,
      "malformed SUBSCRIBE: packet id 0");
  add("subscribe # not last", subscribe(Body().u16(1).str("a/#/b").u8(0)),
      DecodeError::kInvalidTopicFilter,
      "malformed SUBSCRIBE: invalid topic filter: '#' is not the last character");
  add("subscribe # not whole level", subscribe(Body().u16(1).str("a#").u8(0)),
      DecodeError::kInvalidTopicFilter,
      "malformed SUBSCRIBE: invalid topic filter: '#' is not a whole level");
  add("subscribe + not whole level", subscribe(Body().u16(1).str("a/b+").u8(0)),
      DecodeError::kInvalidTopicFilter,
      "malformed SUBSCRIBE: invalid topic filter: '+' is not a whole level");
  add("subscribe empty filter", subscribe(Body().u16(1).str("").u8(0)),
      DecodeError::kInvalidTopicFilter, "malformed SUBSCRIBE: invalid topic filter: empty");
  add("subscribe filter bad utf8", subscribe(Body().u16(1).str("\xff").u8(0)),
      DecodeError::kInvalidUtf8, "malformed SUBSCRIBE: topic filter is not valid UTF-8");
  add("subscribe qos 3", subscribe(Body().u16(1).str("a").u8(3)), DecodeError::kInvalidQos,
      "malformed SUBSCRIBE: requested QoS 3");
  add("subscribe reserved option bits", subscribe(Body().u16(1).str("a").u8(0x04)),
      DecodeError::kInvalidQos,
      "malformed SUBSCRIBE: reserved bits set in the requested QoS byte");
  add("subscribe missing qos byte", subscribe(Body().u16(1).str("a")), DecodeError::kTruncated,
      "malformed SUBSCRIBE: truncated requested QoS");
  add("subscribe second filter truncated", subscribe(Body().u16(1).str("a").u8(1).u8(0)),
      DecodeError::kTruncated, "malformed SUBSCRIBE: truncated topic filter");
  add("subscribe truncated packet id", subscribe(Body().u8(1)), DecodeError::kTruncated,
      "malformed SUBSCRIBE: truncated packet id");
  // UNSUBSCRIBE.
  add("unsubscribe no filters", frame(0xA2, Body().u16(1)), DecodeError::kNoTopics,
      "malformed UNSUBSCRIBE: no topic filters");
  add("unsubscribe id 0", frame(0xA2, Body().u16(0).str("a")), DecodeError::kZeroPacketId,
      "malformed UNSUBSCRIBE: packet id 0");
  add("unsubscribe bad filter", frame(0xA2, Body().u16(1).str("+a")),
      DecodeError::kInvalidTopicFilter,
      "malformed UNSUBSCRIBE: invalid topic filter: '+' is not a whole level");
  // CONNECT.
  add("connect wrong protocol name", frame(0x10, connectPrefix(0x02, "MQTX").str("c")),
      DecodeError::kInvalidProtocolName, "malformed CONNECT: protocol name is not \"MQTT\"");
  add("connect MQIsdp", frame(0x10, connectPrefix(0x02, "MQIsdp", 3).str("c")),
      DecodeError::kUnsupportedProtocolLevel,
      "malformed CONNECT: protocol MQIsdp (MQTT 3.1) is not supported, only MQTT 3.1.1");
  add("connect level 5", frame(0x10, connectPrefix(0x02, "MQTT", 5).u8(0).str("c")),
      DecodeError::kUnsupportedProtocolLevel,
      "malformed CONNECT: protocol level 5 is not supported, only 4 (MQTT 3.1.1)");
  add("connect level 3", frame(0x10, connectPrefix(0x02, "MQTT", 3).str("c")),
      DecodeError::kUnsupportedProtocolLevel,
      "malformed CONNECT: protocol level 3 is not supported, only 4 (MQTT 3.1.1)");
  add("connect reserved flag", frame(0x10, connectPrefix(0x03).str("c")),
      DecodeError::kReservedConnectFlag, "malformed CONNECT: reserved connect flag set");
  add("connect password without username", frame(0x10, connectPrefix(0x42).str("c").str("p")),
      DecodeError::kPasswordWithoutUsername,
      "malformed CONNECT: password flag set without username flag");
  add("connect will qos without will", frame(0x10, connectPrefix(0x0A).str("c")),
      DecodeError::kInvalidWillFlags,
      "malformed CONNECT: will QoS or will retain set without will flag");
  add("connect will retain without will", frame(0x10, connectPrefix(0x22).str("c")),
      DecodeError::kInvalidWillFlags,
      "malformed CONNECT: will QoS or will retain set without will flag");
  add("connect will qos 3", frame(0x10, connectPrefix(0x1E).str("c").str("w").str("m")),
      DecodeError::kInvalidQos, "malformed CONNECT: will QoS 3");
  add("connect will topic wildcard", frame(0x10, connectPrefix(0x06).str("c").str("w/#").str("m")),
      DecodeError::kInvalidTopicName,
      "malformed CONNECT: will topic: invalid topic name: wildcard '+' or '#' in a topic name");
  add("connect will topic empty", frame(0x10, connectPrefix(0x06).str("c").str("").str("m")),
      DecodeError::kInvalidTopicName, "malformed CONNECT: will topic: invalid topic name: empty");
  add("connect will message missing", frame(0x10, connectPrefix(0x06).str("c").str("w")),
      DecodeError::kTruncated, "malformed CONNECT: truncated will message");
  add("connect client id bad utf8", frame(0x10, connectPrefix(0x02).str("\xed\xbf\xbf")),
      DecodeError::kInvalidUtf8, "malformed CONNECT: client id is not valid UTF-8");
  add("connect username bad utf8", frame(0x10, connectPrefix(0x82).str("c").str("\xc3")),
      DecodeError::kInvalidUtf8, "malformed CONNECT: username is not valid UTF-8");
  add("connect truncated client id", frame(0x10, connectPrefix(0x02).u16(9).raw("abc")),
      DecodeError::kTruncated, "malformed CONNECT: truncated client id");
  add("connect truncated keepalive", frame(0x10, Body().str("MQTT").u8(4).u8(2).u8(0)),
      DecodeError::kTruncated, "malformed CONNECT: truncated keep alive");
  add("connect missing password", frame(0x10, connectPrefix(0xC2).str("c").str("u")),
      DecodeError::kTruncated, "malformed CONNECT: truncated password");
  add("connect trailing bytes", frame(0x10, connectPrefix(0x02).str("c").raw("zz")),
      DecodeError::kTrailingBytes, "malformed CONNECT: trailing bytes after the payload");
  add("connect empty client id clean 0", frame(0x10, connectPrefix(0x00).str("")),
      DecodeError::kClientIdRejected,
      "malformed CONNECT: empty client id with clean session 0");
  // Client role: what a server may send.
  add("connack reserved flags", {0x20, 0x02, 0x02, 0x00}, DecodeError::kInvalidConnackFlags,
      "malformed CONNACK: reserved acknowledge flags set", Role::kClient);
  add("connack code 6", {0x20, 0x02, 0x00, 0x06}, DecodeError::kInvalidReturnCode,
      "malformed CONNACK: return code above 5", Role::kClient);
  add("suback bad code", {0x90, 0x03, 0x00, 0x01, 0x03}, DecodeError::kInvalidReturnCode,
      "malformed SUBACK: return code not 0, 1, 2 or 0x80", Role::kClient);
  add("suback no codes", {0x90, 0x02, 0x00, 0x01}, DecodeError::kNoTopics,
      "malformed SUBACK: no return codes", Role::kClient);
  add("unsuback id 0", {0xB0, 0x02, 0x00, 0x00}, DecodeError::kZeroPacketId,
      "malformed UNSUBACK: packet id 0", Role::kClient);
  add("subscribe from a server", subscribe(Body().u16(1).str("a").u8(0)),
      DecodeError::kUnexpectedPacketType,
      "malformed SUBSCRIBE: sent by a server (the packet only travels the other way)",
      Role::kClient);
  return c;
}

TEST(DecoderMalformedTest, EveryCaseFailsWithItsReasonWholeAndBytewise) {
  for (const auto& c : malformedCases()) {
    SCOPED_TRACE(c.name);
    // A valid packet first proves the error is about the malformed one, not stream start.
    ByteBuffer stream;
    if (c.role == Role::kServer) {
      appendPingreq(stream);
    } else {
      appendPingresp(stream);
    }
    stream.insert(stream.end(), c.bytes.begin(), c.bytes.end());
    for (bool bytewise : {false, true}) {
      Decoded d = bytewise ? decodeBytewise(stream, c.role) : decodeWhole(stream, c.role);
      EXPECT_EQ(d.error, c.error) << decodeErrorName(d.error);
      EXPECT_EQ(d.status.message(), c.message);
      EXPECT_EQ(d.packets.size(), 1u);
      EXPECT_EQ(d.status.code(), core::StatusCode::kInvalidArgument);
    }
  }
}

TEST(DecoderMalformedTest, ValidCounterpartsOfEdgeCasesDecode) {
  // The accepting side of rules above, so a too-strict decoder fails here.
  const std::vector<Bytes> valid = {
      frame(0x10, connectPrefix(0x02).str("")),                      // empty id, clean 1
      frame(0x10, connectPrefix(0x36).str("c").str("w").str("")),   // will qos 2, retain
      frame(0x10, connectPrefix(0x82).str("c").str("")),            // empty username
      frame(0x10, connectPrefix(0xC2).str("c").str("u").str("")),   // empty password
      publishBody("a", 0x34),                                       // qos 2 is decoded
      publishBody("a", 0x3B),                                       // dup + qos1 + retain
      frame(0x30, Body().str("a")),                                 // empty payload
      subscribe(Body().u16(1).str("#").u8(2).str("+/+").u8(1)),
      {0x30, 0x80, 0x00},  // non-minimal remaining length 0 is tolerated, then truncated
  };
  for (size_t i = 0; i + 1 < valid.size(); ++i) {
    Decoded d = decodeBytewise(valid[i]);
    EXPECT_TRUE(d.status.isOk()) << i << ": " << d.status.toString();
    EXPECT_EQ(d.packets.size(), 1u) << i;
  }
  EXPECT_EQ(decodeWhole(valid.back()).error, DecodeError::kTruncated);
}

// ---- Deterministic fuzzing. ----

class RandomPackets {
 public:
  explicit RandomPackets(uint32_t seed) : rng_(seed) {}

  uint32_t below(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng_); }

  std::string_view topic() {
    static const char* kLevels[] = {"a", "devices", "dev1", "$iothub", "caf\xc3\xa9", "", "x_y"};
    std::string t;
    int levels = 1 + static_cast<int>(below(4));
    for (int i = 0; i < levels; ++i) {
      if (i > 0) t.push_back('/');
      t.append(kLevels[below(7)]);
    }
    if (t.empty()) t.push_back('t');
    return keep(std::move(t));
  }
  std::string_view filter() {
    static const char* kFilters[] = {"#", "+", "a/+/c", "devices/+/messages/#", "$iothub/#", "x"};
    return kFilters[below(6)];
  }
  std::span<const uint8_t> blob(uint32_t max) {
    std::string b(below(max + 1), '\0');
    for (auto& ch : b) ch = static_cast<char>(below(256));
    std::string_view kept = keep(std::move(b));
    return {reinterpret_cast<const uint8_t*>(kept.data()), kept.size()};
  }
  uint16_t id() { return static_cast<uint16_t>(1 + below(65535)); }

  // A valid client-to-server packet.
  Packet next() {
    switch (below(9)) {
      case 0: {
        Connect c;
        c.protocol_name = "MQTT";
        c.clean_session = below(2) == 1;
        c.client_id = c.clean_session && below(2) ? std::string_view() : topic();
        c.keep_alive_seconds = static_cast<uint16_t>(below(65536));
        if (below(2)) {
          c.has_will = true;
          c.will_topic = topic();
          c.will_payload = blob(20);
          c.will_qos = static_cast<uint8_t>(below(3));
          c.will_retain = below(2) == 1;
        }
        if (below(2)) {
          c.username = topic();
          if (below(2)) c.password = blob(30);
        }
        return c;
      }
      case 1:
      case 2:
      case 3: {
        Publish p;
        p.topic = topic();
        p.qos = static_cast<uint8_t>(below(3));
        p.packet_id = p.qos > 0 ? id() : 0;
        p.dup = p.qos > 0 && below(2);
        p.retain = below(2) == 1;
        p.payload = blob(300);
        return p;
      }
      case 4: {
        uint16_t i = id();
        switch (below(4)) {
          case 0: return Puback{i};
          case 1: return Pubrec{i};
          case 2: return Pubrel{i};
          default: return Pubcomp{i};
        }
      }
      case 5: {
        auto& topics = sub_storage_.emplace_back();
        for (uint32_t n = 1 + below(3); n > 0; --n) {
          topics.push_back(SubscribeTopic{filter(), static_cast<uint8_t>(below(3))});
        }
        return Subscribe{id(), topics};
      }
      case 6: {
        auto& filters = unsub_storage_.emplace_back();
        for (uint32_t n = 1 + below(3); n > 0; --n) filters.push_back(filter());
        return Unsubscribe{id(), filters};
      }
      case 7: return Pingreq{};
      default: return Disconnect{};
    }
  }

  std::vector<size_t> cuts(size_t size) {
    std::vector<size_t> out;
    if (size == 0) return out;
    uint32_t n = below(8);
    for (uint32_t i = 0; i < n; ++i) out.push_back(below(static_cast<uint32_t>(size) + 1));
    std::sort(out.begin(), out.end());
    return out;
  }

  void mutate(Bytes& bytes) {
    uint32_t n = 1 + below(4);
    for (uint32_t i = 0; i < n && !bytes.empty(); ++i) {
      size_t at = below(static_cast<uint32_t>(bytes.size()));
      switch (below(4)) {
        case 0: bytes[at] = static_cast<uint8_t>(below(256)); break;
        case 1: bytes[at] ^= static_cast<uint8_t>(1u << below(8)); break;
        case 2: bytes.erase(bytes.begin() + static_cast<long>(at)); break;
        default: bytes.insert(bytes.begin() + static_cast<long>(at), static_cast<uint8_t>(below(256)));
      }
    }
    if (below(4) == 0) bytes.resize(below(static_cast<uint32_t>(bytes.size()) + 1));
  }

 private:
  std::string_view keep(std::string s) { return storage_.emplace_back(std::move(s)); }
  std::mt19937 rng_;
  std::deque<std::string> storage_;
  std::deque<std::vector<SubscribeTopic>> sub_storage_;
  std::deque<std::vector<std::string_view>> unsub_storage_;
};

TEST(DecoderFuzzTest, RandomValidStreamsDecodeIdenticallyUnderAnyChunking) {
  RandomPackets gen(20261201);
  for (int iteration = 0; iteration < 2000; ++iteration) {
    std::vector<Packet> packets;
    for (uint32_t n = 1 + gen.below(12); n > 0; --n) packets.push_back(gen.next());
    std::vector<std::string> expected;
    Bytes stream = encodeAll(packets, &expected);
    Decoded d = decodeChunked(stream, gen.cuts(stream.size()));
    ASSERT_TRUE(d.status.isOk()) << iteration << ": " << d.status.toString();
    ASSERT_EQ(d.packets, expected) << iteration;
  }
}

TEST(DecoderFuzzTest, MutatedAndRandomStreamsNeverCrashAndAreChunkingInvariant) {
  RandomPackets gen(42);
  int errors = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    Bytes stream;
    if (iteration % 5 == 0) {
      stream.resize(gen.below(200));
      for (auto& b : stream) b = static_cast<uint8_t>(gen.below(256));
    } else {
      std::vector<Packet> packets;
      for (uint32_t n = 1 + gen.below(6); n > 0; --n) packets.push_back(gen.next());
      stream = encodeAll(packets, nullptr);
      gen.mutate(stream);
    }
    // Small max size so the size rule is exercised too.
    const uint32_t max_size = iteration % 3 == 0 ? 64 : (1 << 20);
    Decoded whole = decodeChunked(stream, {}, Role::kServer, max_size);
    Decoded chunked = decodeChunked(stream, gen.cuts(stream.size()), Role::kServer, max_size);
    // Same packets and the same verdict whatever the chunking.
    ASSERT_EQ(whole.packets, chunked.packets) << iteration;
    ASSERT_EQ(whole.status, chunked.status) << iteration;
    ASSERT_EQ(whole.error, chunked.error) << iteration;
    if (!whole.status.isOk()) {
      ++errors;
      EXPECT_FALSE(whole.status.message().empty());
    }
    // Client role sees the same bytes without crashing.
    Decoded client = decodeChunked(stream, gen.cuts(stream.size()), Role::kClient, max_size);
    (void)client;
  }
  // The mutations must actually hit the error paths, or this test proves little.
  EXPECT_GT(errors, 5000);
}

}  // namespace
}  // namespace edgehub::transports::mqtt
