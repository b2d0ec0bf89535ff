#include "transports/upstream/upstream_url.h"

#include <gtest/gtest.h>

#include "core/identity.h"
#include "transports/auth/sas_token.h"
#include "transports/upstream/backoff.h"
#include "transports/upstream/upstream_identity.h"

namespace edgehub::transports::upstream {
namespace {

using core::StatusCode;

TEST(UpstreamUrl, ParsesPlainAndTls) {
  auto a = parseUpstreamUrl("mqtt://127.0.0.1:1884");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(a->scheme, UpstreamScheme::kMqtt);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 1884);
  EXPECT_FALSE(a->tls());

  auto b = parseUpstreamUrl("MQTTS://myhub.azure-devices.net");
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_TRUE(b->tls());
  EXPECT_EQ(b->host, "myhub.azure-devices.net");
  EXPECT_EQ(b->port, 8883);
  EXPECT_EQ(b->toString(), "mqtts://myhub.azure-devices.net:8883");

  auto c = parseUpstreamUrl("mqtt://[::1]:1883/");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->toString(), "mqtt://[::1]:1883");
  EXPECT_EQ(parseUpstreamUrl("mqtt://broker").value().port, 1883);
}

TEST(UpstreamUrl, MalformedUrlsHaveClearErrors) {
  struct Case {
    const char* url;
    const char* reason;
  } cases[] = {
      {"", "empty"},
      {"127.0.0.1:1883", "missing \"://\""},
      {"http://host:80", "unknown scheme"},
      {"mqtt://", "empty host"},
      {"mqtt://:1883", "empty host"},
      {"mqtt://host:", "empty port"},
      {"mqtt://host:0", "out of range"},
      {"mqtt://host:65536", "out of range"},
      {"mqtt://host:123456", "out of range"},
      {"mqtt://host:12a", "not a decimal"},
      {"mqtt://user@host:1883", "not allowed"},
      {"mqtts://host:8883/path", "not allowed"},
      {"mqtt://host?x=1", "not allowed"},
      {"mqtt://ho st:1883", "invalid character"},
      {"mqtt://[::1:1883", "unterminated"},
      {"mqtt://[::g]:1883", "malformed IPv6"},
      {"mqtt://[::1]x", "after ']'"},
  };
  for (const Case& c : cases) {
    auto r = parseUpstreamUrl(c.url);
    ASSERT_FALSE(r.isOk()) << c.url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.url;
    EXPECT_NE(r.status().message().find(c.reason), std::string_view::npos)
        << c.url << " -> " << r.status().message();
    EXPECT_NE(r.status().message().find(std::string("'") + c.url + "'"), std::string_view::npos) << c.url;
  }
}

TEST(UpstreamIdentity, ModuleAndDeviceCredentialsFollowTheDialect) {
  const auto module = core::Identity::module("dev1", "mod1");
  const auto device = core::Identity::device("leaf1");
  EXPECT_EQ(upstreamClientId(module), "dev1/mod1");
  EXPECT_EQ(upstreamClientId(device), "leaf1");
  EXPECT_EQ(upstreamUsername("myhub.azure-devices.net", module),
            "myhub.azure-devices.net/dev1/mod1/?api-version=2021-04-12");
  EXPECT_EQ(upstreamUsername("myhub.azure-devices.net", device),
            "myhub.azure-devices.net/leaf1/?api-version=2021-04-12");
  EXPECT_EQ(upstreamSasResource("myhub.azure-devices.net", module),
            "myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1");
  EXPECT_EQ(upstreamSasResource("myhub.azure-devices.net", device), "myhub.azure-devices.net%2Fdevices%2Fleaf1");
  // Dialect doc section 2.3 test vector.
  const UpstreamCredentials creds{module, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="};
  EXPECT_EQ(makeUpstreamPassword("myhub.azure-devices.net", creds, 1800000000),
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1"
            "&sig=iYGnnTR76bPQzYENv3BBQyAOye3ufYIQB%2BwaaxLJUP4%3D&se=1800000000");
  EXPECT_EQ(makeUpstreamPassword("h", UpstreamCredentials{module, "not base64!"}, 1), "");
}

TEST(UpstreamIdentity, TelemetryTopicsEncodeIdsAndBag) {
  std::string t;
  const TelemetryProperty props[] = {{"$.ct", "application/json"}, {"site", "north pole"}, {"flag", std::nullopt}};
  appendTelemetryTopic(t, core::Identity::module("dev1", "sensor"), props);
  EXPECT_EQ(t, "devices/dev1/modules/sensor/messages/events/%24.ct=application%2Fjson&site=north%20pole&flag");
  t.clear();
  appendTelemetryTopic(t, core::Identity::device("leaf1"), std::string_view("a=1"));
  EXPECT_EQ(t, "devices/leaf1/messages/events/a=1");
  t.clear();
  appendTelemetryTopic(t, core::Identity::module("d", "$edgeHub"), std::span<const TelemetryProperty>());
  EXPECT_EQ(t, "devices/d/modules/$edgeHub/messages/events/");
}

TEST(UpstreamBackoff, DoublesToTheCapWithBoundedJitter) {
  Backoff b(BackoffPolicy{std::chrono::milliseconds(100), std::chrono::milliseconds(30'000), 0.2}, 42);
  double expected = 100;
  for (int i = 0; i < 20; ++i) {
    const auto d = b.next().count();
    EXPECT_GE(d, static_cast<int64_t>(expected * 0.8) - 1) << i;
    EXPECT_LE(d, static_cast<int64_t>(expected * 1.2) + 1) << i;
    expected = std::min(expected * 2, 30'000.0);
  }
  b.reset();
  const auto d = b.next().count();
  EXPECT_GE(d, 79);
  EXPECT_LE(d, 121);
  // Different seeds spread identities apart.
  Backoff x(BackoffPolicy{}, 1), y(BackoffPolicy{}, 2);
  bool differ = false;
  for (int i = 0; i < 5; ++i) differ |= x.next() != y.next();
  EXPECT_TRUE(differ);
}

}  // namespace
}  // namespace edgehub::transports::upstream
