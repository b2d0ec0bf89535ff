#include "transports/iothub/message.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgehub::transports::iothub {
namespace {

using core::Identity;
using core::SystemField;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::optional<std::string> sys(const core::MessageRef& m, SystemField f) {
  auto v = core::systemFieldValue(m.message(), f);
  return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
}

class IotHubMessageTest : public ::testing::Test {
 protected:
  core::Result<core::MessageRef> build(const Identity& sender, std::string_view topic,
                                       std::string_view payload = "{}") {
    auto parsed = parsePublishTopic(topic);
    if (!parsed.isOk()) return parsed.status();
    return buildTelemetryMessage(builder_, parser_, sender, parsed.value(), bytes(payload), 17, 1234);
  }
  core::MessageBuilder builder_;
  PropertyBagParser parser_;
};

TEST_F(IotHubMessageTest, ModuleOutputFromNodeSdkTopic) {
  Identity sender = Identity::module("dev1", "mod1");
  auto r = build(sender,
                 "devices/dev1/modules/mod1/messages/events/"
                 "%24.on=out1&%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true/",
                 "{\"t\":1}");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const core::MessageRef& m = r.value();
  EXPECT_EQ(m->sequence(), 17u);
  EXPECT_EQ(m->enqueued_time_ms(), 1234);
  EXPECT_EQ(m->origin()->kind(), fb::IdentityKind::Module);
  EXPECT_EQ(m->origin()->device_id()->str(), "dev1");
  EXPECT_EQ(m->origin()->module_id()->str(), "mod1");
  EXPECT_EQ(sys(m, SystemField::kOutputName), "out1");
  EXPECT_EQ(sys(m, SystemField::kMessageId), "m-1");
  EXPECT_EQ(sys(m, SystemField::kContentType), "application/json");
  EXPECT_EQ(sys(m, SystemField::kContentEncoding), "utf-8");
  EXPECT_EQ(sys(m, SystemField::kConnectionDeviceId), "dev1");
  EXPECT_EQ(sys(m, SystemField::kConnectionModuleId), "mod1");
  EXPECT_EQ(sys(m, SystemField::kOriginInterface), "internal");
  ASSERT_NE(m->properties(), nullptr);
  ASSERT_EQ(m->properties()->size(), 1u);
  EXPECT_EQ(m->properties()->Get(0)->name()->str(), "alert");
  EXPECT_EQ(m->properties()->Get(0)->value()->str(), "true");
  ASSERT_NE(m->body(), nullptr);
  EXPECT_EQ(std::string(m->body()->begin(), m->body()->end()), "{\"t\":1}");
}

TEST_F(IotHubMessageTest, DeviceTelemetryIsDownstreamWithoutModuleId) {
  auto r = build(Identity::device("leaf1"), "devices/leaf1/messages/events");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(sys(r.value(), SystemField::kConnectionDeviceId), "leaf1");
  EXPECT_EQ(sys(r.value(), SystemField::kConnectionModuleId), std::nullopt);
  EXPECT_EQ(sys(r.value(), SystemField::kOriginInterface), "downstream");
  EXPECT_EQ(sys(r.value(), SystemField::kOutputName), std::nullopt);
}

TEST_F(IotHubMessageTest, ClientCannotPoseAsAnotherSender) {
  Identity sender = Identity::module("dev1", "mod1");
  auto foreign = build(sender, "devices/dev1/modules/other/messages/events/");
  ASSERT_FALSE(foreign.isOk());
  EXPECT_EQ(foreign.status().code(), core::StatusCode::kPermissionDenied);
  // $.cdid/$.cmid and unknown $.-keys in the bag are dropped; the ids come from the connection.
  auto r = build(sender,
                 "devices/dev1/modules/mod1/messages/events/%24.cdid=evil&%24.cmid=evil&%24.x=1&k=v");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(sys(r.value(), SystemField::kConnectionDeviceId), "dev1");
  EXPECT_EQ(sys(r.value(), SystemField::kConnectionModuleId), "mod1");
  ASSERT_EQ(r.value()->properties()->size(), 1u);
  EXPECT_EQ(r.value()->properties()->Get(0)->name()->str(), "k");
}

TEST_F(IotHubMessageTest, NullValuesDuplicatesAndErrors) {
  Identity sender = Identity::device("d");
  auto r = build(sender, "devices/d/messages/events/a&a=1&%24.mid=1&%24.mid=2&%24.cid&ack=full");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const auto* props = r.value()->properties();
  ASSERT_EQ(props->size(), 2u);
  EXPECT_EQ(props->Get(0)->value(), nullptr);  // null-valued
  EXPECT_EQ(props->Get(1)->value()->str(), "1");
  EXPECT_EQ(sys(r.value(), SystemField::kMessageId), "2");  // last wins
  EXPECT_EQ(sys(r.value(), SystemField::kCorrelationId), std::nullopt);
  const auto* extra = r.value()->system()->extra();
  ASSERT_NE(extra, nullptr);
  ASSERT_EQ(extra->size(), 1u);
  EXPECT_EQ(extra->Get(0)->name()->str(), "ack");
  auto bad = build(sender, "devices/d/messages/events/t=%zz");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), core::StatusCode::kInvalidArgument);
  auto twin = parsePublishTopic("$iothub/twin/GET/?$rid=1");
  ASSERT_TRUE(twin.isOk());
  EXPECT_FALSE(buildTelemetryMessage(builder_, sender, twin.value(), {}, 1, 1).isOk());
  // The builder is usable again after an error.
  EXPECT_TRUE(build(sender, "devices/d/messages/events/").isOk());
}

TEST_F(IotHubMessageTest, DeliveryTopicMatchesDocExample) {
  auto r = build(Identity::module("dev1", "sensor"),
                 "devices/dev1/modules/sensor/messages/events/"
                 "%24.on=temp&%24.ct=application%2Fjson&%24.ce=utf-8&site=north/");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  std::string out = "keep:";
  ASSERT_TRUE(encodeDeliveryTopic(Identity::module("dev1", "filter"), "in1", r.value().message(), out).isOk());
  EXPECT_EQ(out,
            "keep:devices/dev1/modules/filter/inputs/in1/"
            "site=north&%24.ct=application%2Fjson&%24.ce=utf-8&%24.cdid=dev1&%24.cmid=sensor");
  std::string dev_out;
  EXPECT_FALSE(encodeDeliveryTopic(Identity::device("dev1"), "in1", r.value().message(), dev_out).isOk());
  EXPECT_FALSE(encodeDeliveryTopic(Identity::module("dev1", "filter"), "", r.value().message(), dev_out).isOk());
  EXPECT_TRUE(dev_out.empty());
}

TEST_F(IotHubMessageTest, DeliveryBagRoundTrip) {
  Identity sender = Identity::device("leaf?1");
  core::MessageBuilder b;
  b.setOrigin(sender);
  b.addProperty("a b", "x/y&z=w%+~");
  b.addProperty("null", std::nullopt);
  b.addProperty("empty", "");
  b.addProperty("a b", "dup");
  b.setSystem(SystemField::kMessageId, "$id?");
  b.setSystem(SystemField::kOutputName, "never-on-wire");
  b.setSystem(SystemField::kConnectionDeviceId, "leaf?1");
  auto m = b.finish();
  ASSERT_TRUE(m.isOk());
  std::string topic;
  ASSERT_TRUE(encodeDeliveryTopic(Identity::module("e%dge", "$mod"), "in#1", m.value().message(), topic).isOk());
  constexpr std::string_view kPrefix = "devices/e%25dge/modules/$mod/inputs/in%231/";
  ASSERT_TRUE(std::string_view(topic).starts_with(kPrefix)) << topic;
  std::string_view bag = std::string_view(topic).substr(kPrefix.size());
  EXPECT_EQ(bag.find('/'), std::string_view::npos) << bag;
  std::vector<std::pair<std::string, std::optional<std::string>>> got;
  PropertyBagParser parser;
  ASSERT_TRUE(parser.parse(bag, [&got](std::string_view k, std::optional<std::string_view> v) {
    got.emplace_back(std::string(k), v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
  }).isOk());
  std::vector<std::pair<std::string, std::optional<std::string>>> want = {
      {"a b", "x/y&z=w%+~"}, {"null", std::nullopt}, {"empty", ""}, {"a b", "dup"},
      {"$.mid", "$id?"},     {"$.cdid", "leaf?1"}};
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace edgehub::transports::iothub
