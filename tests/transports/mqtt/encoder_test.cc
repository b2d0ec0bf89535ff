#include "transports/mqtt/encoder.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "tests/transports/mqtt/test_util.h"
#include "transports/mqtt/decoder.h"

namespace edgehub::transports::mqtt {
namespace {

using test::Bytes;

const uint8_t kPayload[] = {'h', 'i'};

TEST(EncoderTest, ServerPacketsHaveSpecBytes) {
  ByteBuffer out;
  appendConnack(out, Connack{true, ConnackCode::kAccepted});
  EXPECT_EQ(out, (Bytes{0x20, 0x02, 0x01, 0x00}));
  out.clear();
  appendConnack(out, Connack{false, ConnackCode::kNotAuthorized});
  EXPECT_EQ(out, (Bytes{0x20, 0x02, 0x00, 0x05}));
  out.clear();
  appendPuback(out, 0x1234);
  EXPECT_EQ(out, (Bytes{0x40, 0x02, 0x12, 0x34}));
  out.clear();
  appendPubrec(out, 1);
  appendPubrel(out, 2);
  appendPubcomp(out, 3);
  EXPECT_EQ(out, (Bytes{0x50, 0x02, 0x00, 0x01, 0x62, 0x02, 0x00, 0x02, 0x70, 0x02, 0x00, 0x03}));
  out.clear();
  const uint8_t codes[] = {0x01, 0x00, 0x80};
  ASSERT_TRUE(appendSuback(out, 7, codes).isOk());
  EXPECT_EQ(out, (Bytes{0x90, 0x05, 0x00, 0x07, 0x01, 0x00, 0x80}));
  out.clear();
  appendUnsuback(out, 8);
  EXPECT_EQ(out, (Bytes{0xB0, 0x02, 0x00, 0x08}));
  out.clear();
  appendPingresp(out);
  EXPECT_EQ(out, (Bytes{0xD0, 0x00}));
}

TEST(EncoderTest, ClientPacketsHaveSpecBytes) {
  ByteBuffer out;
  appendPingreq(out);
  appendDisconnect(out);
  EXPECT_EQ(out, (Bytes{0xC0, 0x00, 0xE0, 0x00}));
  out.clear();
  Connect c;
  c.protocol_name = "MQTT";
  c.client_id = "d";
  c.keep_alive_seconds = 60;
  c.username = "u";
  const uint8_t pw[] = {'p'};
  c.password = std::span<const uint8_t>(pw);
  ASSERT_TRUE(appendConnect(out, c).isOk());
  EXPECT_EQ(out, (Bytes{0x10, 19, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC0, 0, 60, 0, 1, 'd', 0, 1, 'u', 0,
                        1, 'p'}));
  out.clear();
  const SubscribeTopic topics[] = {{"a/#", 1}};
  ASSERT_TRUE(appendSubscribe(out, 5, topics).isOk());
  EXPECT_EQ(out, (Bytes{0x82, 8, 0, 5, 0, 3, 'a', '/', '#', 1}));
  out.clear();
  const std::string_view filters[] = {"a"};
  ASSERT_TRUE(appendUnsubscribe(out, 6, filters).isOk());
  EXPECT_EQ(out, (Bytes{0xA2, 5, 0, 6, 0, 1, 'a'}));
}

TEST(EncoderTest, PublishBytesForEachQos) {
  ByteBuffer out;
  ASSERT_TRUE(appendPublish(out, Publish{"a/b", 0, 0, false, true, kPayload}).isOk());
  EXPECT_EQ(out, (Bytes{0x31, 7, 0, 3, 'a', '/', 'b', 'h', 'i'}));
  out.clear();
  ASSERT_TRUE(appendPublish(out, Publish{"a/b", 0x0102, 1, true, false, kPayload}).isOk());
  EXPECT_EQ(out, (Bytes{0x3A, 9, 0, 3, 'a', '/', 'b', 1, 2, 'h', 'i'}));
}

TEST(EncoderTest, PublishHeaderIntoCallerBufferForWritev) {
  std::array<uint8_t, 64> header{};
  Publish p{"devices/d/messages/events/", 42, 1, false, false, kPayload};
  auto n = encodePublishHeader(header, p);
  ASSERT_TRUE(n.isOk());
  EXPECT_EQ(*n, publishHeaderSize(p.topic, p.qos, p.payload.size()));
  EXPECT_EQ(*n, 1u + 1u + 2u + p.topic.size() + 2u);
  // Header + payload is exactly what appendPublish writes.
  ByteBuffer joined(header.begin(), header.begin() + static_cast<long>(*n));
  joined.insert(joined.end(), p.payload.begin(), p.payload.end());
  ByteBuffer whole;
  ASSERT_TRUE(appendPublish(whole, p).isOk());
  EXPECT_EQ(joined, whole);
}

TEST(EncoderTest, PublishHeaderRejectsSmallBufferAndLongTopic) {
  std::array<uint8_t, 4> small{};
  auto r = encodePublishHeader(small, Publish{"abc", 1, 1, false, false, kPayload});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "output buffer too small for the PUBLISH header");
  std::string long_topic(65536, 'a');
  std::vector<uint8_t> big(kMaxPublishHeaderSize + 10);
  auto r2 = encodePublishHeader(big, Publish{long_topic, 1, 1, false, false, kPayload});
  ASSERT_FALSE(r2.isOk());
  EXPECT_EQ(r2.status().message(), "topic is longer than 65535 bytes");
  // The largest legal header fits kMaxPublishHeaderSize.
  std::string max_topic(65535, 'a');
  std::vector<uint8_t> payload(1 << 21);
  auto r3 = encodePublishHeader(big, Publish{max_topic, 1, 1, false, false, payload});
  ASSERT_TRUE(r3.isOk());
  EXPECT_LE(*r3, kMaxPublishHeaderSize);
}

TEST(EncoderTest, FailureLeavesBufferUnchanged) {
  ByteBuffer out;
  appendPingresp(out);
  std::string long_topic(65536, 'a');
  EXPECT_FALSE(appendPublish(out, Publish{long_topic, 0, 0, false, false, {}}).isOk());
  const SubscribeTopic topics[] = {{long_topic, 0}};
  EXPECT_FALSE(appendSubscribe(out, 1, topics).isOk());
  Connect c;
  c.protocol_name = "MQTT";
  c.client_id = long_topic;
  EXPECT_EQ(appendConnect(out, c).message(), "client id is longer than 65535 bytes");
  EXPECT_EQ(out, (Bytes{0xD0, 0x00}));
}

TEST(EncoderTest, RemainingLengthVarintBoundaries) {
  // Remaining length = 2 + 1 (topic) + payload for QoS 0.
  struct Case {
    size_t remaining;
    size_t varint_bytes;
  };
  for (Case c : {Case{127, 1}, Case{128, 2}, Case{16383, 2}, Case{16384, 3}, Case{2097151, 3},
                 Case{2097152, 4}}) {
    std::vector<uint8_t> payload(c.remaining - 3, 7);
    Publish p{"t", 0, 0, false, false, payload};
    EXPECT_EQ(publishHeaderSize(p.topic, 0, payload.size()), 1 + c.varint_bytes + 3) << c.remaining;
    ByteBuffer out;
    ASSERT_TRUE(appendPublish(out, p).isOk());
    ASSERT_EQ(out.size(), 1 + c.varint_bytes + c.remaining);
    // Decodes back (round trip through the real decoder).
    test::Collector collector;
    DecoderOptions options;
    options.max_packet_size = 4u << 20;
    Decoder decoder(options, collector);
    ASSERT_TRUE(decoder.feed(out).isOk()) << c.remaining;
    ASSERT_EQ(collector.packets.size(), 1u);
  }
  // The exact bytes of 128 and 16384.
  std::array<uint8_t, 16> header{};
  std::vector<uint8_t> payload(128 - 3);
  auto n = encodePublishHeader(header, Publish{"t", 0, 0, false, false, payload});
  ASSERT_TRUE(n.isOk());
  EXPECT_EQ(header[1], 0x80);
  EXPECT_EQ(header[2], 0x01);
  payload.resize(16384 - 3);
  n = encodePublishHeader(header, Publish{"t", 0, 0, false, false, payload});
  ASSERT_TRUE(n.isOk());
  EXPECT_EQ(header[1], 0x80);
  EXPECT_EQ(header[2], 0x80);
  EXPECT_EQ(header[3], 0x01);
}

TEST(EncoderTest, RemainingLengthAboveMaximumIsRejected) {
  // No 256 MiB payload is allocated: a span with a bogus size is never read on this path.
  static const uint8_t kByte = 0;
  std::span<const uint8_t> fake(&kByte, kMaxRemainingLength);
  std::array<uint8_t, 16> header{};
  auto r = encodePublishHeader(header, Publish{"t", 0, 0, false, false, fake});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "packet exceeds the MQTT maximum remaining length 268435455");
}

TEST(EncoderTest, NoAllocationOnceBufferIsWarm) {
  ByteBuffer out;
  Publish p{"devices/dev1/messages/events/", 1, 1, false, false, kPayload};
  auto batch = [&] {
    out.clear();
    for (uint16_t i = 1; i <= 64; ++i) {
      p.packet_id = i;
      ASSERT_TRUE(appendPublish(out, p).isOk());
      appendPuback(out, i);
    }
  };
  batch();
  const uint8_t* data = out.data();
  const size_t capacity = out.capacity();
  for (int round = 0; round < 10; ++round) batch();
  EXPECT_EQ(out.data(), data);
  EXPECT_EQ(out.capacity(), capacity);
}

TEST(EncoderTest, QosAboveTwoIsRejected) {
  ByteBuffer out;
  EXPECT_EQ(appendPublish(out, Publish{"t", 1, 3, false, false, {}}).message(), "QoS above 2");
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace edgehub::transports::mqtt
