#include "core/message/message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/identity.h"

namespace edgehub::core {
namespace {

std::string_view sv(const flatbuffers::String* s) { return {s->c_str(), s->size()}; }

MessageRef buildSample(MessageBuilder& b) {
  b.reset();
  b.setSequence(42);
  b.setEnqueuedTimeMs(1'700'000'000'123);
  b.setOrigin(Identity::module("edge1", "sensor"));
  b.setSystem(SystemField::kMessageId, "m-1");
  b.setSystem(SystemField::kContentType, "application/json");
  b.setSystem(SystemField::kConnectionModuleId, "sensor");
  b.addSystemExtra("version", "7");
  b.addProperty("key1", "value1");
  b.addProperty("nullValued", std::nullopt);
  b.addProperty("empty", "");
  b.setBody(std::string_view("{\"temp\":21.5}"));
  auto r = b.finish();
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return std::move(r).value();
}

TEST(MessageBuilderTest, RoundTripsEveryPart) {
  MessageBuilder b;
  MessageRef m = buildSample(b);
  EXPECT_EQ(m->sequence(), 42u);
  EXPECT_EQ(m->enqueued_time_ms(), 1'700'000'000'123);
  EXPECT_EQ(m->origin()->kind(), fb::IdentityKind::Module);
  EXPECT_EQ(sv(m->origin()->device_id()), "edge1");
  EXPECT_EQ(sv(m->origin()->module_id()), "sensor");
  EXPECT_EQ(systemFieldValue(*m.operator->(), SystemField::kMessageId), "m-1");
  EXPECT_EQ(systemFieldValue(m.message(), SystemField::kContentType), "application/json");
  EXPECT_FALSE(systemFieldValue(m.message(), SystemField::kOutputName).has_value());
  ASSERT_NE(m->system()->extra(), nullptr);
  EXPECT_EQ(sv(m->system()->extra()->Get(0)->name()), "version");
  ASSERT_EQ(m->properties()->size(), 3u);
  EXPECT_EQ(sv(m->properties()->Get(0)->value()), "value1");
  // A null-valued property has no value at all; an empty one has an empty value.
  EXPECT_EQ(m->properties()->Get(1)->value(), nullptr);
  ASSERT_NE(findProperty(m.message(), "empty"), nullptr);
  EXPECT_EQ(sv(findProperty(m.message(), "empty")->value()), "");
  EXPECT_EQ(findProperty(m.message(), "absent"), nullptr);
  std::string body(reinterpret_cast<const char*>(m->body()->data()), m->body()->size());
  EXPECT_EQ(body, "{\"temp\":21.5}");
}

TEST(MessageBuilderTest, BuilderIsReusableAndMessagesIndependent) {
  MessageBuilder b;
  MessageRef first = buildSample(b);
  b.reset();
  b.setOrigin(Identity::device("leaf1"));
  b.addProperty("other", "x");
  MessageRef second = std::move(b.finish()).value();
  EXPECT_EQ(second->origin()->kind(), fb::IdentityKind::Device);
  EXPECT_EQ(second->origin()->module_id(), nullptr);
  EXPECT_EQ(second->properties()->size(), 1u);
  EXPECT_EQ(second->sequence(), 0u);  // reset() cleared the previous sequence
  // The first message is unaffected by the builder's reuse.
  EXPECT_EQ(sv(first->properties()->Get(0)->name()), "key1");
}

TEST(MessageBuilderTest, FinishWithoutOriginFails) {
  MessageBuilder b;
  b.addProperty("a", "b");
  auto r = b.finish();
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

TEST(MessageBuilderTest, OversizedMessageIsRejected) {
  MessageBuilder b;
  b.setOrigin(Identity::device("d"));
  std::vector<uint8_t> big(kMaxMessageBytes + 1, 'x');
  b.setBody(big);
  auto r = b.finish();
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
}

TEST(MessageRefTest, CopiesShareOneAllocation) {
  MessageBuilder b;
  MessageRef a = buildSample(b);
  EXPECT_EQ(a.useCountForTest(), 1u);
  {
    MessageRef c = a;
    MessageRef d = c;
    EXPECT_EQ(a.useCountForTest(), 3u);
    EXPECT_EQ(c.bytes().data(), a.bytes().data());
  }
  EXPECT_EQ(a.useCountForTest(), 1u);
  MessageRef moved = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(moved.useCountForTest(), 1u);
  moved = moved;  // self-assignment keeps the message
  EXPECT_EQ(moved.useCountForTest(), 1u);
}

TEST(MessageRefTest, FromBytesVerifiesOnce) {
  MessageBuilder b;
  MessageRef m = buildSample(b);
  auto copy = MessageRef::fromBytes(m.bytes());
  ASSERT_TRUE(copy.isOk()) << copy.status().toString();
  EXPECT_EQ(copy.value()->sequence(), 42u);
  EXPECT_NE(copy.value().bytes().data(), m.bytes().data());
}

TEST(MessageRefTest, FromBytesRejectsGarbageAndTruncation) {
  std::vector<uint8_t> junk = {1, 2, 3};
  EXPECT_EQ(MessageRef::fromBytes(junk).status().code(), StatusCode::kInvalidArgument);

  MessageBuilder b;
  MessageRef m = buildSample(b);
  std::vector<uint8_t> bytes(m.bytes().begin(), m.bytes().end());
  // Cutting into referenced data must be rejected; no truncation may read out of bounds (the
  // ASan build checks that). The last few bytes can be alignment padding that nothing
  // references, so dropping only those may legitimately still verify.
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto r = MessageRef::fromBytes(std::span<const uint8_t>(bytes.data(), len));
    if (len + 8 <= bytes.size()) {
      EXPECT_FALSE(r.isOk()) << "truncated to " << len;
    }
  }
  // Corrupt an offset in the root table: verification must fail rather than crash.
  std::vector<uint8_t> corrupt = bytes;
  corrupt[0] = 0xFF;
  corrupt[1] = 0xFF;
  EXPECT_FALSE(MessageRef::fromBytes(corrupt).isOk());
}

TEST(MessageRefTest, FromBytesRejectsOversizedInput) {
  std::vector<uint8_t> big(kMaxMessageBytes + 1, 0);
  EXPECT_EQ(MessageRef::fromBytes(big).status().code(), StatusCode::kResourceExhausted);
}

TEST(SystemFieldTest, NamesAreTheRoutingKeys) {
  EXPECT_EQ(systemFieldName(SystemField::kCorrelationId), "cid");
  EXPECT_EQ(systemFieldName(SystemField::kExpiryTimeUtc), "absolute-expiry-time");
  EXPECT_EQ(systemFieldName(SystemField::kComponentName), "dt-subject");
  for (int i = 0; i < static_cast<int>(SystemField::kCount); ++i) {
    EXPECT_FALSE(systemFieldName(static_cast<SystemField>(i)).empty()) << i;
  }
}

}  // namespace
}  // namespace edgehub::core
