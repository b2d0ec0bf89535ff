// BodyScanner (the one-pass body reader of route tables) against BodyDocument (the DOM path):
// hand-written strictness cases, then a differential check over every conformance body and
// random mutations of them, then the conformance conditions evaluated through a route table.
#include "routing/body_scan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "routing/body.h"
#include "routing/compiler.h"
#include "routing/route_table.h"
#include "routing/tools/message_json.h"
#include "tests/routing/test_util.h"

namespace edgehub::routing {
namespace {

using testing::TestMessage;

std::vector<PathStep> steps(std::string_view path) {
  std::vector<PathStep> s;
  std::string detail;
  EXPECT_TRUE(parseBodyPath(path, true, &s, &detail)) << path << ": " << detail;
  return s;
}

std::string describe(const Value& v) {
  switch (v.kind) {
    case ValueKind::kUndefined: return "undefined";
    case ValueKind::kNull: return "null";
    case ValueKind::kMissing: return "missing";
    case ValueKind::kBool: return v.boolean ? "true" : "false";
    case ValueKind::kNumber: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "num:%.17g%s", v.number, std::signbit(v.number) ? "(-)" : "");
      return buf;
    }
    case ValueKind::kString: return testing::cat("str:", v.text());
    case ValueKind::kNullProp: return "nullprop";
    case ValueKind::kObject: return "object";
    case ValueKind::kArray: return "array";
  }
  return "?";
}

// Compares both readers on one message for the given paths; returns a mismatch description.
std::string compare(const MessageView& view, const std::vector<std::string>& paths) {
  BodyPlan plan;
  std::vector<uint32_t> slots;
  std::vector<BodyPath> body_paths;
  for (const auto& p : paths) {
    BodyPath bp;
    bp.steps = steps(p);
    slots.push_back(plan.add(bp.steps));
    body_paths.push_back(std::move(bp));
  }
  std::vector<Value> dom_values;
  BodyScanner scanner;
  const bool dom_ok = queryBodyForTest(view, body_paths, &dom_values);
  const bool scan_ok = scanner.load(view, plan);
  if (dom_ok != scan_ok) return testing::cat("validity: dom ", dom_ok ? "ok" : "bad", " scan ", scan_ok ? "ok" : "bad");
  if (!dom_ok) return "";
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string a = describe(dom_values[i]);
    const std::string b = describe(scanner.value(slots[i]));
    if (a != b) return testing::cat(paths[i], ": dom ", a, " scan ", b);
  }
  return "";
}

std::string check(const std::string& body, const std::vector<std::string>& paths,
                  std::string encoding = "utf-8") {
  TestMessage m;
  m.sys("contentType", "application/json").sys("contentEncoding", encoding).body(body);
  return compare(m.view(), paths);
}

bool scanOk(const std::string& body) {
  TestMessage m;
  m.json(body);
  BodyPlan plan;
  plan.add(steps("a"));
  BodyScanner s;
  return s.load(m.view(), plan);
}

TEST(BodyScanTest, Strictness) {
  for (const char* bad : {"", " ", "[]", "1", "\"s\"", "null", "{", "}", "{\"a\":1,}", "{,}",
                          "{\"a\"}", "{\"a\":}", "{a:1}", "{'a':1}", "{\"a\":1}x", "{\"a\":1}{}",
                          "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}",
                          "{\"a\":+1}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":tru}",
                          "{\"a\":truex}", "{\"a\":nul}", "{\"a\":[1,]}", "{\"a\":[,1]}",
                          "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}",
                          "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\x01\"}",
                          "{\"a\":\"\xC0\x80\"}", "{\"a\":\"\xED\xA0\x80\"}", "{\"a\":\"\xF4\x90\x80\x80\"}",
                          "{\"a\":\"\xE2\x82\"}", "{\"a\":\"\x80\"}", "\xEF\xBB\xBF{}", "{/*c*/}",
                          "{\"a\":1 \"b\":2}", "{\"a\" 1}", "{\"a\":\"x}", "{\"a\":[}", "{\"a\":{]}"}) {
    EXPECT_FALSE(scanOk(bad)) << bad;
  }
  EXPECT_FALSE(scanOk(std::string("{\"a\":1}\0", 8)));
  EXPECT_FALSE(scanOk(std::string("{\"a\":\"\0\"}", 9)));
  for (const char* good : {"{}", " {} ", "\t{\r\n}\n", "{\"a\":1}", "{\"a\":[]}", "{\"a\":{}}",
                           "{\"a\":\"\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\"}",
                           "{\"a\":-0.0e-0}", "{\"a\":\"\xF0\x9F\x98\x80\xEF\xBF\xBF\"}",
                           "{\"a\":1e400}", "{\"a\":123456789012345678901234567890}"}) {
    EXPECT_TRUE(scanOk(good)) << good;
  }
}

TEST(BodyScanTest, ValuesMatchDom) {
  const std::vector<std::string> paths = {"a", "b", "a.b", "a.b.c", "a[0]", "a[1]", "a[2]", "a[0][1]",
                                          "s", "n", "o", "l", "zz", "x.y"};
  for (const char* body :
       {"{\"a\":1,\"s\":\"x\",\"n\":null,\"o\":{},\"l\":[1]}", "{\"a\":{\"b\":1},\"a\":{\"c\":2}}",
        "{\"a\":{\"b\":{\"c\":3}},\"a\":{\"b\":5}}", "{\"a\":[1,[2,3]],\"a\":[9]}",
        "{\"a\":{\"b\":1},\"a\":2}", "{\"a\":2,\"a\":{\"b\":{\"c\":true}}}", "{\"a\":-0}",
        "{\"a\":-0.0}", "{\"a\":-0e5}", "{\"a\":1e400,\"b\":-1e400}", "{\"a\":1e-400,\"b\":-1e-400}",
        "{\"a\":4.9e-324,\"b\":2.2250738585072014e-308}", "{\"a\":18446744073709551615}",
        "{\"a\":18446744073709551616,\"b\":-9223372036854775809}", "{\"a\":9007199254740993}",
        "{\"a\":0.1,\"b\":123.456e-7}", "{\"a\":1.7976931348623157e308,\"b\":1.7976931348623159e308}",
        "{\"a\":\"\\u00e9\\ud83d\\ude00\",\"b\":\"plain\"}", "{\"a\\u0062\":1,\"ab\":2,\"a\":{\"\\u0062\":3}}",
        "{\"s\":\"\\u0000x\",\"n\":false}", "{\"a\":[[1,2],[3,4]],\"l\":[]}",
        "{\"a\":100000000000000000000000,\"b\":0.000000000000000000000000001}",
        "{\"a\":123456789012345.6,\"b\":1234567890123456.7}"}) {
    EXPECT_EQ(check(body, paths), "") << body;
  }
}

// The plan's name tables (BodyPlan::rebuildNames): names of every length class (under 8, 8, 9 to
// 16, over 16, sharing long prefixes and suffixes), tables small enough for the seed search and
// larger than it, wanted and unwanted members, escaped member names.
TEST(BodyScanTest, ManyNamesMatchDom) {
  std::vector<std::string> names;
  for (int i = 0; i < 150; ++i) {
    const std::string n = std::to_string(i);
    switch (i % 5) {
      case 0: names.push_back(testing::cat("k", n)); break;
      case 1: names.push_back(testing::cat("abcdefg", n).substr(0, 8)); break;
      case 2: names.push_back(testing::cat("temperature_", n)); break;
      case 3: names.push_back(testing::cat("a_very_long_member_name_", n, "_suffix")); break;
      default: names.push_back(testing::cat(n, "_a_very_long_member_name_suffix")); break;
    }
  }
  for (const size_t count : {3u, 20u, 63u, 64u, 65u, 150u}) {
    std::string body = "{";
    std::vector<std::string> paths;
    for (size_t i = 0; i < count; ++i) {
      if (i > 0) body += ",";
      // Every third member name escaped (\u0061 is 'a' where it has one).
      std::string written = names[i];
      const size_t a = written.find('a');
      if (i % 3 == 0 && a != std::string::npos) written.replace(a, 1, "\\u0061");
      body += testing::cat("\"", written, "\":", std::to_string(i));
      if (i % 2 == 0) paths.push_back(names[i]);                   // wanted
      if (i % 7 == 0) paths.push_back(testing::cat(names[i], "x"));  // absent, similar
    }
    body += ",\"nested\":{\"temperature_2\":\"n\"}}";
    paths.push_back("nested.temperature_2");
    EXPECT_EQ(check(body, paths), "") << count;
  }
}

TEST(BodyScanTest, Utf16AndUtf32) {
  std::string u16;
  for (char c : std::string("{\"a\":\"x\",\"b\":2}")) {
    u16.push_back(c);
    u16.push_back('\0');
  }
  EXPECT_EQ(check(u16, {"a", "b"}, "UTF-16"), "");
  std::string u32;
  for (char c : std::string("{\"a\":\"x\",\"b\":2}")) {
    u32.push_back(c);
    u32.append(3, '\0');
  }
  EXPECT_EQ(check(u32, {"a", "b"}, "utf-32"), "");
  EXPECT_EQ(check(u16.substr(1), {"a"}, "utf-16"), "");  // odd length
  EXPECT_EQ(check("{\"a\":1}", {"a"}, "utf8"), "");       // bad encoding name
}

TEST(BodyScanTest, DeepNesting) {
  for (int depth : {1, 2, 100, 1022, 1023, 1024, 1025, 1026, 5000}) {
    for (const char* open : {"[", "{\"a\":"}) {
      std::string body = "{\"a\":";
      for (int i = 1; i < depth; ++i) body.append(open);
      body.push_back('1');
      body.append(static_cast<size_t>(depth - 1), open[0] == '[' ? ']' : '}');
      body.push_back('}');
      EXPECT_EQ(check(body, {"a", "a.a", "a[0]"}), "") << depth << " " << open;
    }
  }
}

// Every path of a JSON value up to a few levels, plus some that cannot exist.
void collectPaths(const nlohmann::json& v, const std::string& prefix, int depth,
                  std::set<std::string>* out) {
  if (depth > 4) return;
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& k = it.key();
      if (k.empty() || k.find_first_of(" \t\r\n()<>@,;:\\\"/?={}.[]'") != std::string::npos ||
          k.find_first_not_of("0123456789") == std::string::npos || k == "*" || k == "$") {
        continue;
      }
      const std::string p = prefix.empty() ? k : testing::cat(prefix, ".", k);
      std::vector<PathStep> s;
      std::string detail;
      if (!parseBodyPath(p, true, &s, &detail)) continue;
      out->insert(p);
      out->insert(testing::cat(p, ".zz"));
      collectPaths(*it, p, depth + 1, out);
    }
  } else if (v.is_array() && !prefix.empty()) {
    for (size_t i = 0; i < v.size() && i < 4; ++i) {
      const std::string p = testing::cat(prefix, "[", std::to_string(i), "]");
      out->insert(p);
      collectPaths(v[i], p, depth + 1, out);
    }
    out->insert(testing::cat(prefix, "[", std::to_string(v.size()), "]"));
  }
}

std::vector<std::string> conformanceLines() {
  std::ifstream in(std::string(HUB_SOURCE_DIR) + "/tests/routing/data/routing-cases.jsonl");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

TEST(BodyScanTest, DifferentialOverConformanceBodiesAndMutations) {
  const auto lines = conformanceLines();
  ASSERT_FALSE(lines.empty());
  std::set<std::string> seen;
  std::mt19937 rng(12345);
  const std::string alphabet = "{}[]\":,\\0123456789eE.+-tfnrulsa \x7f\x80\xbf\xc3\xed\xf0\xf4\x01";
  size_t bodies = 0;
  for (const auto& line : lines) {
    const auto c = nlohmann::json::parse(line, nullptr, false);
    if (c.is_discarded() || !c.contains("message")) continue;
    auto owned = messageFromJson(c["message"].dump());
    if (!owned.isOk()) continue;
    OwnedMessage m = std::move(owned).value();
    const std::string body(m.body.begin(), m.body.end());
    std::string encoding;
    for (const auto& [k, v] : m.system_properties) {
      if (k == "contentEncoding") encoding = v;
    }
    if (!seen.insert(testing::cat(encoding, "|", body)).second) continue;
    ++bodies;
    std::set<std::string> path_set = {"zz", "a", "a.b", "a[0]"};
    const auto parsed = nlohmann::json::parse(body, nullptr, false);
    if (!parsed.is_discarded()) collectPaths(parsed, "", 0, &path_set);
    const std::vector<std::string> paths(path_set.begin(), path_set.end());
    EXPECT_EQ(compare(m.view(), paths), "") << c.value("id", "") << " body " << body;
    if (encoding != "utf-8" && encoding != "UTF-8") continue;
    for (int k = 0; k < 300 && !body.empty(); ++k) {
      std::string mutated = body;
      const size_t at = rng() % mutated.size();
      switch (rng() % 4) {
        case 0: mutated[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: mutated.erase(at, 1); break;
        case 2: mutated.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        default: mutated.resize(at); break;
      }
      TestMessage t;
      t.json(mutated);
      EXPECT_EQ(compare(t.view(), paths), "") << "mutated " << mutated;
    }
  }
  EXPECT_GT(bodies, 5u);
}

// The conformance conditions, evaluated by conditions bound to a route table (the scanner path).
TEST(BodyScanTest, ConformanceConditionsThroughRouteTable) {
  size_t checked = 0;
  for (const auto& line : conformanceLines()) {
    const auto c = nlohmann::json::parse(line, nullptr, false);
    if (c.is_discarded() || !c.contains("condition") || !c.contains("message") ||
        !c.contains("expect") || !c["condition"].is_string() || !c["expect"].is_string()) {
      continue;
    }
    const std::string expect = c["expect"].get<std::string>();
    if (expect != "true" && expect != "false" && expect != "undefined") continue;
    core::RouteSpec spec;
    spec.name = "r";
    spec.text = testing::cat("FROM /* WHERE ", c["condition"].get<std::string>(), " INTO $upstream");
    auto table = RouteTable::build(std::span<const core::RouteSpec>(&spec, 1), 7200);
    if (!table.isOk()) continue;
    auto owned = messageFromJson(c["message"].dump());
    ASSERT_TRUE(owned.isOk());
    OwnedMessage m = std::move(owned).value();
    const MessageView view = m.view();
    EvalContext ctx;
    RouteResults results;
    (*table)->route(view, ctx, results);
    EXPECT_EQ(results.size(), expect == "true" ? 1u : 0u) << c.value("id", "");
    ctx.beginMessage(view);
    const TriState t = (*table)->routes()[0].compiled.condition.evaluate(view, ctx);
    EXPECT_EQ(std::string(triStateName(t)), expect) << c.value("id", "");
    ++checked;
  }
  EXPECT_GT(checked, 300u);
}

TEST(BodyScanTest, TableSharesOneScanPerMessage) {
  std::vector<core::RouteSpec> specs(3);
  specs[0].name = "a";
  specs[0].text = "FROM /* WHERE $body.a = 1 INTO $upstream";
  specs[1].name = "b";
  specs[1].text = "FROM /* WHERE $body.b.c = 'x' INTO BrokeredEndpoint('/modules/m/inputs/i')";
  specs[2].name = "c";
  specs[2].text = "FROM /* WHERE $body.a > 0 AND {$body.b.c} <> 'y' INTO BrokeredEndpoint('/modules/n/inputs/i')";
  auto table = RouteTable::build(specs, 7200);
  ASSERT_TRUE(table.isOk());
  TestMessage m;
  m.json("{\"a\":1,\"b\":{\"c\":\"x\"}}");
  const MessageView v = m.view();
  EvalContext ctx;
  RouteResults results;
  (*table)->route(v, ctx, results);
  EXPECT_EQ(results.size(), 3u);
  EXPECT_EQ(ctx.stats().body_parses, 1u);
  // A shadowing application property still wins over the body (§8.4).
  TestMessage s;
  s.prop("$BODY.a", "1").json("{\"a\":1,\"b\":{\"c\":\"x\"}}");
  const MessageView sv = s.view();
  (*table)->route(sv, ctx, results);
  EXPECT_EQ(results.size(), 2u);  // '1' (string) = 1 (number) is false
}

// The body-test fast path of table conditions (condition.h, BodyTestForm) against the same
// condition evaluated by its program on the DOM, for every shape the form covers, over values of
// every kind, absent paths, unusable bodies and shadowing properties.
TEST(BodyScanTest, BodyTestFormMatchesProgram) {
  const std::vector<std::string> conditions = {
      "$body.v > 30", "$body.v < 30", "$body.v >= 3", "$body.v <= 3", "$body.v = 3",
      "$body.v <> 3", "30 < $body.v", "$body.v = 'ok'", "$body.v != 'ok'", "$body.v < 'ok'",
      "$body.v = true", "$body.v = null", "$body.v", "is_defined($body.v)",
      "is_defined($body.w.x)", "$body.v % 2 = 0", "$body.v * 2 > 5", "$body.v - 1 <> 2",
      "$body.v / 0 > 1", "$body.v + 1 = 'x'", "$body.v >= 3 AND $body.w.x > 1000",
      "$body.v > 3 OR $body.w.x = 'y'", "$body.v AND is_defined($body.w)",
      "$body.v OR $body.w.x", "{$body.v} = 3", "$body.a[1] = 'b'", "$body.v % 2 = 0 AND $body.v"};
  const std::vector<std::string> bodies = {
      "{\"v\":31.5,\"w\":{\"x\":1013.2}}", "{\"v\":3}", "{\"v\":4}", "{\"v\":-0}",
      "{\"v\":\"ok\"}", "{\"v\":\"oj\"}", "{\"v\":true}", "{\"v\":false,\"w\":{\"x\":\"y\"}}",
      "{\"v\":null}", "{\"v\":{}}", "{\"v\":[1]}", "{}", "{\"a\":[\"a\",\"b\"],\"v\":1e400}",
      "{\"v\":3,\"v\":\"ok\"}", "{\"v\":3", "[1]", "not json"};
  size_t fast = 0;
  for (const auto& condition : conditions) {
    core::RouteSpec spec;
    spec.name = "r";
    spec.text = testing::cat("FROM /* WHERE ", condition, " INTO $upstream");
    auto table = RouteTable::build(std::span<const core::RouteSpec>(&spec, 1), 7200);
    ASSERT_TRUE(table.isOk()) << condition << ": " << table.status().message();
    const CompiledCondition& bound = (*table)->routes()[0].compiled.condition;
    if (bound.hasBodyTestForm()) ++fast;
    auto standalone = compileRoute(spec.text);
    ASSERT_TRUE(standalone.isOk()) << condition;
    for (const auto& body : bodies) {
      for (int variant = 0; variant < 3; ++variant) {
        TestMessage m;
        if (variant == 1) m.prop("$body.v", "3");  // shadows $body.v (not {$body.v})
        if (variant == 2) {
          m.sys("contentType", "text/plain").sys("contentEncoding", "utf-8").body(body);
        } else {
          m.json(body);
        }
        const MessageView view = m.view();
        EvalContext table_ctx;
        table_ctx.beginMessage(view);
        const TriState got = bound.evaluate(view, table_ctx);
        EvalContext dom_ctx;
        dom_ctx.beginMessage(view);
        const TriState want = standalone->condition.evaluate(view, dom_ctx);
        EXPECT_EQ(triStateName(got), triStateName(want))
            << condition << " on " << body << " variant " << variant;
      }
    }
  }
  EXPECT_EQ(fast, conditions.size());  // every shape above has the form
}

TEST(BodyScanTest, TwinChangeIncludesThroughRouteTable) {
  core::RouteSpec spec;
  spec.name = "t";
  spec.text = "FROM /twinChangeNotifications WHERE twin_change_includes(properties.reported.fw) "
              "AND NOT twin_change_includes(properties.desired.x) INTO $upstream";
  auto table = RouteTable::build(std::span<const core::RouteSpec>(&spec, 1), 7200);
  ASSERT_TRUE(table.isOk()) << table.status().message();
  EvalContext ctx;
  RouteResults results;
  for (const auto& [body, expected] : std::vector<std::pair<std::string, size_t>>{
           {"{\"properties\":{\"reported\":{\"fw\":{\"version\":\"1.2\"}}}}", 1},
           {"{\"properties\":{\"reported\":{\"fw\":null}}}", 1},
           {"{\"properties\":{\"reported\":{\"fw\":1},\"reported\":{}}}", 0},
           {"{\"properties\":{\"reported\":{\"fw\":1},\"desired\":{\"x\":0}}}", 0},
           {"{\"properties\":{\"reported\":{\"fw\":1}}", 0}}) {
    TestMessage m;
    m.sys("messageType", "twinChangeNotification").json(body);
    const MessageView v = m.view();
    (*table)->route(v, ctx, results);
    EXPECT_EQ(results.size(), expected) << body;
  }
}

}  // namespace
}  // namespace edgehub::routing
