#include "core/identity.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace edgehub::core {
namespace {

TEST(IdentityTest, DeviceAndModuleAccessors) {
  const Identity d = Identity::device("edge1");
  EXPECT_EQ(d.kind(), Identity::Kind::kDevice);
  EXPECT_FALSE(d.isModule());
  EXPECT_EQ(d.deviceId(), "edge1");
  EXPECT_EQ(d.moduleId(), "");
  EXPECT_EQ(d.toString(), "/devices/edge1");
  EXPECT_EQ(d.clientId(), "edge1");

  const Identity m = Identity::module("edge1", "$edgeHub");
  EXPECT_EQ(m.kind(), Identity::Kind::kModule);
  EXPECT_TRUE(m.isModule());
  EXPECT_EQ(m.deviceId(), "edge1");
  EXPECT_EQ(m.moduleId(), "$edgeHub");
  EXPECT_EQ(m.toString(), "/devices/edge1/modules/$edgeHub");
  EXPECT_EQ(m.clientId(), "edge1/$edgeHub");
}

TEST(IdentityTest, AcceptsEveryAllowedCharacter) {
  const std::string all =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.%_*?!(),:=@$'#+";
  for (char c : all) {
    const std::string id = std::string("a") + c + "b";
    EXPECT_TRUE(Identity::isValidDeviceId(id)) << id;
    EXPECT_TRUE(Identity::isValidModuleId(id)) << id;
  }
  EXPECT_TRUE(Identity::isValidDeviceId(all.substr(0, 70)));
  EXPECT_TRUE(Identity::isValidModuleId(all));
  EXPECT_TRUE(Identity::isValidDeviceId("-"));
  EXPECT_TRUE(Identity::isValidDeviceId("123"));
}

TEST(IdentityTest, RejectsForbiddenCharacters) {
  const std::vector<std::string> bad = {
      "a/b", "a b", "a\tb", "a\nb", std::string("a\0b", 3), "a\x7f" "b", "a\x01", "a\\b", "a\"b",
      "a;b", "a<b", "a>b", "a&b", "a[b", "a]b", "a{b", "a}b", "a|b", "a^b", "a`b", "a~b",
      "caf\xc3\xa9", "\xff",
  };
  for (const std::string& id : bad) {
    EXPECT_FALSE(Identity::isValidDeviceId(id)) << id;
    EXPECT_FALSE(Identity::isValidModuleId(id)) << id;
    EXPECT_FALSE(Identity::makeDevice(id).isOk()) << id;
    EXPECT_FALSE(Identity::makeModule("edge1", id).isOk()) << id;
  }
}

TEST(IdentityTest, EmptyAndLengthLimits) {
  EXPECT_FALSE(Identity::isValidDeviceId(""));
  EXPECT_FALSE(Identity::isValidModuleId(""));
  EXPECT_TRUE(Identity::isValidDeviceId(std::string(128, 'x')));
  EXPECT_FALSE(Identity::isValidDeviceId(std::string(129, 'x')));
  EXPECT_TRUE(Identity::isValidModuleId(std::string(128, 'x')));
  EXPECT_FALSE(Identity::isValidModuleId(std::string(129, 'x')));

  auto empty = Identity::makeDevice("");
  ASSERT_FALSE(empty.isOk());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("must not be empty"), std::string_view::npos);
  auto long_id = Identity::makeModule("d", std::string(129, 'm'));
  ASSERT_FALSE(long_id.isOk());
  EXPECT_NE(long_id.status().message().find("longer than 128"), std::string_view::npos);
}

TEST(IdentityTest, DollarPrefixOnlyForModules) {
  EXPECT_TRUE(Identity::isValidModuleId("$edgeHub"));
  EXPECT_TRUE(Identity::isValidModuleId("$edgeAgent"));
  EXPECT_FALSE(Identity::isValidDeviceId("$edgeHub"));
  EXPECT_TRUE(Identity::isValidDeviceId("a$b"));
  auto r = Identity::makeDevice("$dev");
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("only module ids may start with '$'"), std::string_view::npos);
}

TEST(IdentityTest, ErrorMessagesEscapeControlBytes) {
  auto r = Identity::makeDevice("a\nb\x01");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message().find('\n'), std::string_view::npos);
  EXPECT_NE(r.status().message().find("a\\x0ab\\x01"), std::string_view::npos);
}

TEST(IdentityTest, ParsePaths) {
  auto d = Identity::parse("/devices/leaf-1");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(*d, Identity::device("leaf-1"));
  auto m = Identity::parse("/devices/edge1/modules/$edgeHub");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(*m, Identity::module("edge1", "$edgeHub"));

  for (const char* bad : {"", "/", "/devices", "/devices/", "devices/a", "/device/a",
                          "/devices/a/", "/devices/a/modules", "/devices/a/modules/",
                          "/devices/a/modules/m/x", "/devices/a/module/m", "/devices//modules/m",
                          "/DEVICES/a", "/devices/a b", "/devices/$a"}) {
    EXPECT_FALSE(Identity::parse(bad).isOk()) << bad;
  }
}

TEST(IdentityTest, ParseDoesNotPercentDecode) {
  auto d = Identity::parse("/devices/a%2Fb");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->deviceId(), "a%2Fb");
}

TEST(IdentityTest, ParseClientIds) {
  auto d = Identity::parseClientId("leaf1");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(*d, Identity::device("leaf1"));
  auto m = Identity::parseClientId("edge1/sensor");
  ASSERT_TRUE(m.isOk());
  EXPECT_EQ(*m, Identity::module("edge1", "sensor"));
  for (const char* bad : {"", "/", "a/", "/m", "a/b/c", "a//b", "a b/c", "a/b c"}) {
    EXPECT_FALSE(Identity::parseClientId(bad).isOk()) << bad;
  }
}

TEST(IdentityTest, RoundTripsWithOddCharacters) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dev-1.%_*?!(),:=@$'#+", ""},
      {"d", "$edgeHub"},
      {"EDGE", "m-(1),:=@'#+*?!%._"},
      {std::string(128, 'D'), std::string(128, 'M')},
      {"a$", "$"},
  };
  for (const auto& [dev, mod] : cases) {
    auto made = mod.empty() ? Identity::makeDevice(dev) : Identity::makeModule(dev, mod);
    ASSERT_TRUE(made.isOk()) << dev << " " << mod << ": " << made.status().toString();
    auto from_path = Identity::parse(made->toString());
    ASSERT_TRUE(from_path.isOk()) << made->toString();
    EXPECT_EQ(*from_path, *made);
    auto from_client = Identity::parseClientId(made->clientId());
    ASSERT_TRUE(from_client.isOk()) << made->clientId();
    EXPECT_EQ(*from_client, *made);
    EXPECT_EQ(from_client->deviceId(), dev);
    EXPECT_EQ(from_client->moduleId(), mod);
  }
}

TEST(IdentityTest, OrderingAndEquality) {
  const Identity a = Identity::device("a");
  const Identity a_m = Identity::module("a", "m");
  const Identity a_n = Identity::module("a", "n");
  const Identity b = Identity::device("b");
  EXPECT_EQ(a, Identity::device("a"));
  EXPECT_NE(a, a_m);
  EXPECT_NE(a, Identity::device("A"));  // case-sensitive
  EXPECT_LT(a, a_m);                     // device sorts before its modules
  EXPECT_LT(a_m, a_n);
  EXPECT_LT(a_n, b);
  std::set<Identity> set = {b, a_n, a, a_m, Identity::device("a")};
  ASSERT_EQ(set.size(), 4u);
  std::vector<Identity> sorted(set.begin(), set.end());
  EXPECT_EQ(sorted, (std::vector<Identity>{a, a_m, a_n, b}));
}

}  // namespace
}  // namespace edgehub::core
