#pragma once
// What one upstream identity presents to IoT Hub (iothub-mqtt-dialect.md sections 2 and 10),
// and the telemetry topic it publishes to:
//
//   client id  = d "/" m                                  ; leaf device: d
//   username   = hub "/" d "/" m "/?api-version=2021-04-12" ; leaf device: hub "/" d "/?api-version=..."
//   password   = SAS token, sr = percent-encode(hub "/devices/" d ["/modules/" m])
//   topic      = "devices/" seg(d) ["/modules/" seg(m)] "/messages/events/" [bag]
//
// `hub` is the IoT Hub host name (not necessarily the host we dial: a local broker in tests, a
// parent edge in nested setups). Ids go into the username verbatim (edgeHub does not decode
// them there either); in topics they are path-segment encoded; in `sr` the whole URI is
// percent-encoded once (the C SDK form; the HMAC covers the encoded bytes, section 2.3).
//
// Secrets: UpstreamCredentials::symmetric_key and every password are credentials; nothing in
// this file logs them and no toString() includes them.
// Thread-safety: value types and pure functions, safe from any thread.
// Hot/cold: the topic helpers are hot (one call per message, append-only into a caller-owned
// string that keeps its capacity); the rest is cold (one call per CONNECT).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/identity.h"

namespace edgehub::transports::upstream {

inline constexpr std::string_view kUpstreamApiVersion = "2021-04-12";

// One identity's credentials. The key is the identity's base64 symmetric (primary) key.
struct UpstreamCredentials {
  core::Identity identity;
  std::string symmetric_key;  // base64; a secret
};

std::string upstreamClientId(const core::Identity& identity);
std::string upstreamUsername(std::string_view hub_host_name, const core::Identity& identity);
// The percent-encoded `sr` value.
std::string upstreamSasResource(std::string_view hub_host_name, const core::Identity& identity);
// A SAS token for the identity expiring at expiry_unix. Empty if the key is not valid base64.
std::string makeUpstreamPassword(std::string_view hub_host_name, const UpstreamCredentials& credentials,
                                 int64_t expiry_unix);

// One property of a telemetry message, decoded (the helper encodes it). A nullopt value is a
// key without '=' (section 4 grammar).
struct TelemetryProperty {
  std::string_view key;
  std::optional<std::string_view> value;
};

// Appends "devices/{d}[/modules/{m}]/messages/events/" and then `encoded_bag` verbatim (already
// in wire form, e.g. "%24.ct=application%2Fjson&site=north"; may be empty).
void appendTelemetryTopic(std::string& out, const core::Identity& identity, std::string_view encoded_bag);
// The same, encoding `properties` into the bag with the dialect's encoder (transports/
// percent_encoding.h appendBagEncoded: '$' becomes %24, which the C SDK needs; section 4).
void appendTelemetryTopic(std::string& out, const core::Identity& identity,
                          std::span<const TelemetryProperty> properties);

}  // namespace edgehub::transports::upstream
