#include "transports/auth/sas_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstddef>
#include <limits>
#include <vector>

#include "core/base64.h"
#include "transports/auth/openssl_status.h"
#include "transports/percent_encoding.h"

namespace edgehub::transports::auth {
namespace {


bool equalsIgnoreAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// An id segment of the decoded audience names `id` as sent (encoded once, as the SDKs do) or
// after one more decoding (edgeHub's own builder encodes ids before encoding the whole URI).
bool idMatches(std::string_view segment, std::string_view id) {
  if (segment == id) return true;
  auto decoded = percentDecodeStrict(segment);
  return decoded.isOk() && *decoded == id;
}

core::Status checkAudience(const SasToken& token, const core::Identity& identity,
                           std::string_view hub_host_name) {
  const std::vector<std::string_view> parts = split(token.resource, '/');
  const bool shape_ok = identity.isModule()
                            ? parts.size() == 5 && parts[1] == "devices" && parts[3] == "modules"
                            : parts.size() == 3 && parts[1] == "devices";
  std::string reason = "token audience does not name ";
  reason.append(identity.toString());
  if (!shape_ok) return core::unauthenticated(std::move(reason));
  if (!equalsIgnoreAsciiCase(parts[0], hub_host_name)) {
    reason.append(" on this hub");
    return core::unauthenticated(std::move(reason));
  }
  if (!idMatches(parts[2], identity.deviceId()) ||
      (identity.isModule() && !idMatches(parts[4], identity.moduleId()))) {
    return core::unauthenticated(std::move(reason));
  }
  return core::Status::ok();
}

// base64(HMAC-SHA256(base64-decode(key_base64), string_to_sign)).
core::Result<std::string> signatureFor(std::string_view key_base64, std::string_view which,
                                       std::string_view string_to_sign) {
  auto key = core::base64Decode(key_base64);
  if (!key.isOk()) {
    std::string reason(which);
    reason.append(" key of the identity is not valid base64");
    return core::failedPrecondition(std::move(reason));
  }
  HUB_ASSIGN_OR_RETURN(std::string mac, hmacSha256(*key, string_to_sign));
  return core::base64Encode(mac);
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  // The length of a valid signature is public (44 characters), so only the content needs the
  // constant-time comparison.
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string stringToSign(std::string_view resource_raw, std::string_view expiry_raw) {
  std::string out(resource_raw);
  out.push_back('\n');
  out.append(expiry_raw);
  return out;
}

core::Status fieldError(std::string_view field, std::string_view what) {
  std::string reason = "invalid SAS token: ";
  reason.append(field);
  reason.append(what);
  return core::invalidArgument(std::move(reason));
}

}  // namespace

std::string SasToken::toString() const {
  std::string out = "SasToken{sr=";
  out.append(resource_raw);
  out.append(", se=");
  out.append(expiry_raw);
  if (key_name) {
    out.append(", skn=");
    out.append(*key_name);
  }
  out.push_back('}');
  return out;
}

core::Result<SasToken> parseSasToken(std::string_view password) {
  if (!password.starts_with(kSasTokenPrefix)) {
    return core::invalidArgument("invalid SAS token: missing \"SharedAccessSignature \" prefix");
  }
  const std::string_view body = password.substr(kSasTokenPrefix.size());
  std::optional<std::string_view> sr, sig, se, skn;
  for (std::string_view field : split(body, '&')) {
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos) return fieldError("a field", " has no '='");
    const std::string_view name = field.substr(0, eq);
    const std::string_view value = field.substr(eq + 1);
    std::optional<std::string_view>* slot = nullptr;
    if (name == "sr") slot = &sr;
    else if (name == "sig") slot = &sig;
    else if (name == "se") slot = &se;
    else if (name == "skn") slot = &skn;
    else continue;  // Unknown fields are ignored, as edgeHub does.
    if (slot->has_value()) {
      std::string what = "duplicate field ";
      what.append(name);
      return fieldError(what, "");
    }
    *slot = value;
  }
  if (!sr) return fieldError("missing field sr", "");
  if (!sig) return fieldError("missing field sig", "");
  if (!se) return fieldError("missing field se", "");
  if (sr->empty()) return fieldError("sr", " is empty");
  if (sig->empty()) return fieldError("sig", " is empty");

  SasToken token;
  token.resource_raw = std::string(*sr);
  token.expiry_raw = std::string(*se);

  auto resource = percentDecodeStrict(*sr);
  if (!resource.isOk()) return resource.status().withContext("invalid SAS token: sr");
  token.resource = std::move(resource).value();
  auto signature = percentDecodeStrict(*sig);
  if (!signature.isOk()) return signature.status().withContext("invalid SAS token: sig");
  token.signature = std::move(signature).value();
  if (skn) {
    auto key_name = percentDecodeStrict(*skn);
    if (!key_name.isOk()) return key_name.status().withContext("invalid SAS token: skn");
    token.key_name = std::move(key_name).value();
  }

  // Plain decimal only: no sign, no spaces, no hex; exactly what the signature covers.
  if (se->empty()) return fieldError("se", " is empty");
  int64_t expiry = 0;
  for (char c : *se) {
    if (c < '0' || c > '9') return fieldError("se", " is not a decimal number");
    const int digit = c - '0';
    if (expiry > (std::numeric_limits<int64_t>::max() - digit) / 10) {
      return fieldError("se", " is out of range");
    }
    expiry = expiry * 10 + digit;
  }
  token.expiry_unix = expiry;
  return token;
}

core::Status verifySasToken(const SasToken& token, const core::IdentityEntry& entry,
                            std::string_view hub_host_name, core::SystemTime now) {
  const int64_t now_unix =
      std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  // Written as a subtraction from `now` so that an `se` near INT64_MAX cannot overflow.
  if (token.expiry_unix < now_unix - kSasClockSkewSeconds) {
    return core::unauthenticated("token expired");
  }
  HUB_RETURN_IF_ERROR(checkAudience(token, entry.identity, hub_host_name));

  const std::string to_sign = stringToSign(token.resource_raw, token.expiry_raw);
  HUB_ASSIGN_OR_RETURN(std::string primary, signatureFor(entry.primary_key, "primary", to_sign));
  if (constantTimeEquals(token.signature, primary)) return core::Status::ok();
  if (!entry.secondary_key.empty()) {
    HUB_ASSIGN_OR_RETURN(std::string secondary,
                         signatureFor(entry.secondary_key, "secondary", to_sign));
    if (constantTimeEquals(token.signature, secondary)) return core::Status::ok();
  }
  return core::unauthenticated("signature mismatch");
}

std::string makeSasToken(std::string_view resource_uri_encoded, std::string_view key_base64,
                         int64_t expiry_unix) {
  const std::string expiry = std::to_string(expiry_unix);
  auto signature = signatureFor(key_base64, "given", stringToSign(resource_uri_encoded, expiry));
  if (!signature.isOk()) return std::string();
  std::string out(kSasTokenPrefix);
  out.append("sr=");
  out.append(resource_uri_encoded);
  out.append("&sig=");
  out.append(percentEncode(*signature));
  out.append("&se=");
  out.append(expiry);
  return out;
}

core::Result<std::string> hmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  // HMAC() wants a non-null key pointer even for an empty key.
  static const unsigned char kEmpty = 0;
  if (key.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return core::invalidArgument("HMAC-SHA256: key too long");
  }
  const void* key_data = key.empty() ? &kEmpty : static_cast<const void*>(key.data());
  const auto* data_bytes = data.empty() ? &kEmpty
                                        : reinterpret_cast<const unsigned char*>(data.data());
  if (HMAC(EVP_sha256(), key_data, static_cast<int>(key.size()), data_bytes, data.size(), mac,
           &mac_size) == nullptr) {
    return fromOpenssl("HMAC-SHA256");
  }
  return std::string(reinterpret_cast<const char*>(mac), mac_size);
}

}  // namespace edgehub::transports::auth
