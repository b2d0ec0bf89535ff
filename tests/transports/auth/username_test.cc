#include "transports/auth/username.h"

#include <gtest/gtest.h>

#include <string>

namespace edgehub::transports::auth {
namespace {

using core::StatusCode;

TEST(UsernameTest, NodeSdkModule) {
  // Dialect doc section 2.2, Node SDK 1.18.4 (uppercase escapes).
  auto u = parseMqttUsername(
      "myhub.azure-devices.net/dev1/mod1/?api-version=2021-04-12&DeviceClientType="
      "azure-iot-device%2F1.18.4%20(node%20v18.19.0%3B%20Linux%3B%20x64)");
  ASSERT_TRUE(u.isOk()) << u.status().toString();
  EXPECT_EQ(u->host, "myhub.azure-devices.net");
  EXPECT_EQ(u->device_id, "dev1");
  EXPECT_EQ(u->module_id, "mod1");
  EXPECT_TRUE(u->isModule());
  EXPECT_EQ(u->api_version, "2021-04-12");
  EXPECT_EQ(u->device_client_type, "azure-iot-device/1.18.4 (node v18.19.0; Linux; x64)");
  EXPECT_EQ(u->model_id, "");
  EXPECT_EQ(u->auth_chain, "");
  EXPECT_EQ(u->clientId(), "dev1/mod1");
}

TEST(UsernameTest, CSdkCurrentDeviceWithModelIdLowercaseEscapes) {
  auto u = parseMqttUsername(
      "myhub.azure-devices.net/dev1/?api-version=2020-09-30&DeviceClientType="
      "iothubclient%2f1.11.0%20(native%3b%20Linux%3b%20x86_64)&model-id=dtmi%3acom%3aexample%3b1");
  ASSERT_TRUE(u.isOk()) << u.status().toString();
  EXPECT_EQ(u->device_id, "dev1");
  EXPECT_EQ(u->module_id, "");
  EXPECT_FALSE(u->isModule());
  EXPECT_EQ(u->api_version, "2020-09-30");
  EXPECT_EQ(u->device_client_type, "iothubclient/1.11.0 (native; Linux; x86_64)");
  EXPECT_EQ(u->model_id, "dtmi:com:example;1");
  EXPECT_EQ(u->clientId(), "dev1");
}

TEST(UsernameTest, CSdkCurrentModule) {
  auto u = parseMqttUsername(
      "myhub.azure-devices.net/dev1/mod1/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.11.0");
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->module_id, "mod1");
  EXPECT_EQ(u->device_client_type, "iothubclient/1.11.0");
}

TEST(UsernameTest, CSdk2017FormWithoutQuestionMark) {
  auto device = parseMqttUsername(
      "myhub.azure-devices.net/dev1/api-version=2017-06-30&DeviceClientType=iothubclient%2f1.1.29");
  ASSERT_TRUE(device.isOk()) << device.status().toString();
  EXPECT_EQ(device->device_id, "dev1");
  EXPECT_EQ(device->module_id, "");
  EXPECT_EQ(device->api_version, "2017-06-30");
  EXPECT_EQ(device->device_client_type, "iothubclient/1.1.29");
  auto module = parseMqttUsername("h/dev1/mod1/DeviceClientType=x&api-version=2018-06-30");
  ASSERT_TRUE(module.isOk());
  EXPECT_EQ(module->module_id, "mod1");
  EXPECT_EQ(module->api_version, "2018-06-30");
}

TEST(UsernameTest, MissingApiVersionRejected) {
  // C SDK before late 2017: no api-version at all.
  auto old = parseMqttUsername("myhub.azure-devices.net/dev1/DeviceClientType=iothubclient%2f1.1.0");
  ASSERT_FALSE(old.isOk());
  EXPECT_EQ(old.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(old.status().message(), "invalid MQTT username: missing api-version");
  EXPECT_EQ(parseMqttUsername("h/dev1/?DeviceClientType=x").status().message(),
            "invalid MQTT username: missing api-version");
  EXPECT_EQ(parseMqttUsername("h/dev1/mod1/?").status().message(),
            "invalid MQTT username: missing api-version");
  EXPECT_EQ(parseMqttUsername("h/dev1/?api-version=").status().message(),
            "invalid MQTT username: empty api-version");
  EXPECT_EQ(parseMqttUsername("h/dev1/?api-version").status().message(),
            "invalid MQTT username: empty api-version");
  // A key that merely contains the text is not the key.
  EXPECT_EQ(parseMqttUsername("h/dev1/x-api-version=1").status().message(),
            "invalid MQTT username: missing api-version");
}

TEST(UsernameTest, SegmentCounts) {
  EXPECT_FALSE(parseMqttUsername("h/?api-version=1").isOk());
  EXPECT_FALSE(parseMqttUsername("").isOk());
  EXPECT_EQ(parseMqttUsername("h/d/m/x/?api-version=1").status().message(),
            "invalid MQTT username: expected 3 (device) or 4 (module) '/'-separated segments");
  // An unescaped '/' in a value changes the count too.
  EXPECT_FALSE(parseMqttUsername("h/d/?api-version=1&DeviceClientType=a/b").isOk());
  EXPECT_FALSE(parseMqttUsername("h/d/m/?api-version=1&DeviceClientType=a/b").isOk());
  auto three = parseMqttUsername("h/d/?api-version=1");
  ASSERT_TRUE(three.isOk());
  EXPECT_FALSE(three->isModule());
  auto four = parseMqttUsername("h/d/m/?api-version=1");
  ASSERT_TRUE(four.isOk());
  EXPECT_TRUE(four->isModule());
  EXPECT_EQ(parseMqttUsername("h//?api-version=1").status().message(),
            "invalid MQTT username: empty device id");
  EXPECT_EQ(parseMqttUsername("h/d//?api-version=1").status().message(),
            "invalid MQTT username: empty module id");
  // The host segment is not validated.
  EXPECT_TRUE(parseMqttUsername("/d/?api-version=1").isOk());
}

TEST(UsernameTest, SixSegmentSpecialCase) {
  auto u = parseMqttUsername(
      "myhub.azure-devices.net/dev1/mlmod/api-version=2017-06-30/"
      "DeviceClientType=Microsoft.Azure.Devices.Client/1.5.1-preview-003");
  ASSERT_TRUE(u.isOk()) << u.status().toString();
  EXPECT_EQ(u->host, "myhub.azure-devices.net");
  EXPECT_EQ(u->device_id, "dev1");
  EXPECT_EQ(u->module_id, "mlmod");
  EXPECT_EQ(u->api_version, "2017-06-30");
  EXPECT_EQ(u->device_client_type, "Microsoft.Azure.Devices.Client/1.5.1-preview-003");
  // Only that exact tail: another version or six segments of something else are rejected.
  EXPECT_FALSE(parseMqttUsername("h/dev1/mlmod/api-version=2017-06-30/"
                                 "DeviceClientType=Microsoft.Azure.Devices.Client/1.5.2")
                   .isOk());
  EXPECT_FALSE(parseMqttUsername("h/dev1/mlmod/x/api-version=2017-06-30/DeviceClientType=a").isOk());
  EXPECT_FALSE(parseMqttUsername("h/dev1//api-version=2017-06-30/"
                                 "DeviceClientType=Microsoft.Azure.Devices.Client/1.5.1-preview-003")
                   .isOk());
}

TEST(UsernameTest, QueryFirstOccurrenceWinsAndDecoding) {
  auto u = parseMqttUsername(
      "h/d/?api-version=first&api-version=second&&flag&auth-chain=leaf1%3bedge1%3BEdge2"
      "&odd=100%&x=%41%4a%4A");
  ASSERT_TRUE(u.isOk()) << u.status().toString();
  EXPECT_EQ(u->api_version, "first");
  EXPECT_EQ(u->auth_chain, "leaf1;edge1;Edge2");
  EXPECT_EQ(u->query.at("flag"), "");
  // Invalid escapes stay literal (as Uri.UnescapeDataString leaves them).
  EXPECT_EQ(u->query.at("odd"), "100%");
  EXPECT_EQ(u->query.at("x"), "AJJ");
  // '=' inside a value: split on the first '=' only.
  auto v = parseMqttUsername("h/d/?api-version=a=b");
  ASSERT_TRUE(v.isOk());
  EXPECT_EQ(v->api_version, "a=b");
}

TEST(UsernameTest, IdSegmentsNotDecoded) {
  auto u = parseMqttUsername("h/dev%241/mod?1/?api-version=1");
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->device_id, "dev%241");
  EXPECT_EQ(u->module_id, "mod?1");
}

TEST(ClientIdTest, MustMatchUsernameOrdinally) {
  auto module = parseMqttUsername("h/dev1/mod1/?api-version=1");
  ASSERT_TRUE(module.isOk());
  EXPECT_TRUE(checkClientIdMatches("dev1/mod1", *module).isOk());
  const core::Status wrong = checkClientIdMatches("dev1", *module);
  EXPECT_EQ(wrong.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.message(), "client id 'dev1' does not match the username's identity 'dev1/mod1'");
  EXPECT_FALSE(checkClientIdMatches("dev1/Mod1", *module).isOk());
  EXPECT_FALSE(checkClientIdMatches("dev1/mod2", *module).isOk());
  EXPECT_FALSE(checkClientIdMatches("dev1/mod1/", *module).isOk());

  auto device = parseMqttUsername("h/dev1/?api-version=1");
  ASSERT_TRUE(device.isOk());
  EXPECT_TRUE(checkClientIdMatches("dev1", *device).isOk());
  EXPECT_FALSE(checkClientIdMatches("DEV1", *device).isOk());
  EXPECT_FALSE(checkClientIdMatches("dev1/mod1", *device).isOk());
  EXPECT_FALSE(checkClientIdMatches("", *device).isOk());
}

}  // namespace
}  // namespace edgehub::transports::auth
