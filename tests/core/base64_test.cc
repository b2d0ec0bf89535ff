#include "core/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace edgehub::core {
namespace {

// RFC 4648 section 10 test vectors.
TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64Encode(plain), encoded);
    auto decoded = base64Decode(encoded);
    ASSERT_TRUE(decoded.isOk()) << encoded << ": " << decoded.status().toString();
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(Base64Test, AllByteValuesRoundTrip) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (size_t len = 0; len <= bytes.size(); ++len) {
    const std::string in = bytes.substr(bytes.size() - len);
    const std::string enc = base64Encode(in);
    EXPECT_EQ(enc.size() % 4, 0u);
    auto dec = base64Decode(enc);
    ASSERT_TRUE(dec.isOk()) << len;
    EXPECT_EQ(*dec, in);
  }
  EXPECT_EQ(base64Encode("\xfb\xff"), "+/8=");
}

TEST(Base64Test, StrictDecodingRejects) {
  for (const char* bad : {
           "Zg",          // missing padding
           "Zg=",         // short padding
           "Zm9",         // length not a multiple of 4
           "Zg===",       // too much padding
           "====",        // only padding
           "Z===",        // three padding characters
           "Zg==Zg==",    // padding in the middle
           "Z=g=",        // padding inside a group
           "Zm9v\n",      // whitespace
           "Zm 9",        // whitespace
           "Zm9-",        // URL-safe alphabet
           "Zm9_",        // URL-safe alphabet
           "Zh==",        // non-zero unused bits ("f" is Zg==)
           "Zm9=",        // non-zero unused bits ("fo" is Zm8=)
           "Zm\x80v",     // non-ASCII
       }) {
    auto r = base64Decode(bad);
    EXPECT_FALSE(r.isOk()) << bad;
    if (!r.isOk()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find("invalid base64"), std::string_view::npos);
    }
  }
}

TEST(Base64Test, ErrorDoesNotEchoInput) {
  auto r = base64Decode("c2VjcmV0c2VjcmV0!A==");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message().find("c2VjcmV0"), std::string_view::npos);
  EXPECT_NE(r.status().message().find("position 17"), std::string_view::npos);
}

}  // namespace
}  // namespace edgehub::core
