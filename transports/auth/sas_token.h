#pragma once
// SAS tokens: the MQTT CONNECT password of the IoT Hub dialect (dialect doc section 2.3).
//
//   password  = "SharedAccessSignature" SP field *("&" field)
//   field     = ("sr" / "sig" / "se" / "skn" / other) "=" value      ; any order
//   string-to-sign = raw sr value + "\n" + raw se value
//   sig       = percent-encode(base64(HMAC-SHA256(base64-decode(identity key), string-to-sign)))
//
// The HMAC covers the percent-encoded `sr` exactly as sent, because SDKs differ in escape case
// and in how often they encode ids; the verifier therefore signs SasToken::resource_raw and never
// re-encodes a decoded audience. The audience itself is compared in decoded form so that those
// encoding variations are all accepted.
//
// Secrets: no error message and no toString() includes the signature or a key.
// Thread-safety: value types and pure functions (time is a parameter, never read here).
// Hot/cold: cold (one parse and verify per CONNECT).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/config/identities.h"
#include "core/status.h"
#include "core/time_source.h"

namespace edgehub::transports::auth {

inline constexpr std::string_view kSasTokenPrefix = "SharedAccessSignature ";
// edgeHub accepts a token until 5 minutes after its `se` (clock skew between client and hub).
inline constexpr int64_t kSasClockSkewSeconds = 300;

// A parsed token. Owns copies of its fields, so it outlives the CONNECT packet.
struct SasToken {
  std::string resource_raw;     // `sr` exactly as sent (still percent-encoded); what is signed
  std::string resource;         // `sr` percent-decoded once
  std::string signature;        // `sig` percent-decoded: base64 text of the HMAC. A credential.
  std::string expiry_raw;       // `se` exactly as sent; what is signed
  int64_t expiry_unix = 0;      // `se` as seconds since the Unix epoch
  std::optional<std::string> key_name;  // `skn` percent-decoded, if present

  // "SasToken{sr=..., se=..., skn=...}" without the signature.
  std::string toString() const;
};

// Parses a CONNECT password. Unknown fields are ignored. Errors (kInvalidArgument, the reason
// names the field, never its secret value): missing "SharedAccessSignature " prefix, a field
// without '=', a duplicate or missing sr/sig/se, an empty sr or sig, `se` not a plain decimal
// number or above INT64_MAX, a bad percent escape in sr, sig or skn.
core::Result<SasToken> parseSasToken(std::string_view password);

// Verifies a parsed token for `entry`, the identity the client claims (from its client id), in
// the order edgeHub uses. All failures are kUnauthenticated:
//   1. expiry: "token expired" when expiry_unix + kSasClockSkewSeconds < now (in seconds);
//   2. audience: the decoded `sr` must be "{hub_host_name}/devices/{d}" for a device entry or
//      "{hub_host_name}/devices/{d}/modules/{m}" for a module entry. The host compares
//      case-insensitively (DNS names); the ids compare ordinally and case-sensitively, as IoT
//      Hub ids are case-sensitive and the client id check (section 2.1) is too. Each id may be
//      percent-encoded once more (edgeHub's builder sends `$edgeHub` as "%2524edgeHub"). A
//      device audience is never accepted for a module;
//   3. signature: HMAC over the raw bytes with the primary key, else the secondary key,
//      compared in constant time.
// kFailedPrecondition if a key of `entry` is not valid base64; kInternal if OpenSSL fails.
// TODO(soon): the edge device's own host name (EdgeDeviceHostName) as a second accepted host.
core::Status verifySasToken(const SasToken& token, const core::IdentityEntry& entry,
                            std::string_view hub_host_name, core::SystemTime now);

// Builds a token "SharedAccessSignature sr={resource_uri_encoded}&sig={...}&se={expiry_unix}".
// resource_uri_encoded is used as given (the caller chooses the encoding), sig is base64 with
// '+', '/' and '=' percent-encoded in uppercase. For tests and the upstream client.
// Returns an empty string if key_base64 is not valid base64 or HMAC fails.
std::string makeSasToken(std::string_view resource_uri_encoded, std::string_view key_base64,
                         int64_t expiry_unix);

// HMAC-SHA256 of data under key (raw bytes in, 32 raw bytes out). Exposed for known-answer tests
// of the HMAC core. Errors: kInternal from fromOpenssl().
core::Result<std::string> hmacSha256(std::string_view key, std::string_view data);

}  // namespace edgehub::transports::auth
