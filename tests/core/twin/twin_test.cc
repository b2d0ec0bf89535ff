#include "core/twin/twin.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace edgehub::core::twin {
namespace {

// Unordered json: comparisons in these tests ignore member order unless they compare text.
using nlohmann::json;

constexpr int64_t kT1 = 1'700'000'000'123;  // 2023-11-14T22:13:20.123Z
constexpr int64_t kT2 = 1'700'000'060'456;  // 2023-11-14T22:14:20.456Z

json parsed(const std::string& text) { return json::parse(text); }

json response(const Twin& twin) { return parsed(twin.getResponse()); }

// {"a":{"a":...{"a":1}}} with `depth` objects.
std::string nestedObjects(int depth) {
  std::string out;
  for (int i = 1; i < depth; ++i) out += "{\"a\":";
  out += "{\"a\":1}";
  for (int i = 1; i < depth; ++i) out += "}";
  return out;
}

// A compact object of exactly `size` bytes made of string members ("k0":"xxx..."), each value
// within the 4 KiB string limit.
std::string objectOfSize(size_t size, const std::string& key_prefix = "k") {
  std::string out = "{";
  int n = 0;
  auto member = [&](size_t value_len) {
    std::string m = n == 0 ? "" : ",";
    m += "\"";
    m += key_prefix;
    m += std::to_string(n);
    m += "\":\"";
    m.append(value_len, 'x');
    m += "\"";
    ++n;
    return m;
  };
  for (;;) {
    const std::string probe = member(0);
    --n;
    const size_t fixed = out.size() + probe.size() + 1;  // +1 for the closing brace
    if (size < fixed) return "";                           // cannot hit exactly; caller asserts
    const size_t room = size - fixed;
    if (room <= kMaxStringValueBytes) {
      out += member(room);
      break;
    }
    out += member(4000);
  }
  return out + "}";
}

void expectRefused(Twin& twin, const std::string& patch, const std::string& why) {
  const std::string before = twin.serialize();
  const int64_t version = twin.reportedVersion();
  auto r = twin.patchReported(patch, kT2);
  ASSERT_FALSE(r.isOk()) << why << ": accepted " << patch.substr(0, 200);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << why << ": " << r.status().toString();
  EXPECT_EQ(twin.serialize(), before) << why;
  EXPECT_EQ(twin.reportedVersion(), version) << why;
}

void expectAccepted(Twin& twin, const std::string& patch, const std::string& why) {
  const int64_t version = twin.reportedVersion();
  auto r = twin.patchReported(patch, kT1);
  ASSERT_TRUE(r.isOk()) << why << ": " << r.status().toString();
  EXPECT_EQ(*r, version + 1) << why;
}

TEST(TwinTest, FreshTwinHasEmptySectionsAtVersionOne) {
  Twin twin;
  EXPECT_EQ(twin.desiredVersion(), 1);
  EXPECT_EQ(twin.reportedVersion(), 1);
  EXPECT_EQ(twin.desiredJson(), "{}");
  EXPECT_EQ(twin.reportedJson(), "{}");
  EXPECT_EQ(twin.getResponse(),
            R"({"desired":{"$metadata":{"$lastUpdated":"1970-01-01T00:00:00.000Z",)"
            R"("$lastUpdatedVersion":1},"$version":1},)"
            R"("reported":{"$metadata":{"$lastUpdated":"1970-01-01T00:00:00.000Z"},"$version":1}})");
  EXPECT_EQ(twin.desiredPatchForCatchUp(), R"({"$version":1})");

  Twin created(kT1);
  EXPECT_EQ(response(created)["reported"]["$metadata"]["$lastUpdated"], "2023-11-14T22:13:20.123Z");
}

TEST(TwinTest, GetResponseShapeWithVersionsAndMetadata) {
  Twin twin(0);
  ASSERT_TRUE(twin.patchReported(R"({"temp":21.5,"fw":{"version":"1.2","ok":true}})", kT1).isOk());
  ASSERT_TRUE(twin.patchReported(R"({"fw":{"ok":false}})", kT2).isOk());
  auto d = twin.setDesired(R"({"interval":5,"mode":{"fast":true}})", kT1);
  ASSERT_TRUE(d.isOk()) << d.status().toString();

  const std::string t1 = "2023-11-14T22:13:20.123Z";
  const std::string t2 = "2023-11-14T22:14:20.456Z";
  // Exact text: properties first, then $metadata, then $version, in member order.
  EXPECT_EQ(twin.getResponse(),
            R"({"desired":{"interval":5,"mode":{"fast":true},"$metadata":{"$lastUpdated":")" + t1 +
                R"(","$lastUpdatedVersion":2,"interval":{"$lastUpdated":")" + t1 +
                R"(","$lastUpdatedVersion":2},"mode":{"$lastUpdated":")" + t1 +
                R"(","$lastUpdatedVersion":2,"fast":{"$lastUpdated":")" + t1 +
                R"(","$lastUpdatedVersion":2}}},"$version":2},)" +
                R"("reported":{"temp":21.5,"fw":{"version":"1.2","ok":false},)" +
                R"("$metadata":{"$lastUpdated":")" + t2 + R"(","temp":{"$lastUpdated":")" + t1 +
                R"("},"fw":{"$lastUpdated":")" + t2 + R"(","version":{"$lastUpdated":")" + t1 +
                R"("},"ok":{"$lastUpdated":")" + t2 + R"("}}},"$version":3}})");
}

TEST(TwinTest, TimestampsAreIsoUtcWithMilliseconds) {
  const std::pair<int64_t, const char*> cases[] = {
      {0, "1970-01-01T00:00:00.000Z"},
      {951'782'400'000, "2000-02-29T00:00:00.000Z"},
      {4'102'444'799'999, "2099-12-31T23:59:59.999Z"},
      {kT1, "2023-11-14T22:13:20.123Z"},
      {-5, "1970-01-01T00:00:00.000Z"},  // before the epoch: clamped
  };
  for (const auto& [ms, text] : cases) {
    Twin twin;
    ASSERT_TRUE(twin.patchReported(R"({"a":1})", ms).isOk());
    const json r = response(twin)["reported"]["$metadata"];
    EXPECT_EQ(r["$lastUpdated"], text) << ms;
    EXPECT_EQ(r["a"]["$lastUpdated"], text) << ms;
  }
}

TEST(TwinTest, SerializeParseRoundTrip) {
  Twin twin(kT1);
  ASSERT_TRUE(twin.patchReported(R"({"z":1,"a":{"b":[1,null,{"c":"d"}],"e":-2.5}})", kT1).isOk());
  ASSERT_TRUE(twin.patchReported(R"({"a":{"e":null},"u":"\u00e9\u4e2d"})", kT2).isOk());
  ASSERT_TRUE(twin.setDesired(R"({"y":{"x":1},"b":false})", kT2).isOk());
  const std::string stored = twin.serialize();

  auto back = Twin::parse(stored);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->serialize(), stored);
  EXPECT_EQ(back->getResponse(), twin.getResponse());
  EXPECT_EQ(back->desiredVersion(), 2);
  EXPECT_EQ(back->reportedVersion(), 3);
  // Member order survives: "z" before "a", "y" before "b".
  EXPECT_EQ(back->reportedJson(), R"({"z":1,"a":{"b":[1,null,{"c":"d"}]},"u":"é中"})");
  EXPECT_EQ(back->desiredJson(), R"({"y":{"x":1},"b":false})");

  // A parsed twin keeps working.
  auto v = back->patchReported(R"({"z":2})", kT2);
  ASSERT_TRUE(v.isOk());
  EXPECT_EQ(*v, 4);

  auto fresh = Twin::parse(Twin().serialize());
  ASSERT_TRUE(fresh.isOk()) << fresh.status().toString();
  EXPECT_EQ(fresh->serialize(), Twin().serialize());
}

TEST(TwinTest, CopiesAreIndependentAndMovesKeepTheDocument) {
  Twin a;
  ASSERT_TRUE(a.patchReported(R"({"x":1})", kT1).isOk());
  Twin b = a;
  ASSERT_TRUE(b.patchReported(R"({"x":2})", kT1).isOk());
  EXPECT_EQ(a.reportedJson(), R"({"x":1})");
  EXPECT_EQ(b.reportedJson(), R"({"x":2})");
  a = b;
  EXPECT_EQ(a.reportedJson(), R"({"x":2})");
  Twin c = std::move(a);
  EXPECT_EQ(c.reportedJson(), R"({"x":2})");
  a = c;  // a moved-from twin may be assigned to
  EXPECT_EQ(a.reportedVersion(), 3);
  Twin d;
  d = std::move(c);
  EXPECT_EQ(d.reportedVersion(), 3);
}

TEST(TwinTest, MergePatchSemantics) {
  Twin twin;
  auto patch = [&](const char* p) {
    auto r = twin.patchReported(p, kT1);
    ASSERT_TRUE(r.isOk()) << p << ": " << r.status().toString();
  };
  patch(R"({"a":1,"b":{"c":1,"d":2}})");  // add
  EXPECT_EQ(twin.reportedJson(), R"({"a":1,"b":{"c":1,"d":2}})");
  patch(R"({"a":"one"})");  // replace keeps the position
  EXPECT_EQ(twin.reportedJson(), R"({"a":"one","b":{"c":1,"d":2}})");
  patch(R"({"b":{"d":3,"e":4}})");  // nested merge
  EXPECT_EQ(twin.reportedJson(), R"({"a":"one","b":{"c":1,"d":3,"e":4}})");
  patch(R"({"b":{"c":null},"a":null})");  // null deletes, nested too
  EXPECT_EQ(twin.reportedJson(), R"({"b":{"d":3,"e":4}})");
  patch(R"({"missing":null,"b":{"nope":null}})");  // deleting a missing member is fine
  EXPECT_EQ(twin.reportedJson(), R"({"b":{"d":3,"e":4}})");
  patch(R"({"b":[1,{"x":null}]})");  // arrays replace, nulls inside them are values
  EXPECT_EQ(twin.reportedJson(), R"({"b":[1,{"x":null}]})");
  patch(R"({"b":{"n":{"m":null,"k":true}}})");  // object over a non-object: MergePatch({}, v)
  EXPECT_EQ(twin.reportedJson(), R"({"b":{"n":{"k":true}}})");
  patch(R"({"b":7})");  // scalar over an object
  EXPECT_EQ(twin.reportedJson(), R"({"b":7})");
  patch(R"({"c":{}})");  // an empty object is a value too
  EXPECT_EQ(twin.reportedJson(), R"({"b":7,"c":{}})");
  patch(R"({})");
  EXPECT_EQ(twin.reportedJson(), R"({"b":7,"c":{}})");
}

TEST(TwinTest, MetadataTracksTouchedPropertiesOnly) {
  Twin twin;
  ASSERT_TRUE(twin.patchReported(R"({"a":{"x":1,"y":2},"b":1})", kT1).isOk());
  ASSERT_TRUE(twin.patchReported(R"({"a":{"y":3}})", kT2).isOk());
  json meta = response(twin)["reported"]["$metadata"];
  EXPECT_EQ(meta["$lastUpdated"], "2023-11-14T22:14:20.456Z");
  EXPECT_EQ(meta["a"]["$lastUpdated"], "2023-11-14T22:14:20.456Z");
  EXPECT_EQ(meta["a"]["x"]["$lastUpdated"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(meta["a"]["y"]["$lastUpdated"], "2023-11-14T22:14:20.456Z");
  EXPECT_EQ(meta["b"]["$lastUpdated"], "2023-11-14T22:13:20.123Z");
  EXPECT_FALSE(meta.contains("$lastUpdatedVersion"));  // only the desired side has it
  // Replacing an object by a scalar drops the children's metadata.
  ASSERT_TRUE(twin.patchReported(R"({"a":5,"b":null})", kT2).isOk());
  meta = response(twin)["reported"]["$metadata"];
  EXPECT_EQ(meta["a"], json::parse(R"({"$lastUpdated":"2023-11-14T22:14:20.456Z"})"));
  EXPECT_FALSE(meta.contains("b"));
}

TEST(TwinTest, ReportedVersionIncrementsByOnePerPatch) {
  Twin twin;
  for (int64_t i = 2; i < 12; ++i) {
    auto r = twin.patchReported(R"({"n":)" + std::to_string(i) + "}", kT1);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(*r, i);
    EXPECT_EQ(twin.reportedVersion(), i);
  }
  EXPECT_EQ(twin.desiredVersion(), 1);
  EXPECT_EQ(response(twin)["reported"]["$version"], 11);
}

TEST(TwinTest, RefusedPatchesLeaveTheTwinUnchanged) {
  Twin twin;
  ASSERT_TRUE(twin.patchReported(R"({"keep":{"me":1}})", kT1).isOk());
  const std::string long_name(kMaxPropertyNameBytes + 1, 'n');
  const std::string long_string(kMaxStringValueBytes + 1, 's');
  const std::pair<std::string, const char*> refused[] = {
      {"", "empty text"},
      {"not json", "not JSON"},
      {R"({"a":1)", "truncated"},
      {R"({"a":1}x)", "trailing garbage"},
      {R"({"a":1,})", "trailing comma"},
      {"{'a':1}", "single quotes"},
      {R"({"a":NaN})", "NaN"},
      {"[1,2]", "array"},
      {R"("text")", "string"},
      {"null", "null"},
      {"42", "number"},
      {R"({"":1})", "empty name"},
      {"{\"" + long_name + "\":1}", "name over 1 KiB"},
      {R"({"$x":1})", "name starting with $"},
      {R"({"a$b":1})", "name containing $"},
      {R"({"a.b":1})", "name with a dot"},
      {R"({"a b":1})", "name with a space"},
      {R"({"a\tb":1})", "name with a tab"},
      {R"({"a\u0001":1})", "name with a C0 control"},
      {R"({"a\u007f":1})", "name with DEL"},
      {R"({"a\u0085":1})", "name with a C1 control"},
      {R"({"ok":{"b.c":1}})", "nested bad name"},
      {R"({"ok":[{"$x":1}]})", "bad name inside an array"},
      {R"({"keep":{"me":null,"$x":null}})", "bad name even when deleting"},
      {"{\"a\":\"" + long_string + "\"}", "string over 4 KiB"},
      {"{\"a\":[\"" + long_string + "\"]}", "string over 4 KiB in an array"},
      {R"({"a":4503599627370497})", "integer above 2^52"},
      {R"({"a":-4503599627370497})", "integer below -2^52"},
      {R"({"a":18446744073709551615})", "uint64 max"},
      {R"({"a":{"b":[-9223372036854775808]}})", "int64 min nested"},
      {R"({"$version":5})", "sets $version"},
      {R"({"$metadata":{}})", "sets $metadata"},
      {R"({"a":1,"$version":null})", "deletes $version"},
      {"{\"a\":\"\xff\"}", "invalid UTF-8"},
      {nestedObjects(kMaxTwinDepth + 1), "too deep"},
      {std::string(kMaxInputTextBytes + 1, ' ') + "{}", "text over the input limit"},
      {objectOfSize(kMaxTwinBytes + 1), "patch over 32 KiB"},
  };
  for (const auto& [patch, why] : refused) expectRefused(twin, patch, why);
  EXPECT_EQ(twin.reportedJson(), R"({"keep":{"me":1}})");
  EXPECT_EQ(twin.reportedVersion(), 2);
}

TEST(TwinTest, RefusalMessagesNameTheProblemBriefly) {
  Twin twin;
  auto message = [&](const std::string& patch) {
    auto r = twin.patchReported(patch, kT1);
    return r.isOk() ? std::string("accepted") : std::string(r.status().message());
  };
  EXPECT_EQ(message(R"({"a":{"b.c":1}})"),
            R"(reported patch: property name "b.c" at "a" contains '.')");
  EXPECT_EQ(message(R"({"$version":1})"), R"(reported patch cannot set "$version")");
  EXPECT_EQ(message(R"({"a":[1,4503599627370497]})"),
            R"(reported patch: integer 4503599627370497 at "a[1]" is outside +-2^52)");
  // A huge name is not echoed whole.
  const std::string long_name = message("{\"" + std::string(5000, 'n') + "\":1}");
  EXPECT_NE(long_name.find("longer than 1024 bytes"), std::string::npos) << long_name;
  EXPECT_LT(long_name.size(), 200u);
}

TEST(TwinTest, ValueLimitBoundariesAreAccepted) {
  Twin twin;
  const std::string name(kMaxPropertyNameBytes, 'n');
  expectAccepted(twin, "{\"" + name + "\":1}", "name of exactly 1 KiB");
  expectAccepted(twin, "{\"s\":\"" + std::string(kMaxStringValueBytes, 's') + "\"}",
                 "string of exactly 4 KiB");
  expectAccepted(twin, R"({"max":4503599627370496,"min":-4503599627370496})", "+-2^52");
  expectAccepted(twin, R"({"f":1.5e300,"g":-0.0,"h":true,"i":[],"j":"\u00e9"})", "other values");
  expectAccepted(twin, R"({"name-with_other:chars/é#":1})", "other characters in names");
}

TEST(TwinTest, SizeBoundaryIs32KiB) {
  const std::string exact = objectOfSize(kMaxTwinBytes);
  ASSERT_EQ(exact.size(), kMaxTwinBytes);
  const std::string over = objectOfSize(kMaxTwinBytes + 1);
  ASSERT_EQ(over.size(), kMaxTwinBytes + 1);
  {
    Twin twin;
    expectAccepted(twin, exact, "exactly 32 KiB");
    EXPECT_EQ(twin.reportedJson().size(), kMaxTwinBytes);
    // Replacing within the limit is fine; growing by one byte is not.
    expectAccepted(twin, R"({"k0":"y"})", "shrink");
    expectAccepted(twin, R"({"k0":")" + std::string(4000, 'z') + "\"}", "back to 32 KiB");
    expectRefused(twin, R"({"k0":")" + std::string(4001, 'z') + "\"}", "result 1 byte over");
    expectRefused(twin, R"({"new":1})", "result over by a new member");
    auto parsed_back = Twin::parse(twin.serialize());
    ASSERT_TRUE(parsed_back.isOk()) << parsed_back.status().toString();
  }
  {
    Twin twin;
    expectRefused(twin, over, "patch 1 byte over");
  }
  {
    // Two patches that fit alone but not together.
    Twin twin;
    expectAccepted(twin, objectOfSize(20000, "a"), "first half");
    expectRefused(twin, objectOfSize(20000, "b"), "second half");
  }
  {
    // The limit is on the compact form: whitespace in the text does not count.
    std::string spaced;
    for (char c : exact) {
      spaced += c;
      if (c == ',' || c == ':') spaced += "   ";
    }
    ASSERT_GT(spaced.size(), kMaxTwinBytes);
    ASSERT_LE(spaced.size(), kMaxInputTextBytes);
    Twin twin;
    expectAccepted(twin, spaced, "pretty 32 KiB");
  }
}

TEST(TwinTest, DepthTenIsAcceptedElevenRefused) {
  Twin twin;
  expectAccepted(twin, nestedObjects(kMaxTwinDepth), "objects to depth 10");
  expectRefused(twin, nestedObjects(kMaxTwinDepth + 1), "objects to depth 11");
  // Arrays are levels too: the patch object is 1, then nine arrays reach 10.
  const std::string arrays9 = std::string(9, '[') + "1" + std::string(9, ']');
  expectAccepted(twin, R"({"arr":)" + arrays9 + "}", "arrays to depth 10");
  expectRefused(twin, R"({"arr":[)" + arrays9 + "]}", "arrays to depth 11");
  // A depth-10 twin survives storage (the metadata tree is one level deeper than the section).
  auto back = Twin::parse(twin.serialize());
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->reportedJson(), twin.reportedJson());
  EXPECT_EQ(back->getResponse(), twin.getResponse());
  // Same limit for desired documents.
  EXPECT_TRUE(twin.setDesired(nestedObjects(kMaxTwinDepth), kT1).isOk());
  const std::string before = twin.serialize();
  auto deep = twin.setDesired(nestedObjects(kMaxTwinDepth + 1), kT1);
  ASSERT_FALSE(deep.isOk());
  EXPECT_EQ(deep.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(twin.serialize(), before);
}

TEST(TwinTest, SetDesiredReturnsOnlyTheDifference) {
  Twin twin;
  auto first = twin.setDesired(R"({"a":1,"b":{"c":2,"d":3},"e":[1,2],"f":"x"})", kT1);
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(**first, R"({"a":1,"b":{"c":2,"d":3},"e":[1,2],"f":"x"})");
  EXPECT_EQ(twin.desiredVersion(), 2);

  // Changed (b.c, e), added (g, b.h), removed (f, b.d), nested; "a" is unchanged.
  auto second = twin.setDesired(R"({"a":1,"b":{"c":5,"h":{"i":true}},"e":[1,2,3],"g":null,"j":0})", kT2);
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  ASSERT_TRUE(second->has_value());
  EXPECT_EQ(parsed(**second),
            json::parse(R"({"b":{"c":5,"h":{"i":true},"d":null},"e":[1,2,3],"j":0,"f":null})"));
  EXPECT_EQ(twin.desiredVersion(), 3);
  // "g":null counts as absent.
  EXPECT_EQ(twin.desiredJson(), R"({"a":1,"b":{"c":5,"h":{"i":true}},"e":[1,2,3],"j":0})");

  // Only what changed gets the new time and version.
  const json meta = response(twin)["desired"]["$metadata"];
  EXPECT_EQ(meta["$lastUpdatedVersion"], 3);
  EXPECT_EQ(meta["a"]["$lastUpdated"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(meta["a"]["$lastUpdatedVersion"], 2);
  EXPECT_EQ(meta["b"]["c"]["$lastUpdatedVersion"], 3);
  EXPECT_EQ(meta["b"]["h"]["i"]["$lastUpdated"], "2023-11-14T22:14:20.456Z");
  EXPECT_FALSE(meta["b"].contains("d"));
  EXPECT_EQ(response(twin)["desired"]["$version"], 3);

  // An object replacing a scalar and back.
  auto third = twin.setDesired(R"({"a":{"x":1},"b":{"c":5,"h":{"i":true}},"e":[1,2,3],"j":0})", kT2);
  ASSERT_TRUE(third.isOk());
  ASSERT_TRUE(third->has_value());
  EXPECT_EQ(**third, R"({"a":{"x":1}})");
  auto fourth = twin.setDesired(R"({"a":1,"b":{"c":5,"h":{}},"e":[1,2,3],"j":0})", kT2);
  ASSERT_TRUE(fourth.isOk());
  ASSERT_TRUE(fourth->has_value());
  EXPECT_EQ(parsed(**fourth), json::parse(R"({"a":1,"b":{"h":{"i":null}}})"));
  EXPECT_EQ(twin.desiredVersion(), 5);
}

TEST(TwinTest, SetDesiredEqualDocumentIsNullopt) {
  Twin twin;
  auto empty = twin.setDesired("{}", kT1);  // a fresh twin's desired section is already {}
  ASSERT_TRUE(empty.isOk());
  EXPECT_FALSE(empty->has_value());
  EXPECT_EQ(twin.desiredVersion(), 1);

  ASSERT_TRUE(twin.setDesired(R"({"a":1,"b":{"c":[1,{"d":2}]},"f":1.0})", kT1).isOk());
  const std::string before = twin.serialize();
  for (const char* same : {
           R"({"a":1,"b":{"c":[1,{"d":2}]},"f":1.0})",
           R"({ "b" : { "c" : [1, {"d": 2}] }, "f": 1.0, "a": 1 })",  // order and spacing
           R"({"a":1,"b":{"c":[1,{"d":2}],"x":null},"f":1.0,"y":null})",  // nulls are absence
       }) {
    auto r = twin.setDesired(same, kT2);
    ASSERT_TRUE(r.isOk()) << same << ": " << r.status().toString();
    EXPECT_FALSE(r->has_value()) << same << " gave " << **r;
    EXPECT_EQ(twin.serialize(), before) << same;
  }
  // 1.0 and 1 are different texts to a module.
  auto changed = twin.setDesired(R"({"a":1,"b":{"c":[1,{"d":2}]},"f":1})", kT2);
  ASSERT_TRUE(changed.isOk());
  ASSERT_TRUE(changed->has_value());
  EXPECT_EQ(**changed, R"({"f":1})");
}

TEST(TwinTest, SetDesiredRefusalsLeaveTheTwinUnchanged) {
  Twin twin;
  ASSERT_TRUE(twin.setDesired(R"({"a":1})", kT1).isOk());
  const std::string before = twin.serialize();
  for (const std::string& bad : std::vector<std::string>{
           "", "[]", "\"x\"", "{", R"({"$version":2,"a":1})", R"({"$metadata":{}})",
           R"({"a.b":1})", R"({"a":{"$c":1}})", R"({"n":9007199254740992})",
           "{\"s\":\"" + std::string(kMaxStringValueBytes + 1, 's') + "\"}",
           objectOfSize(kMaxTwinBytes + 1)}) {
    auto r = twin.setDesired(bad, kT2);
    ASSERT_FALSE(r.isOk()) << bad.substr(0, 100);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(twin.serialize(), before) << bad.substr(0, 100);
  }
  EXPECT_TRUE(twin.setDesired(objectOfSize(kMaxTwinBytes), kT2).isOk());
}

TEST(TwinTest, DesiredPatchForCatchUp) {
  Twin twin;
  ASSERT_TRUE(twin.setDesired(R"({"z":{"y":1},"a":[true]})", kT1).isOk());
  ASSERT_TRUE(twin.setDesired(R"({"z":{"y":2},"a":[true]})", kT1).isOk());
  EXPECT_EQ(twin.desiredPatchForCatchUp(), R"({"z":{"y":2},"a":[true],"$version":3})");
  // Reported patches do not touch the desired side.
  ASSERT_TRUE(twin.patchReported(R"({"r":1})", kT1).isOk());
  EXPECT_EQ(twin.desiredVersion(), 3);
  EXPECT_EQ(twin.desiredPatchForCatchUp(), R"({"z":{"y":2},"a":[true],"$version":3})");
}

// ---- cloud sync ----

TEST(TwinCloudSyncTest, ReportedPatchForCloudIsTheDifferenceFromTheAcknowledgedBaseline) {
  Twin twin(kT1);
  EXPECT_FALSE(twin.reportedPatchForCloud().has_value());  // nothing reported, nothing to send
  ASSERT_TRUE(twin.patchReported(R"({"x":1,"y":1})", kT1).isOk());
  ASSERT_TRUE(twin.patchReported(R"({"y":2})", kT1).isOk());
  ASSERT_TRUE(twin.patchReported(R"({"x":null,"z":{"w":1}})", kT1).isOk());
  // Three patches, one difference; x came and went without the cloud ever hearing of it.
  ASSERT_TRUE(twin.reportedPatchForCloud().has_value());
  EXPECT_EQ(parsed(*twin.reportedPatchForCloud()), parsed(R"({"y":2,"z":{"w":1}})"));
  // The cloud acknowledged that state: nothing left.
  ASSERT_TRUE(twin.setCloudReported(twin.reportedJson()).isOk());
  EXPECT_FALSE(twin.reportedPatchForCloud().has_value());
  // Deleting what the cloud has sends null; a nested change sends only the nested member.
  ASSERT_TRUE(twin.patchReported(R"({"y":null,"z":{"v":2}})", kT2).isOk());
  EXPECT_EQ(parsed(*twin.reportedPatchForCloud()), parsed(R"({"y":null,"z":{"v":2}})"));
  // A baseline taken when an older patch was sent leaves the newer change pending.
  const std::string basis = twin.reportedJson();
  ASSERT_TRUE(twin.patchReported(R"({"q":true})", kT2).isOk());
  ASSERT_TRUE(twin.setCloudReported(basis).isOk());
  EXPECT_EQ(parsed(*twin.reportedPatchForCloud()), parsed(R"({"q":true})"));
  EXPECT_FALSE(twin.setCloudReported("[1]").isOk());
}

TEST(TwinCloudSyncTest, SyncStateSurvivesSerializeAndOldTextsHaveNone) {
  Twin twin(kT1);
  const std::string before_sync = twin.serialize();
  EXPECT_EQ(before_sync.find("\"cloud\""), std::string::npos);  // the stored form is unchanged until a sync
  ASSERT_TRUE(twin.patchReported(R"({"a":1})", kT1).isOk());
  ASSERT_TRUE(twin.setCloudReported(R"({"a":1})").isOk());
  ASSERT_TRUE(twin.setDesiredFromCloud(R"({"m":"x","$version":5})", kT1).isOk());
  auto back = Twin::parse(twin.serialize());
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back.value().cloudReportedJson(), R"({"a":1})");
  EXPECT_TRUE(back.value().desiredFromCloud());
  EXPECT_EQ(back.value().desiredVersion(), 5);
  auto old = Twin::parse(before_sync);
  ASSERT_TRUE(old.isOk());
  EXPECT_FALSE(old.value().desiredFromCloud());
  EXPECT_EQ(old.value().cloudReportedJson(), "{}");
  // A damaged sync state is damage, like any other part of the stored text.
  std::string bad = twin.serialize();
  const size_t at = bad.find("\"desired\":true");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, 14, "\"desired\":\"yes\"");
  auto damaged = Twin::parse(bad);
  ASSERT_FALSE(damaged.isOk());
  EXPECT_EQ(damaged.status().code(), StatusCode::kCorruption);
}

TEST(TwinCloudSyncTest, CloudDesiredSectionTakesTheCloudsVersionAndReturnsTheDifference) {
  Twin twin(kT1);
  ASSERT_TRUE(twin.setDesired(R"({"mode":"manifest","keep":1})", kT1).isOk());  // version 2
  EXPECT_FALSE(twin.desiredFromCloud());
  auto section = Twin::desiredOfGetResponse(
      R"({"desired":{"mode":"eco","keep":1,"$version":7,"$metadata":{"$lastUpdated":"2026-01-01T00:00:00Z"}},"reported":{"$version":1}})");
  ASSERT_TRUE(section.isOk()) << section.status().toString();
  auto diff = twin.setDesiredFromCloud(section.value(), kT2);
  ASSERT_TRUE(diff.isOk()) << diff.status().toString();
  ASSERT_TRUE(diff.value().has_value());
  EXPECT_EQ(parsed(*diff.value()), parsed(R"({"mode":"eco","$version":7})"));
  EXPECT_EQ(twin.desiredVersion(), 7);
  EXPECT_TRUE(twin.desiredFromCloud());
  EXPECT_EQ(response(twin)["desired"]["$metadata"]["mode"]["$lastUpdatedVersion"], 7);
  // The same section again: nothing for the module.
  auto same = twin.setDesiredFromCloud(R"({"mode":"eco","keep":1,"$version":7})", kT2);
  ASSERT_TRUE(same.isOk());
  EXPECT_FALSE(same.value().has_value());
  // A new version with the same content still tells the module the version.
  auto bumped = twin.setDesiredFromCloud(R"({"mode":"eco","keep":1,"$version":9})", kT2);
  ASSERT_TRUE(bumped.isOk());
  ASSERT_TRUE(bumped.value().has_value());
  EXPECT_EQ(parsed(*bumped.value()), parsed(R"({"$version":9})"));
  // Refusals change nothing.
  const std::string kept = twin.serialize();
  for (const char* bad : {R"({"mode":"x"})", R"({"mode":"x","$version":"7"})", R"({"$version":0})", "[]",
                          R"({"bad.name":1,"$version":10})"}) {
    EXPECT_FALSE(twin.setDesiredFromCloud(bad, kT2).isOk()) << bad;
    EXPECT_EQ(twin.serialize(), kept) << bad;
  }
  EXPECT_FALSE(Twin::desiredOfGetResponse(R"({"reported":{}})").isOk());
  EXPECT_FALSE(Twin::desiredOfGetResponse("not json").isOk());
}

TEST(TwinCloudSyncTest, CloudDesiredPatchesApplyInVersionOrder) {
  Twin twin(kT1);
  ASSERT_TRUE(twin.setDesired(R"({"a":1,"b":{"c":1}})", kT1).isOk());  // manifest, version 2
  // The first cloud patch applies whatever its version (the section was the manifest's).
  auto first = twin.patchDesiredFromCloud(R"({"b":{"c":null,"d":2},"$version":1})", 1, kT2);
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  ASSERT_TRUE(first.value().has_value());
  EXPECT_EQ(parsed(*first.value()), parsed(R"({"b":{"c":null,"d":2},"$version":1})"));
  EXPECT_EQ(parsed(twin.desiredJson()), parsed(R"({"a":1,"b":{"d":2}})"));
  EXPECT_EQ(twin.desiredVersion(), 1);
  // Without "$version" in the body, the topic's version counts.
  auto second = twin.patchDesiredFromCloud(R"({"a":5})", 3, kT2);
  ASSERT_TRUE(second.isOk());
  ASSERT_TRUE(second.value().has_value());
  EXPECT_EQ(twin.desiredVersion(), 3);
  // A stale patch (a GET answer after a reconnect may have crossed it) is ignored.
  auto stale = twin.patchDesiredFromCloud(R"({"a":0,"$version":2})", 2, kT2);
  ASSERT_TRUE(stale.isOk());
  EXPECT_FALSE(stale.value().has_value());
  EXPECT_EQ(parsed(twin.desiredJson()), parsed(R"({"a":5,"b":{"d":2}})"));
  // Malformed or over the limits: refused, unchanged.
  const std::string kept = twin.serialize();
  for (const char* bad : {"{", R"({"$metadata":{}, "x":1})", R"({"x":1})"}) {
    auto r = twin.patchDesiredFromCloud(bad, 0, kT2);
    EXPECT_FALSE(r.isOk()) << bad;
    EXPECT_EQ(twin.serialize(), kept) << bad;
  }
}

TEST(TwinTest, CorruptStoredTextIsAnError) {
  Twin twin(kT1);
  ASSERT_TRUE(twin.patchReported(R"({"a":{"b":1}})", kT1).isOk());
  const std::string good = twin.serialize();
  ASSERT_TRUE(Twin::parse(good).isOk());

  auto withSection = [](const std::string& section) {
    const std::string ok = R"({"version":1,"properties":{},"metadata":{"$lastUpdated":0}})";
    return R"({"schema":1,"desired":)" + ok + R"(,"reported":)" + section + "}";
  };
  const std::vector<std::pair<std::string, const char*>> bad = {
      {"", "empty"},
      {"garbage", "not JSON"},
      {"[]", "array"},
      {"{}", "no schema"},
      {"\"" + good + "\"", "a string"},
      {R"({"schema":2,"desired":{},"reported":{}})", "unknown schema"},
      {R"({"schema":"1"})", "schema as text"},
      {R"({"schema":1,"desired":{"version":1,"properties":{},"metadata":{"$lastUpdated":0}}})",
       "no reported"},
      {withSection(R"({"version":0,"properties":{},"metadata":{"$lastUpdated":0}})"), "version 0"},
      {withSection(R"({"version":-3,"properties":{},"metadata":{"$lastUpdated":0}})"), "negative"},
      {withSection(R"({"version":"1","properties":{},"metadata":{"$lastUpdated":0}})"), "text"},
      {withSection(R"({"version":1.5,"properties":{},"metadata":{"$lastUpdated":0}})"), "float"},
      {withSection(R"({"version":18446744073709551615,"properties":{},"metadata":{"$lastUpdated":0}})"),
       "huge version"},
      {withSection(R"({"version":1,"properties":[],"metadata":{"$lastUpdated":0}})"), "array props"},
      {withSection(R"({"version":1,"metadata":{"$lastUpdated":0}})"), "no properties"},
      {withSection(R"({"version":1,"properties":{"$version":1},"metadata":{"$lastUpdated":0}})"),
       "reserved member"},
      {withSection(R"({"version":1,"properties":{"a.b":1},"metadata":{"$lastUpdated":0}})"),
       "bad name"},
      {withSection(R"({"version":1,"properties":{"a":null},"metadata":{"$lastUpdated":0}})"),
       "null member"},
      {withSection(R"({"version":1,"properties":{}})"), "no metadata"},
      {withSection(R"({"version":1,"properties":{},"metadata":{}})"), "no $lastUpdated"},
      {withSection(R"({"version":1,"properties":{},"metadata":{"$lastUpdated":"x"}})"),
       "text $lastUpdated"},
      {withSection(R"({"version":1,"properties":{},"metadata":{"$lastUpdated":0,"a":1}})"),
       "metadata child not an object"},
      {withSection(R"({"version":1,"properties":{},"metadata":[]})"), "metadata array"},
      {withSection(R"({"version":1,"properties":)" + nestedObjects(kMaxTwinDepth + 1) +
                   R"(,"metadata":{"$lastUpdated":0}})"),
       "section too deep"},
      {std::string(100000, '[') + std::string(100000, ']'), "very deep"},
      {std::string(kMaxStoredBytes + 1, ' '), "too large"},
      {"{\"schema\":1,\xff}", "invalid UTF-8"},
  };
  for (const auto& [text, why] : bad) {
    auto r = Twin::parse(text);
    ASSERT_FALSE(r.isOk()) << why;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << why << ": " << r.status().toString();
  }
  // Every truncation and every single-byte overwrite of a good text: an error or a twin, never a
  // crash; a truncation is always an error.
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_FALSE(Twin::parse(good.substr(0, len)).isOk()) << len;
  }
  for (size_t i = 0; i < good.size(); ++i) {
    for (char c : {'x', '0', '"', '{', '}', '[', ':', ',', '\0'}) {
      std::string damaged = good;
      damaged[i] = c;
      auto r = Twin::parse(damaged);
      if (r.isOk()) {
        EXPECT_TRUE(Twin::parse(r->serialize()).isOk());
      } else {
        EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
      }
    }
  }
}

// Random JSON-ish values, then random byte damage: every call must return a value or a Status,
// and a refusal must leave the twin unchanged.
class TwinFuzz {
 public:
  explicit TwinFuzz(uint32_t seed) : rng_(seed) {}

  std::string value(int depth) {
    switch (pick(depth > 12 ? 5 : 8)) {
      case 0: return "null";
      case 1: return pick(2) ? "true" : "false";
      case 2: {  // sometimes beyond +-2^52 (about 4.5e15)
        const int64_t n = static_cast<int64_t>(rng_()) * (pick(2) ? 1 : 10'000'000);
        return std::to_string(pick(2) ? n : -n);
      }
      case 3: return std::to_string(pick(1000)) + "." + std::to_string(pick(1000)) + "e" +
                     std::to_string(static_cast<int>(pick(40)) - 20);
      case 4: {
        std::string out = "\"";
        out += text(pick(3) == 0 ? 5000 : 12);
        return out + "\"";
      }
      case 5: {
        std::string out = "[";
        const uint32_t n = pick(4);
        for (uint32_t i = 0; i < n; ++i) {
          if (i) out += ",";
          out += value(depth + 1);
        }
        return out + "]";
      }
      default: return object(depth);
    }
  }

  std::string object(int depth) {
    std::string out = "{";
    const uint32_t n = pick(5);
    for (uint32_t i = 0; i < n; ++i) {
      if (i) out += ",";
      out += "\"";
      out += text(pick(8) == 0 ? 1100 : 4);
      out += "\":";
      out += value(depth + 1);
    }
    return out + "}";
  }

  std::string mutate(std::string s) {
    const uint32_t edits = pick(4);
    for (uint32_t e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = pick(static_cast<uint32_t>(s.size()));
      static constexpr char kChars[] = "{}[]\":,.$ \\nul0-9e\x01\xff\xc2\x85";
      switch (pick(5)) {
        case 0: s[at] = kChars[pick(sizeof kChars - 1)]; break;
        case 1: s.insert(at, 1, kChars[pick(sizeof kChars - 1)]); break;
        case 2: s.erase(at, 1); break;
        case 3: s.resize(at); break;
        default: s.insert(at, s.substr(at, pick(64))); break;
      }
    }
    return s;
  }

  uint32_t pick(uint32_t n) { return n == 0 ? 0 : static_cast<uint32_t>(rng_() % n); }

 private:
  // Mostly plain names, sometimes the characters the validator must catch.
  std::string text(uint32_t max_len) {
    static const char* const kPieces[] = {"a", "b", "temp", "x", "$", ".", " ", "\\u0001",
                                          "\\u00e9", "\\\"", "\\n", "\\ud83d\\ude00", "\\u0085"};
    std::string out;
    const uint32_t len = pick(max_len + 1);
    if (len > 64) return std::string(len, 'q');
    for (uint32_t i = 0; i < len; ++i) out += kPieces[pick(pick(4) ? 4 : 13)];
    return out;
  }

  std::mt19937 rng_;
};

TEST(TwinFuzzTest, RandomPatchesAndStoredTexts) {
  TwinFuzz fuzz(20240607);
  Twin twin(kT1);
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string input = fuzz.object(0);
    if (fuzz.pick(2)) input = fuzz.mutate(input);
    const std::string before = twin.serialize();
    const int64_t version = twin.reportedVersion();
    if (fuzz.pick(4) == 0) {
      auto r = twin.setDesired(input, kT1 + i);
      if (!r.isOk()) {
        ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
        ASSERT_EQ(twin.serialize(), before);
      }
    } else {
      auto r = twin.patchReported(input, kT1 + i);
      if (r.isOk()) {
        ++accepted;
        ASSERT_EQ(*r, version + 1);
        ASSERT_LE(twin.reportedJson().size(), kMaxTwinBytes);
      } else {
        ++refused;
        ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
        ASSERT_EQ(twin.serialize(), before) << input;
      }
    }
    // Whatever was accepted is storable and servable.
    const std::string stored = twin.serialize();
    auto back = Twin::parse(stored);
    ASSERT_TRUE(back.isOk()) << back.status().toString();
    ASSERT_EQ(back->serialize(), stored);
    ASSERT_TRUE(json::accept(twin.getResponse()));

    // Damaged stored texts: a twin or kCorruption.
    auto damaged = Twin::parse(fuzz.mutate(stored));
    if (!damaged.isOk()) {
      ASSERT_EQ(damaged.status().code(), StatusCode::kCorruption);
    }
    // Arbitrary texts as stored form.
    auto random = Twin::parse(fuzz.mutate(fuzz.value(0)));
    if (!random.isOk()) {
      ASSERT_EQ(random.status().code(), StatusCode::kCorruption);
    }
    // Keep the twin small enough that patches keep being accepted.
    if (twin.reportedJson().size() > 4 * 1024) twin = Twin(kT1);
  }
  // The generator must exercise both outcomes.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 100);
}

}  // namespace
}  // namespace edgehub::core::twin
