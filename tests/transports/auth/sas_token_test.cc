#include "transports/auth/sas_token.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "core/base64.h"
#include "transports/percent_encoding.h"

namespace edgehub::transports::auth {
namespace {

using core::StatusCode;

constexpr std::string_view kHub = "myhub.azure-devices.net";
// Dialect doc section 2.3 test vector: key bytes 0x00..0x1f.
constexpr std::string_view kKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
constexpr int64_t kExpiry = 1'800'000'000;
constexpr std::string_view kModuleSr = "myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1";
constexpr std::string_view kModuleSrLower =
    "myhub.azure-devices.net%2fdevices%2fdev1%2fmodules%2fmod1";
constexpr std::string_view kDeviceSr = "myhub.azure-devices.net%2Fdevices%2Fdev1";

std::string bytesFrom(int first, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out.push_back(static_cast<char>(first + i));
  return out;
}

std::string otherKey() { return core::base64Encode(bytesFrom(0x20, 32)); }

core::SystemTime at(int64_t unix_seconds) {
  return core::SystemTime(std::chrono::seconds(unix_seconds));
}

// A time well before the test tokens expire.
core::SystemTime before() { return at(kExpiry - 3600); }

core::IdentityEntry moduleEntry(std::string primary = std::string(kKey),
                                std::string secondary = "") {
  return core::IdentityEntry{core::Identity::module("dev1", "mod1"), std::move(primary),
                             std::move(secondary)};
}

core::IdentityEntry deviceEntry() {
  return core::IdentityEntry{core::Identity::device("dev1"), std::string(kKey), ""};
}

core::Status parseAndVerify(std::string_view password, const core::IdentityEntry& entry,
                            core::SystemTime now, std::string_view hub = kHub) {
  auto token = parseSasToken(password);
  if (!token.isOk()) return token.status();
  return verifySasToken(*token, entry, hub, now);
}

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0F]);
  }
  return out;
}

// --- HMAC core and known answers ---

TEST(SasTokenHmacTest, Rfc4231TestCases) {
  // RFC 4231 section 4.2 (test case 1) and 4.3 (test case 2), HMAC-SHA-256.
  auto one = hmacSha256(std::string(20, '\x0b'), "Hi There");
  ASSERT_TRUE(one.isOk());
  EXPECT_EQ(hex(*one), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  auto two = hmacSha256("Jefe", "what do ya want for nothing?");
  ASSERT_TRUE(two.isOk());
  EXPECT_EQ(hex(*two), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SasTokenMakeTest, MatchesDialectDocVector) {
  // The exact wire token from dialect doc section 2.3 (computed independently of this code).
  EXPECT_EQ(makeSasToken(kModuleSr, kKey, kExpiry),
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1"
            "&sig=iYGnnTR76bPQzYENv3BBQyAOye3ufYIQB%2BwaaxLJUP4%3D&se=1800000000");
}

TEST(SasTokenMakeTest, BadKeyGivesEmptyString) {
  EXPECT_EQ(makeSasToken(kModuleSr, "not base64!", kExpiry), "");
}

// --- verification ---

TEST(SasTokenVerifyTest, DocVectorVerifies) {
  const std::string wire =
      "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1"
      "&sig=iYGnnTR76bPQzYENv3BBQyAOye3ufYIQB%2BwaaxLJUP4%3D&se=1800000000";
  EXPECT_TRUE(parseAndVerify(wire, moduleEntry(), before()).isOk());
}

TEST(SasTokenVerifyTest, RoundTripModuleAndDevice) {
  EXPECT_TRUE(parseAndVerify(makeSasToken(kModuleSr, kKey, kExpiry), moduleEntry(), before())
                  .isOk());
  EXPECT_TRUE(parseAndVerify(makeSasToken(kDeviceSr, kKey, kExpiry), deviceEntry(), before())
                  .isOk());
}

TEST(SasTokenVerifyTest, LowercaseEscapesVerifyAgainstRawBytes) {
  const std::string lower = makeSasToken(kModuleSrLower, kKey, kExpiry);
  // The doc's vector for the lowercase form: a different signature, because the raw bytes differ.
  EXPECT_NE(lower.find("sig=jk%2B%2F9bVrZMqcaYMzCqQJJlvCtCCmSVHIiuT%2BCuP4P9s%3D"),
            std::string::npos);
  EXPECT_TRUE(parseAndVerify(lower, moduleEntry(), before()).isOk());
  // The uppercase signature over the lowercase sr must not verify: the verifier signs raw bytes
  // and does not normalise the encoding.
  std::string swapped(kSasTokenPrefix);
  swapped.append("sr=");
  swapped.append(kModuleSrLower);
  swapped.append("&sig=iYGnnTR76bPQzYENv3BBQyAOye3ufYIQB%2BwaaxLJUP4%3D&se=1800000000");
  EXPECT_EQ(parseAndVerify(swapped, moduleEntry(), before()).message(), "signature mismatch");
}

TEST(SasTokenVerifyTest, UnencodedAndDoublyEncodedAudiencesAccepted) {
  EXPECT_TRUE(parseAndVerify(makeSasToken("myhub.azure-devices.net/devices/dev1/modules/mod1",
                                          kKey, kExpiry),
                             moduleEntry(), before())
                  .isOk());
  // edgeHub's builder encodes ids and then the URI: $edgeHub becomes %2524edgeHub.
  core::IdentityEntry edge_hub{core::Identity::module("dev1", "$edgeHub"), std::string(kKey), ""};
  EXPECT_TRUE(parseAndVerify(makeSasToken("myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2F"
                                          "%2524edgeHub",
                                          kKey, kExpiry),
                             edge_hub, before())
                  .isOk());
  EXPECT_TRUE(parseAndVerify(makeSasToken("myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2F"
                                          "%24edgeHub",
                                          kKey, kExpiry),
                             edge_hub, before())
                  .isOk());
}

TEST(SasTokenVerifyTest, HostComparesCaseInsensitivelyIdsCaseSensitively) {
  EXPECT_TRUE(parseAndVerify(makeSasToken("MyHub.Azure-Devices.NET%2Fdevices%2Fdev1%2Fmodules%2Fmod1",
                                          kKey, kExpiry),
                             moduleEntry(), before())
                  .isOk());
  EXPECT_EQ(parseAndVerify(makeSasToken("myhub.azure-devices.net%2Fdevices%2FDev1%2Fmodules%2Fmod1",
                                        kKey, kExpiry),
                           moduleEntry(), before())
                .code(),
            StatusCode::kUnauthenticated);
}

TEST(SasTokenVerifyTest, WrongKeyRejected) {
  const std::string token = makeSasToken(kModuleSr, otherKey(), kExpiry);
  const core::Status status = parseAndVerify(token, moduleEntry(), before());
  EXPECT_EQ(status.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(status.message(), "signature mismatch");
}

TEST(SasTokenVerifyTest, SecondaryKeyAccepted) {
  const std::string token = makeSasToken(kModuleSr, otherKey(), kExpiry);
  EXPECT_TRUE(parseAndVerify(token, moduleEntry(std::string(kKey), otherKey()), before()).isOk());
  // And the primary still works when a secondary is configured.
  EXPECT_TRUE(parseAndVerify(makeSasToken(kModuleSr, kKey, kExpiry),
                             moduleEntry(std::string(kKey), otherKey()), before())
                  .isOk());
}

TEST(SasTokenVerifyTest, InvalidConfiguredKeyIsPrecondition) {
  const std::string token = makeSasToken(kModuleSr, kKey, kExpiry);
  EXPECT_EQ(parseAndVerify(token, moduleEntry("###"), before()).code(),
            StatusCode::kFailedPrecondition);
}

TEST(SasTokenVerifyTest, ExpiryWithFiveMinutesOfSkew) {
  const std::string token = makeSasToken(kModuleSr, kKey, kExpiry);
  // Still valid at se + 300 s (reject only when se + 300 < now), also with sub-second parts.
  EXPECT_TRUE(parseAndVerify(token, moduleEntry(), at(kExpiry)).isOk());
  EXPECT_TRUE(parseAndVerify(token, moduleEntry(), at(kExpiry + 299)).isOk());
  EXPECT_TRUE(parseAndVerify(token, moduleEntry(), at(kExpiry + 300)).isOk());
  EXPECT_TRUE(parseAndVerify(token, moduleEntry(),
                             at(kExpiry + 300) + std::chrono::milliseconds(999))
                  .isOk());
  const core::Status expired = parseAndVerify(token, moduleEntry(), at(kExpiry + 301));
  EXPECT_EQ(expired.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(expired.message(), "token expired");
  EXPECT_EQ(parseAndVerify(token, moduleEntry(), at(kExpiry + 86400)).message(), "token expired");
}

TEST(SasTokenVerifyTest, FarFutureTokenFine) {
  const int64_t far = 4'000'000'000;
  EXPECT_TRUE(parseAndVerify(makeSasToken(kModuleSr, kKey, far), moduleEntry(), at(1'700'000'000))
                  .isOk());
  // An se near INT64_MAX must not overflow the skew arithmetic.
  const int64_t max = INT64_MAX;
  EXPECT_TRUE(parseAndVerify(makeSasToken(kModuleSr, kKey, max), moduleEntry(), before()).isOk());
}

TEST(SasTokenVerifyTest, WrongAudienceRejected) {
  const auto rejects = [](std::string_view sr, const core::IdentityEntry& entry) {
    const core::Status status = parseAndVerify(makeSasToken(sr, kKey, kExpiry), entry, before());
    EXPECT_EQ(status.code(), StatusCode::kUnauthenticated) << sr;
    EXPECT_TRUE(status.message().starts_with("token audience does not name")) << status.toString();
  };
  // Other device, other module.
  rejects("myhub.azure-devices.net%2Fdevices%2Fdev2%2Fmodules%2Fmod1", moduleEntry());
  rejects("myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod2", moduleEntry());
  rejects("myhub.azure-devices.net%2Fdevices%2Fdev2", deviceEntry());
  // A device token used for a module, and a module token used for its device.
  rejects(kDeviceSr, moduleEntry());
  rejects(kModuleSr, deviceEntry());
  // Other hub, and the literal segments required by our rule.
  rejects("otherhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1", moduleEntry());
  rejects("myhub.azure-devices.net%2Fdevice%2Fdev1%2Fmodules%2Fmod1", moduleEntry());
  rejects("myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodule%2Fmod1", moduleEntry());
  rejects("myhub.azure-devices.net%2Fdevices%2Fdev1%2F", deviceEntry());
  rejects("myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fmod1%2F", moduleEntry());
}

TEST(SasTokenVerifyTest, TamperedExpiryBreaksSignature) {
  std::string token = makeSasToken(kModuleSr, kKey, kExpiry);
  token.replace(token.find("se=1800000000"), 13, "se=1900000000");
  EXPECT_EQ(parseAndVerify(token, moduleEntry(), before()).message(), "signature mismatch");
  // Leading zeros are the same number but not the same signed bytes.
  token = makeSasToken(kModuleSr, kKey, kExpiry);
  token.replace(token.find("se=1800000000"), 13, "se=01800000000");
  EXPECT_EQ(parseAndVerify(token, moduleEntry(), before()).message(), "signature mismatch");
}

// --- parsing ---

TEST(SasTokenParseTest, FieldsInAnyOrder) {
  const std::string sig = "iYGnnTR76bPQzYENv3BBQyAOye3ufYIQB%2BwaaxLJUP4%3D";
  const std::string sr = std::string("sr=").append(kModuleSr);
  std::string a(kSasTokenPrefix);
  a.append("se=1800000000&sig=").append(sig).append("&").append(sr);
  std::string b(kSasTokenPrefix);
  b.append("sig=").append(sig).append("&skn=policy%20name&").append(sr).append("&se=1800000000");
  for (const std::string& wire : {a, b}) {
    auto token = parseSasToken(wire);
    ASSERT_TRUE(token.isOk()) << token.status().toString();
    EXPECT_EQ(token->resource_raw, kModuleSr);
    EXPECT_EQ(token->resource, "myhub.azure-devices.net/devices/dev1/modules/mod1");
    EXPECT_EQ(token->signature, "iYGnnTR76bPQzYENv3BBQyAOye3ufYIQB+waaxLJUP4=");
    EXPECT_EQ(token->expiry_raw, "1800000000");
    EXPECT_EQ(token->expiry_unix, kExpiry);
    EXPECT_TRUE(verifySasToken(*token, moduleEntry(), kHub, before()).isOk());
  }
  auto with_skn = parseSasToken(b);
  ASSERT_TRUE(with_skn.isOk());
  ASSERT_TRUE(with_skn->key_name.has_value());
  EXPECT_EQ(*with_skn->key_name, "policy name");
  EXPECT_FALSE(parseSasToken(a)->key_name.has_value());
}

TEST(SasTokenParseTest, UnknownFieldsIgnored) {
  std::string wire = makeSasToken(kModuleSr, kKey, kExpiry);
  wire.append("&foo=bar");
  EXPECT_TRUE(parseAndVerify(wire, moduleEntry(), before()).isOk());
}

TEST(SasTokenParseTest, ToStringOmitsSignature) {
  auto token = parseSasToken(makeSasToken(kModuleSr, kKey, kExpiry));
  ASSERT_TRUE(token.isOk());
  const std::string text = token->toString();
  EXPECT_NE(text.find("se=1800000000"), std::string::npos);
  EXPECT_EQ(text.find("iYGnn"), std::string::npos);
}

struct ParseErrorCase {
  std::string password;
  std::string message;
};

TEST(SasTokenParseTest, EveryParseError) {
  const std::string sig = "sig=c2VjcmV0c2lnbmF0dXJl";  // must never appear in a message
  const std::string sr = "sr=myhub%2Fdevices%2Fdev1";
  const std::string p = "SharedAccessSignature ";
  const ParseErrorCase cases[] = {
      {"", "invalid SAS token: missing \"SharedAccessSignature \" prefix"},
      {std::string("sharedaccesssignature ") + sr, "invalid SAS token: missing \"SharedAccessSignature \" prefix"},
      {std::string("SharedAccessSignature") + sr, "invalid SAS token: missing \"SharedAccessSignature \" prefix"},
      {std::string("Bearer ") + sr, "invalid SAS token: missing \"SharedAccessSignature \" prefix"},
      {p + sr + "&" + sig, "invalid SAS token: missing field se"},
      {p + sr + "&se=1", "invalid SAS token: missing field sig"},
      {p + sig + "&se=1", "invalid SAS token: missing field sr"},
      {p, "invalid SAS token: a field has no '='"},
      {p + sr + "&" + sig + "&se=1&junk", "invalid SAS token: a field has no '='"},
      {p + sr + "&" + sr + "&" + sig + "&se=1", "invalid SAS token: duplicate field sr"},
      {p + sr + "&" + sig + "&" + sig + "&se=1", "invalid SAS token: duplicate field sig"},
      {p + sr + "&" + sig + "&se=1&se=2", "invalid SAS token: duplicate field se"},
      {p + sr + "&" + sig + "&se=1&skn=a&skn=b", "invalid SAS token: duplicate field skn"},
      {p + "sr=&" + sig + "&se=1", "invalid SAS token: sr is empty"},
      {p + sr + "&sig=&se=1", "invalid SAS token: sig is empty"},
      {p + sr + "&" + sig + "&se=", "invalid SAS token: se is empty"},
      {p + sr + "&" + sig + "&se=-1", "invalid SAS token: se is not a decimal number"},
      {p + sr + "&" + sig + "&se=+1", "invalid SAS token: se is not a decimal number"},
      {p + sr + "&" + sig + "&se=1.5", "invalid SAS token: se is not a decimal number"},
      {p + sr + "&" + sig + "&se=0x10", "invalid SAS token: se is not a decimal number"},
      {p + sr + "&" + sig + "&se= 1", "invalid SAS token: se is not a decimal number"},
      {p + sr + "&" + sig + "&se=9223372036854775808", "invalid SAS token: se is out of range"},
      {p + sr + "&" + sig + "&se=99999999999999999999999", "invalid SAS token: se is out of range"},
      {p + "sr=myhub%2&" + sig + "&se=1", "invalid SAS token: sr: bad percent escape at offset 5"},
      {p + "sr=myhub%zz&" + sig + "&se=1", "invalid SAS token: sr: bad percent escape at offset 5"},
      {p + sr + "&sig=c2VjcmV0%G1&se=1", "invalid SAS token: sig: bad percent escape at offset 8"},
      {p + sr + "&sig=c2VjcmV0%&se=1", "invalid SAS token: sig: bad percent escape at offset 8"},
      {p + sr + "&" + sig + "&se=1&skn=%", "invalid SAS token: skn: bad percent escape at offset 0"},
  };
  for (const ParseErrorCase& c : cases) {
    auto token = parseSasToken(c.password);
    ASSERT_FALSE(token.isOk()) << c.password;
    EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument) << c.password;
    EXPECT_EQ(token.status().message(), c.message) << c.password;
    EXPECT_EQ(token.status().message().find("c2VjcmV0"), std::string_view::npos);
  }
  // INT64_MAX itself is in range.
  auto max = parseSasToken(p + sr + "&" + sig + "&se=9223372036854775807");
  ASSERT_TRUE(max.isOk());
  EXPECT_EQ(max->expiry_unix, INT64_MAX);
}

TEST(SasTokenPercentTest, DecodesEitherCaseAndEncodesUppercase) {
  EXPECT_EQ(*percentDecodeStrict("a%2fb%2Fc%7e+"), "a/b/c~+");
  EXPECT_EQ(percentDecodeLenient("100%"), "100%");
  EXPECT_EQ(percentDecodeLenient("%zz%41%4"), "%zzA%4");
  EXPECT_EQ(percentEncode("a+b/c=~-._ $"), "a%2Bb%2Fc%3D~-._%20%24");
}

}  // namespace
}  // namespace edgehub::transports::auth
