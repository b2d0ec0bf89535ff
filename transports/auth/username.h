#pragma once
// The MQTT CONNECT username of the IoT Hub dialect (dialect doc section 2.2), parsed the way
// edgeHub's MqttUsernameParser does:
//
//   username = host "/" deviceId [ "/" moduleId ] "/" [ "?" ] query
//   query    = pair *( "&" pair ) ; pair = key [ "=" value ]
//
// 3 segments are a device, 4 a module. A last segment starting with '?' is the query; without
// '?' it must contain "api-version=" (C SDKs of 2017/2018). One legacy six-segment form (an old
// Azure ML module that used '/' for '&') is recognised literally. The id segments are not
// percent-decoded (edgeHub does not either); query values are, with either hex case.
//
// Thread-safety: value types and pure functions. Hot/cold: cold (one call per CONNECT).
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::transports::auth {

struct MqttUsername {
  std::string host;       // the IoT Hub host name as sent; not validated
  std::string device_id;  // non-empty, taken literally
  std::string module_id;  // empty for a device
  // Every query key as sent, with its first value, percent-decoded. Unknown keys are kept here
  // (and otherwise ignored) so later features can read them without a new parser.
  std::map<std::string, std::string, std::less<>> query;
  // The recognised keys, copied out of `query`; empty when absent.
  std::string api_version;         // required, non-empty; its value is not checked
  std::string device_client_type;  // "DeviceClientType": product string, informational
  std::string model_id;            // "model-id": IoT Plug and Play model id
  std::string auth_chain;          // "auth-chain": nested edge (dialect doc section 10.3)

  bool isModule() const { return !module_id.empty(); }
  // "{d}" or "{d}/{m}": the client id this username requires.
  std::string clientId() const;
};

// Errors: kInvalidArgument with the reason (wrong segment count, empty device or module id, no
// api-version, empty api-version). The message does not echo the query, which may carry an
// auth chain.
core::Result<MqttUsername> parseMqttUsername(std::string_view username);

// The client id must equal "{d}" or "{d}/{m}" of the username, ordinal and case-sensitive
// (section 2.1). Error: kUnauthenticated naming both.
core::Status checkClientIdMatches(std::string_view client_id, const MqttUsername& username);

}  // namespace edgehub::transports::auth
