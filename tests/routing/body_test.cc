#include "routing/body.h"

#include <gtest/gtest.h>

#include "tests/routing/test_util.h"

namespace edgehub::routing {
namespace {

using testing::evalCondition;
using testing::TestMessage;

std::vector<uint8_t> utf16le(std::u16string_view s) {
  std::vector<uint8_t> out;
  for (char16_t c : s) {
    out.push_back(static_cast<uint8_t>(c & 0xFF));
    out.push_back(static_cast<uint8_t>(c >> 8));
  }
  return out;
}

std::vector<uint8_t> utf32le(std::u32string_view s) {
  std::vector<uint8_t> out;
  for (char32_t c : s) {
    for (int k = 0; k < 4; ++k) out.push_back(static_cast<uint8_t>((c >> (8 * k)) & 0xFF));
  }
  return out;
}

TestMessage withBody(std::vector<uint8_t> bytes, std::string encoding,
                     std::string type = "application/json") {
  TestMessage m;
  m.sys("contentType", std::move(type)).sys("contentEncoding", std::move(encoding)).bodyBytes(std::move(bytes));
  return m;
}

TEST(BodyTest, Utf16AndUtf32LittleEndian) {
  auto m16 = withBody(utf16le(u"{\"t\":21.5,\"n\":\"S\u00ebn\U0001F600\"}"), "UTF-16");
  EXPECT_EQ(evalCondition("$body.t > 20 AND $body.n = 'Sën😀'", m16), "true");
  auto m32 = withBody(utf32le(U"{\"t\":21.5,\"n\":\"S\u00ebn\U0001F600\"}"), "utf-32");
  EXPECT_EQ(evalCondition("$body.t > 20 AND length($body.n) = 5", m32), "true");
}

TEST(BodyTest, StrictDecodingFailuresMakeTheBodyUndefined) {
  std::vector<uint8_t> odd = utf16le(u"{\"t\":1}");
  odd.push_back('x');
  auto m1 = withBody(odd, "utf-16");
  EXPECT_EQ(evalCondition("is_defined($body.t)", m1), "false");
  auto lone = utf16le(u"{\"t\":\"x\"}");
  lone.insert(lone.begin() + 12, {0x00, 0xD8});  // an unpaired high surrogate inside the string
  auto m2 = withBody(lone, "utf-16");
  EXPECT_EQ(evalCondition("is_defined($body.t)", m2), "false");
  auto m3 = withBody(utf32le(U"{\"t\":1}"), "utf-32");
  EXPECT_EQ(evalCondition("$body.t = 1", m3), "true");
  std::vector<uint8_t> bad32 = utf32le(U"{\"t\":1}");
  bad32[1] = 0x00;
  bad32[2] = 0x11;  // > U+10FFFF
  auto m4 = withBody(bad32, "utf-32");
  EXPECT_EQ(evalCondition("is_defined($body.t)", m4), "false");
  auto bom = withBody(utf16le(u"\uFEFF{\"t\":1}"), "utf-16");
  EXPECT_EQ(evalCondition("is_defined($body.t)", bom), "false");
  std::string invalid = "{\"t\":\"\xff\"}";
  auto m5 = withBody(std::vector<uint8_t>(invalid.begin(), invalid.end()), "utf-8");
  EXPECT_EQ(evalCondition("is_defined($body.t)", m5), "false");
}

TEST(BodyTest, Preconditions) {
  const std::string json = "{\"t\":1}";
  const std::vector<uint8_t> bytes(json.begin(), json.end());
  for (const char* type : {"application/json; charset=utf-8", " application/json", "text/json"}) {
    auto m = withBody(bytes, "utf-8", type);
    EXPECT_EQ(evalCondition("is_defined($body.t)", m), "false") << type;
  }
  for (const char* enc : {"utf8", "utf-16le", "ascii", ""}) {
    auto m = withBody(bytes, enc);
    EXPECT_EQ(evalCondition("is_defined($body.t)", m), "false") << enc;
  }
  auto ok = withBody(bytes, "UTF-8", "Application/JSON");
  EXPECT_EQ(evalCondition("$body.t = 1", ok), "true");
  TestMessage no_type;
  no_type.sys("contentEncoding", "utf-8").body(json);
  EXPECT_EQ(evalCondition("is_defined($body.t)", no_type), "false");
}

TEST(BodyTest, StrictJsonAndTopLevelObject) {
  for (const char* body : {"[1]", "42", "", "{\"t\":1} x", "{\"t\":1,}", "{'t':1}", "{t:1}",
                           "{\"t\":NaN}", "{\"t\":\"\\ud800\"}", "{\"t\":01}"}) {
    TestMessage m;
    m.json(body);
    EXPECT_EQ(evalCondition("is_defined($body.t)", m), "false") << body;
  }
}

TEST(BodyTest, NumbersOutsideSimdjsonRange) {
  TestMessage big;
  big.json("{\"n\":12345678901234567890123,\"s\":\"x\",\"m\":-1e400,\"k\":[1e400]}");
  EXPECT_EQ(evalCondition("$body.n > 1e22 AND $body.s = 'x'", big), "true");
  EXPECT_EQ(evalCondition("$body.m < 0 AND NOT is_number($body.m) AND is_defined($body.m)", big), "true");
  EXPECT_EQ(evalCondition("$body.k[0] = 1/0", big), "true");
  TestMessage bad;
  bad.json("{\"n\":1e400,\"x\":-}");
  EXPECT_EQ(evalCondition("is_defined($body.n)", bad), "false");
}

TEST(BodyTest, DuplicatesLastWinsAtEveryLevel) {
  TestMessage m;
  m.json("{\"a\":1,\"o\":{\"b\":1,\"b\":2},\"a\":2}");
  EXPECT_EQ(evalCondition("$body.a = 2 AND $body.o.b = 2", m), "true");
}

TEST(BodyTest, ShadowingByApplicationProperty) {
  TestMessage m;
  m.prop("$body.x", "100").json("{\"x\":50,\"a\":[7]}");
  EXPECT_EQ(evalCondition("$body.x = '100'", m), "true");
  EXPECT_EQ(evalCondition("{$body.x} = 50", m), "true");
  m.prop("$body.a[0]", "shadow");
  EXPECT_EQ(evalCondition("$body.a[0] = 7", m), "true");  // no shadowing with brackets
}

TEST(BodyTest, KindsAndMissing) {
  TestMessage m;
  m.json("{\"a\":1,\"s\":\"x\",\"n\":null,\"o\":{},\"l\":[1]}");
  EXPECT_EQ(evalCondition("$body.zz = null AND $body.n = null", m), "true");
  EXPECT_EQ(evalCondition("$body.o = $body.o", m), "undefined");
  EXPECT_EQ(evalCondition("is_object($body.o) AND is_array($body.l) AND is_primitive($body.n)", m), "true");
  EXPECT_EQ(evalCondition("is_defined($body.o ?? 1) AND is_object($body.o ?? 1)", m), "true");
  EXPECT_EQ(evalCondition("$body.l[0] = 1 AND $body.l[1] = null", m), "true");
  EXPECT_EQ(evalCondition("$body.s[0] = null AND $body.a.b = null", m), "true");
}

}  // namespace
}  // namespace edgehub::routing
