#include "transports/iothub/topic.h"

#include <gtest/gtest.h>

#include <string>

#include "transports/percent_encoding.h"

namespace edgehub::transports::iothub {
namespace {

using core::Identity;

ParsedTopic mustParse(std::string_view topic) {
  auto r = parsePublishTopic(topic);
  EXPECT_TRUE(r.isOk()) << topic << ": " << r.status().toString();
  return r.isOk() ? r.value() : ParsedTopic{};
}

TEST(IotHubTopicTest, ModuleTelemetryAllFourForms) {
  for (std::string_view t : {"devices/dev1/modules/mod1/messages/events",
                             "devices/dev1/modules/mod1/messages/events/",
                             "devices/dev1/modules/mod1/messages/events/a=1&%24.on=out1",
                             "devices/dev1/modules/mod1/messages/events/a=1&%24.on=out1/"}) {
    ParsedTopic p = mustParse(t);
    EXPECT_EQ(p.kind, TopicKind::kTelemetry) << t;
    EXPECT_EQ(p.device_id, "dev1") << t;
    EXPECT_EQ(p.module_id, "mod1") << t;
    EXPECT_TRUE(p.isModuleTelemetry());
    bool has_bag = t.find("a=1") != std::string_view::npos;
    EXPECT_EQ(p.property_bag, has_bag ? "a=1&%24.on=out1" : "") << t;
  }
}

TEST(IotHubTopicTest, DeviceTelemetryAllFourForms) {
  for (std::string_view t : {"devices/dev1/messages/events", "devices/dev1/messages/events/",
                             "devices/dev1/messages/events/x=y", "devices/dev1/messages/events/x=y/"}) {
    ParsedTopic p = mustParse(t);
    EXPECT_EQ(p.device_id, "dev1") << t;
    EXPECT_EQ(p.module_id, "") << t;
    EXPECT_FALSE(p.isModuleTelemetry());
  }
}

TEST(IotHubTopicTest, NodeSdkOutputTopic) {
  ParsedTopic p = mustParse(
      "devices/dev1/modules/mod1/messages/events/"
      "%24.on=out1&%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true/");
  EXPECT_EQ(p.property_bag, "%24.on=out1&%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true");
}

TEST(IotHubTopicTest, RejectsNonTemplates) {
  for (std::string_view t :
       {"", "devices", "devices/", "devices//messages/events", "devices/dev1/messages",
        "devices/dev1/messages/eventsX", "devices/dev1/modules//messages/events",
        "devices/dev1/modules/mod1/messages/events/a=1/extra",
        "devices/dev%ZZ/messages/events", "devices/dev1/modules/m%4/messages/events",
        "other/topic", "$iothub/twin/GET/", "$iothub/twin/GET/?rid=1", "$iothub/twin/GET/?$rid=",
        "$iothub/twin/PATCH/properties/desired/?$rid=1", "$iothub/methods/res/abc/?$rid=1",
        "$iothub/methods/res//?$rid=1", "$iothub/methods/res/200?$rid=1",
        "$iothub/methods/POST/m/?$rid=1"}) {
    auto r = parsePublishTopic(t);
    EXPECT_FALSE(r.isOk()) << t;
    if (!r.isOk()) {
      EXPECT_EQ(r.status().code(), core::StatusCode::kInvalidArgument) << t;
    }
  }
}

TEST(IotHubTopicTest, PercentEncodedAndOddIds) {
  ParsedTopic p = mustParse("devices/dev%3F1/modules/%24edge%2fHub/messages/events/");
  EXPECT_EQ(p.device_id, "dev%3F1");  // kept as sent
  EXPECT_TRUE(decodesTo(p.device_id, "dev?1"));
  EXPECT_TRUE(decodesTo(p.module_id, "$edge/Hub"));  // lowercase hex accepted
  // Literal odd characters allowed in ids pass through.
  ParsedTopic q = mustParse("devices/d$=@!(),:*'-._/modules/m/messages/events");
  EXPECT_EQ(q.device_id, "d$=@!(),:*'-._");
}

TEST(IotHubTopicTest, TwinAndMethodKinds) {
  ParsedTopic get = mustParse("$iothub/twin/GET/?$rid=42");
  EXPECT_EQ(get.kind, TopicKind::kTwinGet);
  EXPECT_EQ(get.request_id, "42");
  ParsedTopic patch = mustParse("$iothub/twin/PATCH/properties/reported/?$rid=abc-def&$version=3");
  EXPECT_EQ(patch.kind, TopicKind::kTwinReportedPatch);
  EXPECT_EQ(patch.request_id, "abc-def");
  ParsedTopic res = mustParse("$iothub/methods/res/200/?$rid=7");
  EXPECT_EQ(res.kind, TopicKind::kMethodResponse);
  EXPECT_EQ(res.method_status, 200);
  EXPECT_EQ(res.request_id, "7");
  EXPECT_EQ(mustParse("$iothub/methods/res/-1/?$rid=x").method_status, -1);
}

TEST(IotHubTopicTest, PublishAllowedOnlyAsSelf) {
  Identity mod = Identity::module("dev1", "mod1");
  Identity dev = Identity::device("dev1");
  auto mt = mustParse("devices/dev1/modules/mod1/messages/events/");
  auto dt = mustParse("devices/dev1/messages/events/");
  EXPECT_TRUE(checkPublishAllowed(mod, mt).isOk());
  EXPECT_TRUE(checkPublishAllowed(dev, dt).isOk());
  EXPECT_EQ(checkPublishAllowed(mod, dt).code(), core::StatusCode::kPermissionDenied);
  EXPECT_EQ(checkPublishAllowed(dev, mt).code(), core::StatusCode::kPermissionDenied);
  for (std::string_view foreign :
       {"devices/dev2/modules/mod1/messages/events/", "devices/dev1/modules/mod2/messages/events/",
        "devices/Dev1/modules/mod1/messages/events/", "devices/dev1/modules/mod1x/messages/events/",
        "devices/dev1/modules/mod/messages/events/"}) {
    EXPECT_EQ(checkPublishAllowed(mod, mustParse(foreign)).code(),
              core::StatusCode::kPermissionDenied)
        << foreign;
  }
  // Encoded ids compare after decoding, exactly.
  Identity odd = Identity::module("dev?1", "$edgeHub");
  EXPECT_TRUE(checkPublishAllowed(odd, mustParse("devices/dev%3f1/modules/%24edgeHub/messages/events")).isOk());
  EXPECT_TRUE(checkPublishAllowed(odd, mustParse("devices/dev?1/modules/$edgeHub/messages/events")).isOk());
  EXPECT_FALSE(checkPublishAllowed(odd, mustParse("devices/dev%3f2/modules/%24edgeHub/messages/events")).isOk());
  // Twin and method topics carry no identity.
  EXPECT_TRUE(checkPublishAllowed(dev, mustParse("$iothub/twin/GET/?$rid=1")).isOk());
  EXPECT_TRUE(checkPublishAllowed(mod, mustParse("$iothub/methods/res/200/?$rid=1")).isOk());
}

TEST(IotHubTopicTest, ClassifiesSubscribeFilters) {
  auto in = classifySubscribeFilter("devices/dev1/modules/mod1/inputs/#");
  EXPECT_EQ(in.kind, FilterKind::kModuleInputs);
  EXPECT_EQ(in.device_id, "dev1");
  EXPECT_EQ(in.module_id, "mod1");
  EXPECT_EQ(classifySubscribeFilter("devices/dev1/modules/mod1/#").kind, FilterKind::kModuleInputs);
  EXPECT_EQ(classifySubscribeFilter("devices/dev1/messages/devicebound/#").kind, FilterKind::kC2d);
  EXPECT_EQ(classifySubscribeFilter("$iothub/twin/res/#").kind, FilterKind::kTwinResponses);
  EXPECT_EQ(classifySubscribeFilter("$iothub/twin/PATCH/properties/desired/#").kind,
            FilterKind::kTwinDesiredPatches);
  EXPECT_EQ(classifySubscribeFilter("$iothub/methods/POST/#").kind, FilterKind::kMethodRequests);
  for (std::string_view f : {"#", "$iothub/#", "$iothub/twin/res/+", "devices/#", "devices/dev1/#",
                             "devices/dev1/modules/mod1/inputs/in1", "devices/dev1/modules/mod1/+",
                             "devices//modules/mod1/#", "devices/dev1/modules//#", "a/b"}) {
    EXPECT_EQ(classifySubscribeFilter(f).kind, FilterKind::kOther) << f;
  }
}

TEST(IotHubTopicTest, SubscribeAllowedOnlyOwnFilters) {
  Identity mod = Identity::module("dev1", "mod1");
  Identity dev = Identity::device("dev1");
  EXPECT_TRUE(subscribeAllowed(mod, "devices/dev1/modules/mod1/inputs/#"));
  EXPECT_TRUE(subscribeAllowed(mod, "devices/dev1/modules/mod1/#"));
  EXPECT_TRUE(subscribeAllowed(mod, "$iothub/twin/res/#"));
  EXPECT_TRUE(subscribeAllowed(mod, "$iothub/twin/PATCH/properties/desired/#"));
  EXPECT_TRUE(subscribeAllowed(mod, "$iothub/methods/POST/#"));
  EXPECT_TRUE(subscribeAllowed(dev, "devices/dev1/messages/devicebound/#"));
  EXPECT_TRUE(subscribeAllowed(dev, "$iothub/methods/POST/#"));
  EXPECT_FALSE(subscribeAllowed(mod, "devices/dev1/modules/mod2/inputs/#"));
  EXPECT_FALSE(subscribeAllowed(mod, "devices/dev2/modules/mod1/#"));
  EXPECT_FALSE(subscribeAllowed(mod, "devices/+/modules/+/#"));
  EXPECT_FALSE(subscribeAllowed(mod, "devices/dev1/messages/devicebound/#"));
  EXPECT_FALSE(subscribeAllowed(dev, "devices/dev1/modules/mod1/inputs/#"));
  EXPECT_FALSE(subscribeAllowed(dev, "devices/dev2/messages/devicebound/#"));
  EXPECT_FALSE(subscribeAllowed(mod, "#"));
  EXPECT_FALSE(subscribeAllowed(mod, "$iothub/#"));
  EXPECT_FALSE(subscribeAllowed(mod, "$SYS/#"));
  Identity odd = Identity::module("dev?1", "$edgeHub");
  EXPECT_TRUE(subscribeAllowed(odd, "devices/dev%3F1/modules/%24edgeHub/inputs/#"));
  EXPECT_FALSE(subscribeAllowed(odd, "devices/dev%3F1/modules/%24edgeHu/inputs/#"));
}

TEST(IotHubTopicTest, PercentHelpers) {
  std::string out;
  EXPECT_TRUE(appendDecoded(out, "a%20b%2Bc+d%41%6a"));
  EXPECT_EQ(out, "a b+c+dAj");
  out.clear();
  EXPECT_FALSE(appendDecoded(out, "a%2"));
  EXPECT_FALSE(appendDecoded(out, "%"));
  EXPECT_FALSE(appendDecoded(out, "%G0"));
  EXPECT_FALSE(hasValidEscapes("ab%"));
  EXPECT_FALSE(hasValidEscapes("ab%4"));
  EXPECT_TRUE(hasValidEscapes("ab%4a"));
  EXPECT_FALSE(decodesTo("ab", "abc"));
  EXPECT_FALSE(decodesTo("abc", "ab"));
  EXPECT_FALSE(decodesTo("a%6", "a%6"));
  out.clear();
  appendSegmentEncoded(out, "$edgeHub/a b%#+?&=x");
  EXPECT_EQ(out, "$edgeHub%2Fa%20b%25%23%2B%3F%26%3Dx");
  out.clear();
  appendBagEncoded(out, "$.ct=a/b c~-._+");
  EXPECT_EQ(out, "%24.ct%3Da%2Fb%20c~-._%2B");
}

}  // namespace
}  // namespace edgehub::transports::iothub
