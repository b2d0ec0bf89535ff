#pragma once
// The upstream endpoint URL: where the hub's per-identity MQTT connections go.
//
//   url    = scheme "://" host [ ":" port ] [ "/" ]
//   scheme = "mqtt" / "mqtts"                      ; case-insensitive
//   host   = reg-name / "[" IPv6 "]"              ; reg-name: letters, digits, "-", ".", "_"
//   port   = 1*5DIGIT                              ; 1..65535; default 1883 (mqtt), 8883 (mqtts)
//
// No user info, path, query or fragment: credentials are per identity (SAS tokens), and MQTT
// has no path. IoT Hub itself is always mqtts on 8883 (dialect doc section 1); plain mqtt is
// for tests and benchmarks against a local broker.
//
// Thread-safety: value types and pure functions. Hot/cold: cold (configuration).
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::transports::upstream {

enum class UpstreamScheme : uint8_t { kMqtt, kMqtts };

struct UpstreamEndpoint {
  UpstreamScheme scheme = UpstreamScheme::kMqtts;
  std::string host;  // without the brackets of an IPv6 literal
  uint16_t port = 8883;

  bool tls() const { return scheme == UpstreamScheme::kMqtts; }
  // "mqtts://host:port" (IPv6 hosts in brackets).
  std::string toString() const;
};

// Parses `url` per the grammar above. Errors (kInvalidArgument, the message quotes the URL and
// names the problem): empty URL, missing "://", unknown scheme, empty or malformed host,
// unterminated '[', bad or out-of-range port, anything after the authority other than one '/'.
core::Result<UpstreamEndpoint> parseUpstreamUrl(std::string_view url);

}  // namespace edgehub::transports::upstream
