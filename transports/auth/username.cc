#include "transports/auth/username.h"

#include <cstddef>
#include <vector>

#include "transports/percent_encoding.h"

namespace edgehub::transports::auth {
namespace {

// The Azure ML module's username tail (edgeHub special-cases exactly this string).
constexpr std::string_view kLegacySixSegmentSuffix =
    "/api-version=2017-06-30/DeviceClientType=Microsoft.Azure.Devices.Client/1.5.1-preview-003";
constexpr std::string_view kLegacyApiVersion = "2017-06-30";
constexpr std::string_view kLegacyClientType = "Microsoft.Azure.Devices.Client/1.5.1-preview-003";


core::Status usernameError(std::string_view what) {
  std::string reason = "invalid MQTT username: ";
  reason.append(what);
  return core::invalidArgument(std::move(reason));
}

void parseQuery(std::string_view query, MqttUsername& out) {
  for (std::string_view pair : split(query, '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    // try_emplace keeps the first occurrence of a key, as edgeHub does.
    if (out.query.find(key) == out.query.end()) {
      out.query.try_emplace(std::string(key), percentDecodeLenient(value));
    }
  }
}

std::string queryValue(const MqttUsername& username, std::string_view key) {
  const auto it = username.query.find(key);
  return it == username.query.end() ? std::string() : it->second;
}

}  // namespace

std::string MqttUsername::clientId() const {
  std::string out = device_id;
  if (!module_id.empty()) {
    out.push_back('/');
    out.append(module_id);
  }
  return out;
}

core::Result<MqttUsername> parseMqttUsername(std::string_view username) {
  const std::vector<std::string_view> segments = split(username, '/');
  MqttUsername out;

  if (segments.size() == 6 && username.ends_with(kLegacySixSegmentSuffix)) {
    out.host = std::string(segments[0]);
    out.device_id = std::string(segments[1]);
    out.module_id = std::string(segments[2]);
    out.query.try_emplace("api-version", std::string(kLegacyApiVersion));
    out.query.try_emplace("DeviceClientType", std::string(kLegacyClientType));
    if (out.module_id.empty()) return usernameError("empty module id");
  } else {
    if (segments.size() != 3 && segments.size() != 4) {
      return usernameError("expected 3 (device) or 4 (module) '/'-separated segments");
    }
    std::string_view last = segments.back();
    if (last.starts_with('?')) {
      last.remove_prefix(1);
    } else if (last.find("api-version=") == std::string_view::npos) {
      return usernameError("missing api-version");
    }
    out.host = std::string(segments[0]);
    out.device_id = std::string(segments[1]);
    if (segments.size() == 4) {
      out.module_id = std::string(segments[2]);
      if (out.module_id.empty()) return usernameError("empty module id");
    }
    parseQuery(last, out);
  }
  if (out.device_id.empty()) return usernameError("empty device id");

  const auto api_version = out.query.find("api-version");
  if (api_version == out.query.end()) return usernameError("missing api-version");
  if (api_version->second.empty()) return usernameError("empty api-version");
  out.api_version = api_version->second;
  out.device_client_type = queryValue(out, "DeviceClientType");
  out.model_id = queryValue(out, "model-id");
  out.auth_chain = queryValue(out, "auth-chain");
  return out;
}

core::Status checkClientIdMatches(std::string_view client_id, const MqttUsername& username) {
  const std::string expected = username.clientId();
  if (client_id == expected) return core::Status::ok();
  std::string reason = "client id '";
  reason.append(client_id);
  reason.append("' does not match the username's identity '");
  reason.append(expected);
  reason.push_back('\'');
  return core::unauthenticated(std::move(reason));
}

}  // namespace edgehub::transports::auth
