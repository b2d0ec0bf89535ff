#pragma once
// Identity: the addressing and security scope of a module instance or a device.
//   device: /devices/{deviceId}
//   module: /devices/{deviceId}/modules/{moduleId}
//
// Value type, no virtual methods; thread-safety as std::string. Ids are case-sensitive, as in
// IoT Hub. Parsing follows IoT Hub's id rules (see isValidId): device and module ids are at most
// 128 characters of ASCII letters, digits and "-.%_*?!(),:=@$'#+" ("/" and whitespace never),
// and module ids may additionally start with '$' (system modules such as $edgeHub).
#include <compare>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::core {

// The module identity of the hub itself (IoT Edge's $edgeHub). The hub generates its key with the
// others; `edgehub method invoke` authenticates with it (the operator's identity).
inline constexpr std::string_view kEdgeHubModuleId = "$edgeHub";

class Identity {
 public:
  enum class Kind : uint8_t { kDevice, kModule };

  // REQUIRES: ids valid per isValidDeviceId/isValidModuleId (use parse/make for outside input).
  static Identity device(std::string device_id);
  static Identity module(std::string device_id, std::string module_id);

  // Validating constructors for outside input.
  static Result<Identity> makeDevice(std::string_view device_id);
  static Result<Identity> makeModule(std::string_view device_id, std::string_view module_id);
  // Parses "/devices/{d}" or "/devices/{d}/modules/{m}". Path segments are taken literally:
  // no percent-decoding happens here (topic parsers decode before they build identities).
  static Result<Identity> parse(std::string_view path);
  // Parses an MQTT client id: "{d}" (device) or "{d}/{m}" (module).
  static Result<Identity> parseClientId(std::string_view client_id);

  static bool isValidDeviceId(std::string_view id);
  static bool isValidModuleId(std::string_view id);

  Kind kind() const { return module_id_.empty() ? Kind::kDevice : Kind::kModule; }
  bool isModule() const { return kind() == Kind::kModule; }
  const std::string& deviceId() const { return device_id_; }
  // Empty for a device identity.
  const std::string& moduleId() const { return module_id_; }

  // "/devices/{d}" or "/devices/{d}/modules/{m}".
  std::string toString() const;
  // "{d}" or "{d}/{m}": the MQTT client id and the IoT Hub connection id.
  std::string clientId() const;

  friend auto operator<=>(const Identity&, const Identity&) = default;
  friend bool operator==(const Identity&, const Identity&) = default;

 private:
  Identity(std::string device_id, std::string module_id)
      : device_id_(std::move(device_id)), module_id_(std::move(module_id)) {}
  std::string device_id_;
  std::string module_id_;
};

}  // namespace edgehub::core
