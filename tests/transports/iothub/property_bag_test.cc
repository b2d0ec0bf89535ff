#include "transports/iothub/property_bag.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgehub::transports::iothub {
namespace {

using Pair = std::pair<std::string, std::optional<std::string>>;

core::Result<std::vector<Pair>> parseAll(PropertyBagParser& parser, std::string_view bag) {
  std::vector<Pair> out;
  core::Status s = parser.parse(bag, [&out](std::string_view k, std::optional<std::string_view> v) {
    out.emplace_back(std::string(k), v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
  });
  if (!s.isOk()) return s;
  return out;
}

std::vector<Pair> mustParse(std::string_view bag) {
  PropertyBagParser parser;
  auto r = parseAll(parser, bag);
  EXPECT_TRUE(r.isOk()) << bag << ": " << r.status().toString();
  return r.isOk() ? r.value() : std::vector<Pair>{};
}

TEST(PropertyBagTest, EmptyBagAndEmptyPairs) {
  EXPECT_TRUE(mustParse("").empty());
  EXPECT_TRUE(mustParse("&").empty());
  EXPECT_TRUE(mustParse("&&&").empty());
  EXPECT_EQ(mustParse("&a=1&&b=2&"), (std::vector<Pair>{{"a", "1"}, {"b", "2"}}));
}

TEST(PropertyBagTest, DuplicatesKeptInOrder) {
  EXPECT_EQ(mustParse("k=1&j=x&k=2&k"),
            (std::vector<Pair>{{"k", "1"}, {"j", "x"}, {"k", "2"}, {"k", std::nullopt}}));
}

TEST(PropertyBagTest, NullValuedAndEmptyValued) {
  EXPECT_EQ(mustParse("flag&e=&x"),
            (std::vector<Pair>{{"flag", std::nullopt}, {"e", ""}, {"x", std::nullopt}}));
}

TEST(PropertyBagTest, DecodesEscapesBothCasesAndKeepsPlus) {
  EXPECT_EQ(mustParse("%24.ct=application%2Fjson&%24.ce=utf%2d8&a+b=c+d&sp=x%20y&eq=a%3Db"),
            (std::vector<Pair>{{"$.ct", "application/json"},
                               {"$.ce", "utf-8"},
                               {"a+b", "c+d"},
                               {"sp", "x y"},
                               {"eq", "a=b"}}));
  EXPECT_EQ(mustParse("$.mid=raw"), (std::vector<Pair>{{"$.mid", "raw"}}));
}

TEST(PropertyBagTest, ErrorsNameTheKey) {
  PropertyBagParser parser;
  auto bad_value = parseAll(parser, "ok=1&temp=12%G5");
  ASSERT_FALSE(bad_value.isOk());
  EXPECT_EQ(bad_value.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_value.status().message(),
            "invalid property bag: malformed percent escape in value of key 'temp'");
  auto bad_key = parseAll(parser, "bad%2=1");
  ASSERT_FALSE(bad_key.isOk());
  EXPECT_EQ(bad_key.status().message(), "invalid property bag: malformed percent escape in key 'bad%2'");
  auto trailing = parseAll(parser, "k=v%");
  ASSERT_FALSE(trailing.isOk());
  EXPECT_NE(trailing.status().message().find("'k'"), std::string_view::npos);
  auto second_eq = parseAll(parser, "a=b=c");
  ASSERT_FALSE(second_eq.isOk());
  EXPECT_EQ(second_eq.status().message(), "invalid property bag: unescaped '=' in value of key 'a'");
  EXPECT_FALSE(parseAll(parser, "=v").isOk());
  EXPECT_FALSE(parseAll(parser, "a=1&=").isOk());
  // The parser is reusable after an error.
  auto ok = parseAll(parser, "%41=%42");
  ASSERT_TRUE(ok.isOk());
  EXPECT_EQ(ok.value(), (std::vector<Pair>{{"A", "B"}}));
}

TEST(PropertyBagTest, SystemKeyMapping) {
  using core::SystemField;
  const std::pair<std::string_view, SystemField> kExpected[] = {
      {"$.mid", SystemField::kMessageId},       {"$.cid", SystemField::kCorrelationId},
      {"$.ct", SystemField::kContentType},      {"$.ce", SystemField::kContentEncoding},
      {"$.on", SystemField::kOutputName},       {"$.uid", SystemField::kUserId},
      {"$.to", SystemField::kTo},               {"$.exp", SystemField::kExpiryTimeUtc},
      {"$.schema", SystemField::kMessageSchema}, {"$.ctime", SystemField::kCreationTime},
      {"$.ifid", SystemField::kInterfaceId},    {"$.sub", SystemField::kComponentName},
      {"iothub-operation", SystemField::kOperation},
  };
  for (const auto& [key, field] : kExpected) {
    WireKey wk = classifyWireKey(key);
    EXPECT_EQ(wk.kind, WireKeyKind::kSystemField) << key;
    EXPECT_EQ(wk.field, field) << key;
  }
  EXPECT_EQ(classifyWireKey("ack").kind, WireKeyKind::kSystemExtra);
  for (std::string_view k : {"$.cdid", "$.cmid", "$.unknown", "$.", "$.MID"}) {
    EXPECT_EQ(classifyWireKey(k).kind, WireKeyKind::kDropped) << k;
  }
  for (std::string_view k : {"mid", "$mid", "alert", "", "%24.mid"}) {
    EXPECT_EQ(classifyWireKey(k).kind, WireKeyKind::kApplication) << k;
  }
}

}  // namespace
}  // namespace edgehub::transports::iothub
