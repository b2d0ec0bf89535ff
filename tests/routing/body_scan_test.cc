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

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define HUB_GUARD_PAGES 1
#endif

#include "routing/body.h"
#include "routing/body_test_eval.h"
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

// Every way the scanner can find string ends on this build and CPU (body_scan.h, ScanPath).
std::vector<BodyScanner::ScanPath> scanPaths() {
  std::vector<BodyScanner::ScanPath> paths = {BodyScanner::ScanPath::kAuto,
                                              BodyScanner::ScanPath::kBytes};
  for (const auto p : {BodyScanner::ScanPath::kPrepassSse2, BodyScanner::ScanPath::kPrepassAvx2}) {
    if (BodyScanner::stopPrepassAvailable(p)) paths.push_back(p);
  }
  return paths;
}

const char* scanPathName(BodyScanner::ScanPath p) {
  switch (p) {
    case BodyScanner::ScanPath::kAuto: return "auto";
    case BodyScanner::ScanPath::kBytes: return "bytes";
    case BodyScanner::ScanPath::kPrepassSse2: return "prepass-sse2";
    case BodyScanner::ScanPath::kPrepassAvx2: return "prepass-avx2";
  }
  return "?";
}

// Compares the DOM with the scanner on one message for the given paths, the scanner once per
// scan path (so the paths are compared with each other too: validity, and every path's value);
// returns a mismatch description naming the path. `reused`, when given, holds a scanner per
// scanPaths() entry kept across calls (their buffers are reused between messages).
std::string compare(const MessageView& view, const std::vector<std::string>& paths,
                    std::vector<BodyScanner>* reused = nullptr) {
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
  const bool dom_ok = queryBodyForTest(view, body_paths, &dom_values);
  const auto scan_paths = scanPaths();
  for (size_t k = 0; k < scan_paths.size(); ++k) {
    BodyScanner fresh;
    BodyScanner& scanner = reused != nullptr ? (*reused)[k] : fresh;
    scanner.setScanPathForTesting(scan_paths[k]);
    const char* const name = scanPathName(scan_paths[k]);
    const bool scan_ok = scanner.load(view, plan);
    if (dom_ok != scan_ok) {
      return testing::cat(name, " validity: dom ", dom_ok ? "ok" : "bad", " scan ", scan_ok ? "ok" : "bad");
    }
    if (!dom_ok) continue;
    for (size_t i = 0; i < paths.size(); ++i) {
      const std::string a = describe(dom_values[i]);
      const std::string b = describe(scanner.value(slots[i]));
      if (a != b) return testing::cat(name, " ", paths[i], ": dom ", a, " scan ", b);
    }
  }
  return "";
}

std::string check(const std::string& body, const std::vector<std::string>& paths,
                  std::string encoding = "utf-8") {
  TestMessage m;
  m.sys("contentType", "application/json").sys("contentEncoding", encoding).body(body);
  return compare(m.view(), paths);
}

// The scanner's verdict on a body, the same on every scan path (else a test failure).
bool scanOk(const std::string& body) {
  TestMessage m;
  m.json(body);
  BodyPlan plan;
  plan.add(steps("a"));
  BodyScanner s;
  const bool ok = s.load(m.view(), plan);
  for (const auto path : scanPaths()) {
    BodyScanner other;
    other.setScanPathForTesting(path);
    EXPECT_EQ(other.load(m.view(), plan), ok) << scanPathName(path) << " on " << body;
  }
  return ok;
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
  // Around the number fast path's bounds (parseNumber): 15 and 16 digit characters, a zero
  // integer part with 15 and 16 significant fraction digits, fractions of 22 and 23 digits,
  // negative values, exponents in both cases.
  for (const char* number :
       {"123456789012345", "1234567890123456", "-123456789012345", "12345678901234.5",
        "1234567890123.45", "0.12345678901234", "0.123456789012345", "0.1234567890123456",
        "0.000000012345678901234", "0.0000000000000000000001", "0.00000000000000000000012",
        "-0.0000000000000000000001", "0.0000000000000000000000", "-0.000", "9.999999999999999",
        "99999999999999.99", "1E3", "1e3", "-2.5E-3", "0e0", "123456789012345678901234567890"}) {
    const std::string body = testing::cat("{\"a\":", number, ",\"b\":[", number, "]}");
    EXPECT_EQ(check(body, {"a", "b[0]"}), "") << body;
  }
}

// A repeated member replaces what its earlier occurrence recorded below it; the scan checks that
// only for members whose slot says they have wanted children (NameSlot::parent). Paths are added
// leaf first ("a", then "a.b"), so the flag must be set when a node gains its first child, not
// only when a name table is rebuilt; each plan below adds a deeper path after its parent's table
// last changed.
TEST(BodyScanTest, RepeatedMemberClearsWhatItsEarlierOccurrenceRecorded) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"({"a":{"b":1},"a":2})", {"a", "a.b"}},
      {R"({"a":{"b":1},"a":{"c":3}})", {"a", "a.b", "a.c"}},
      {R"({"a":[5,6],"a":"x"})", {"a", "a[1]"}},
      {R"({"k":1,"a":{"b":{"c":1}},"a":{"b":2}})", {"k", "a", "a.b", "a.b.c"}},
      {R"({"a":{"b":{"c":1},"b":{}},"z":0})", {"a.b", "a", "z", "a.b.c"}},
  };
  for (const auto& [body, paths] : cases) {
    EXPECT_EQ(check(body, paths), "") << body;
  }
  // And the scanner's own verdict, not only agreement with the DOM.
  BodyPlan plan;
  const uint32_t a = plan.add(steps("a"));
  const uint32_t ab = plan.add(steps("a.b"));
  TestMessage m;
  m.json(R"({"a":{"b":1},"a":2})");
  BodyScanner scanner;
  ASSERT_TRUE(scanner.load(m.view(), plan));
  EXPECT_EQ(describe(scanner.value(a)), "num:2");
  EXPECT_EQ(describe(scanner.value(ab)), "missing");
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

// `%` is fmod (§7.2: truncated, the sign of the dividend, fmod's signed zero); the integer and
// power-of-two shortcuts of truncatedRemainder must give exactly fmod's value.
TEST(BodyScanTest, RemainderIsFmod) {
  const double xs[] = {0, -0.0, 1, -1, 3, -3, 7, -7, 8, -8, 123456, -123456, 2.5, -2.5,
                       9007199254740991.0, -9007199254740991.0, 9007199254740992.0, 1e300};
  const double ys[] = {1, -1, 2, -2, 3, 4, -4, 8, 1024, 0.5, 0.75, 1e300};
  for (const double x : xs) {
    for (const double y : ys) {
      const double want = std::fmod(x, y);
      const double got = truncatedRemainder(x, y);
      EXPECT_EQ(got, want) << x << " % " << y;
      EXPECT_EQ(std::signbit(got), std::signbit(want)) << x << " % " << y;
    }
  }
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
      "$body.v OR $body.w.x", "{$body.v} = 3", "$body.a[1] = 'b'", "$body.v % 2 = 0 AND $body.v",
      "$body.v % 2 = 1", "$body.v % 4 = 3", "$body.v % 8 = 0", "$body.v % 3 = 1",
      "$body.v % 0.5 = 0", "$body.v % -2 = 1", "$body.v % 4 = -3"};
  const std::vector<std::string> bodies = {
      "{\"v\":31.5,\"w\":{\"x\":1013.2}}", "{\"v\":3}", "{\"v\":4}", "{\"v\":-0}",
      "{\"v\":\"ok\"}", "{\"v\":\"oj\"}", "{\"v\":true}", "{\"v\":false,\"w\":{\"x\":\"y\"}}",
      "{\"v\":null}", "{\"v\":{}}", "{\"v\":[1]}", "{}", "{\"a\":[\"a\",\"b\"],\"v\":1e400}",
      "{\"v\":3,\"v\":\"ok\"}", "{\"v\":3", "[1]", "not json", "{\"v\":-3}", "{\"v\":7}",
      "{\"v\":-8}", "{\"v\":123456}", "{\"v\":2.5}", "{\"v\":9007199254740993}"};
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
        // And through the table's own route loop (RouteTable::evaluateGroup), which only asks
        // whether the route fires (bodyTestFormFires).
        EvalContext route_ctx;
        RouteResults results;
        (*table)->route(view, route_ctx, results);
        EXPECT_EQ(results.size(), want == TriState::kTrue ? 1u : 0u)
            << condition << " on " << body << " variant " << variant << " through the table";
      }
    }
  }
  EXPECT_EQ(fast, conditions.size());  // every shape above has the form
}

// ---- the string-stop pre-pass against the byte scanner and the DOM ---------------------------
// The pre-pass (body_scan.h) classifies 64-byte blocks, reads the last partial block as the
// window ending at the text's end and marks the final '}'. These bodies put every kind of stop
// (quotes, escapes, backslash runs, non-ASCII and invalid UTF-8, control characters) on each side
// of the block boundaries, at every text length up to a few blocks.

// Stops and near-stops that string contents can hold: the first kValidPieces are valid JSON
// string contents, the others are not.
constexpr size_t kValidPieces = 20;
const std::vector<std::string>& stringPieces() {
  static const std::vector<std::string> pieces = {
      // valid
      "x", "\\\"", "\\\\", "\\\\\\\"", "\\\\\\\\", "\\\\\\\\\\\"", "\\n", "\\u00e9",
      "\\ud83d\\ude00", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x7F", "}", "{", ",", ":",
      "[", "]", " ",
      // invalid
      "\\u12", "\\ud800", "\\q", "\xC3", "\x80", "\xED\xA0\x80", "\xC0\x80", "\xF4\x90\x80\x80",
      "\x01", "\t", "\\", "\\u", "\xE2\x82", "\xF0\x9F\x98"};
  return pieces;
}

// A copy of a body that ends right before an inaccessible page, so that a read past its end
// crashes the test in every build (not only under ASan, whose heap redzones catch it too).
class GuardedBody {
 public:
  explicit GuardedBody(const std::string& body) {
#if defined(HUB_GUARD_PAGES)
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    pages_ = (body.size() + page - 1) / page + 1;
    void* const m = mmap(nullptr, pages_ * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      ADD_FAILURE() << "mmap";
      return;
    }
    map_ = static_cast<uint8_t*>(m);
    uint8_t* const guard = map_ + (pages_ - 1) * page;
    EXPECT_EQ(mprotect(guard, page, PROT_NONE), 0);
    std::memcpy(guard - body.size(), body.data(), body.size());
    bytes_ = std::span<const uint8_t>(guard - body.size(), body.size());
#else
    copy_.assign(body.begin(), body.end());
    bytes_ = copy_;
#endif
  }
  ~GuardedBody() {
#if defined(HUB_GUARD_PAGES)
    if (map_ != nullptr) munmap(map_, pages_ * static_cast<size_t>(sysconf(_SC_PAGESIZE)));
#endif
  }
  GuardedBody(const GuardedBody&) = delete;
  GuardedBody& operator=(const GuardedBody&) = delete;
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  uint8_t* map_ = nullptr;
  size_t pages_ = 0;
  std::vector<uint8_t> copy_;
  std::span<const uint8_t> bytes_;
};

// compare() on a JSON message whose body ends at a guard page.
std::string compareGuarded(const std::string& body, const std::vector<std::string>& paths,
                           std::vector<BodyScanner>* reused) {
  TestMessage m;
  m.json("");
  const GuardedBody guarded(body);
  MessageView view = m.view();
  view.body = guarded.bytes();
  return compare(view, paths, reused);
}

const std::vector<std::string> kPrepassPaths = {"a", "b", "c", "d", "s", "a.b", "b[0]", "b[1]", "zz"};

TEST(BodyScanPrepassTest, StopsAroundBlockBoundaries) {
  std::vector<BodyScanner> reused(scanPaths().size());
  size_t bodies = 0;
  for (const auto& piece : stringPieces()) {
    // {"a":"<pad><piece>yy","b":[1,"q"]} with the piece moved across offsets 40..200, so that it
    // starts, straddles and ends at the boundaries 64, 128 and 192.
    for (size_t pad = 30; pad < 200; ++pad) {
      const std::string body = testing::cat("{\"a\":\"", std::string(pad, 'p'), piece,
                                            "yy\",\"b\":[1,\"q\"],\"s\":\"", piece, "\"}");
      EXPECT_EQ(compareGuarded(body, kPrepassPaths, &reused), "") << "pad " << pad << " body " << body;
      ++bodies;
    }
  }
  EXPECT_GT(bodies, 5000u);
}

TEST(BodyScanPrepassTest, EveryLengthAroundBlockMultiples) {
  std::vector<BodyScanner> reused(scanPaths().size());
  for (size_t length = 0; length <= 300; ++length) {
    // A string filling the body: its closing quote (or, cut short, its absence) lands on every
    // offset, including 63 and 64.
    const std::string open = "{\"s\":\"";
    const std::string close = "\"}";
    if (length >= open.size() + close.size()) {
      const std::string filled = testing::cat(open, std::string(length - open.size() - close.size(), 'v'), close);
      ASSERT_EQ(filled.size(), length);
      for (const std::string& body :
           {filled, filled.substr(0, length - 2) + "}", filled.substr(0, length - 1),
            testing::cat(filled.substr(0, length - 2), "\\\"}"), testing::cat(filled, "  \n"),
            testing::cat(filled.substr(0, length - 3), "\\\\\"}")}) {
        EXPECT_EQ(compareGuarded(body, kPrepassPaths, &reused), "") << "length " << length << " body " << body;
      }
    }
    // Many small members: names and values on both sides of every boundary.
    std::string members = "{";
    while (members.size() + 12 < length) {
      members += testing::cat(members.size() > 1 ? "," : "", "\"a\":\"",
                              std::to_string(members.size()), "\"");
    }
    members += "}";
    EXPECT_EQ(compareGuarded(members, kPrepassPaths, &reused), "") << "members " << members;
  }
}

// Backslash runs of every length ending at the last bytes of a block: an odd run escapes the
// quote after it (the string goes on), an even one does not.
TEST(BodyScanPrepassTest, BackslashRunsAtBlockEnds) {
  std::vector<BodyScanner> reused(scanPaths().size());
  for (size_t run = 0; run <= 9; ++run) {
    for (size_t end_at = 56; end_at <= 200; ++end_at) {
      const std::string prefix = "{\"a\":\"";
      if (end_at < prefix.size() + run) continue;
      const std::string body = testing::cat(prefix, std::string(end_at - prefix.size() - run, 'w'),
                                            std::string(run, '\\'), "\",\"b\":\"x\"}");
      EXPECT_EQ(compareGuarded(body, kPrepassPaths, &reused), "") << "run " << run << " at " << end_at;
    }
  }
}

// Random bodies (valid ones from a small grammar, then mutated) of lengths around block
// multiples, with wanted and unwanted members, nesting and every kind of string piece.
std::string randomValue(std::mt19937& rng, int depth) {
  const auto& pieces = stringPieces();
  switch (rng() % (depth > 3 ? 4 : 6)) {
    case 0: {
      std::string s = "\"";
      for (size_t n = rng() % 12; n > 0; --n) {
        // Mostly valid pieces, so that many bodies are valid before they are mutated.
        const size_t kinds = rng() % 16 == 0 ? pieces.size() : kValidPieces;
        s += rng() % 3 == 0 ? pieces[rng() % kinds] : std::string(rng() % 20, 'r');
      }
      return s + "\"";
    }
    case 1: {
      static const char* const numbers[] = {"0", "-0", "12", "-3.25", "1e5", "2.5E-3", "123456789",
                                            "9007199254740993", "1e400", "01", "1.", "-", "1e"};
      return numbers[rng() % (rng() % 16 == 0 ? std::size(numbers) : std::size(numbers) - 4)];
    }
    case 2: {
      static const char* const literals[] = {"true", "false", "null", "tru", "nulll"};
      return literals[rng() % (rng() % 16 == 0 ? std::size(literals) : std::size(literals) - 2)];
    }
    case 3: return std::string(rng() % 2 ? "{}" : "[]");
    case 4: {
      std::string o = "{";
      for (size_t n = rng() % 5; n > 0; --n) {
        static const char* const names[] = {"a", "b", "c", "d", "s", "a\\u0062", "long_name_x"};
        o += testing::cat(o.size() > 1 ? "," : "", "\"", names[rng() % std::size(names)], "\":",
                          rng() % 4 == 0 ? " " : "", randomValue(rng, depth + 1));
      }
      return o + "}";
    }
    default: {
      std::string a = "[";
      for (size_t n = rng() % 4; n > 0; --n) {
        a += testing::cat(a.size() > 1 ? "," : "", randomValue(rng, depth + 1));
      }
      return a + "]";
    }
  }
}

// A top-level object's opening and members (wanted and unwanted names, random values) up to
// about `target` bytes; the caller closes it.
std::string randomMembers(std::mt19937& rng, size_t target) {
  std::string body = "{";
  while (body.size() < target) {
    static const char* const names[] = {"a", "b", "c", "d", "s", "zz", "other"};
    body += testing::cat(body.size() > 1 ? "," : "", "\"", names[rng() % std::size(names)],
                         "\":", randomValue(rng, 1));
  }
  return body;
}

TEST(BodyScanPrepassTest, RandomAndMutatedBodies) {
  std::mt19937 rng(20261203);
  std::vector<BodyScanner> reused(scanPaths().size());
  const std::string alphabet = "{}[]\":,\\ 0123456789eE.-tfnu\x80\xC3\xA9\xED\xF0\x01\n";
  size_t valid = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string body = randomMembers(rng, 40 + rng() % 300);
    body += rng() % 8 == 0 ? "}\n" : "}";
    for (int k = 0; k < 3; ++k) {
      std::string mutated = body;
      if (k > 0) {
        const size_t at = rng() % mutated.size();
        switch (rng() % 3) {
          case 0: mutated[at] = alphabet[rng() % alphabet.size()]; break;
          case 1: mutated.erase(at, 1); break;
          default: mutated.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        }
      }
      EXPECT_EQ(compareGuarded(mutated, kPrepassPaths, &reused), "") << mutated;
      if (k == 0 && nlohmann::json::accept(mutated)) ++valid;
    }
  }
  EXPECT_GT(valid, 500u);  // the generator's bodies are mostly valid before mutation
}

// JSON whitespace below ' ' (tab, line feed, carriage return) is marked as a stop by the
// pre-pass outside strings too, where it must end nothing: valid random bodies with runs of it
// inserted after the operators and strings (pretty-printed telemetry looks like this), runs long
// enough to fill whole 64-byte blocks, then the same with one byte mutated.
std::string spreadWhitespace(const std::string& compact, std::mt19937& rng) {
  static const char* const runs[] = {"\n", "\t", "\r\n", "\n\t\t", " \n  ", "\r",
                                     "\n\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t"
                                     "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t"
                                     "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t"};
  std::string out;
  bool in_string = false;
  bool escaped = false;
  for (const char c : compact) {
    out += c;
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
        if (rng() % 2 == 0) out += runs[rng() % std::size(runs)];
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (std::strchr("{}[],:", c) != nullptr && rng() % 2 == 0) {
      out += runs[rng() % std::size(runs)];
    }
  }
  return out;
}

TEST(BodyScanPrepassTest, WhitespaceStopsBetweenStrings) {
  std::mt19937 rng(20261204);
  std::vector<BodyScanner> reused(scanPaths().size());
  size_t valid = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string compact = randomMembers(rng, 20 + rng() % 250) + "}";
    if (!nlohmann::json::accept(compact)) continue;
    const std::string spread = testing::cat(rng() % 4 == 0 ? "\n\t" : "", spreadWhitespace(compact, rng));
    ASSERT_TRUE(nlohmann::json::accept(spread)) << spread;
    ++valid;
    EXPECT_EQ(compareGuarded(spread, kPrepassPaths, &reused), "") << spread;
    std::string mutated = spread;
    mutated[rng() % mutated.size()] = "\"\\\n\t}:,"[rng() % 7];
    EXPECT_EQ(compareGuarded(mutated, kPrepassPaths, &reused), "") << mutated;
  }
  EXPECT_GT(valid, 300u);
}

// Bodies at, just past and well past the pre-pass's capacity (the byte scanner takes over), and
// deep nesting spanning many blocks.
TEST(BodyScanPrepassTest, LargeBodiesAndDeepNesting) {
  std::vector<BodyScanner> reused(scanPaths().size());
  for (const size_t size : {kPrepassMaxBody - 1, kPrepassMaxBody, kPrepassMaxBody + 1,
                            3 * kPrepassMaxBody + 17}) {
    for (const std::string& tail : {std::string("\"}"), std::string("\\u00e9\xC3\xA9\"}"),
                                    std::string("}"), std::string("\xC3\"}")}) {
      std::string body = "{\"b\":[1,\"q\"],\"s\":\"";
      body += std::string(size - body.size() - tail.size(), 'L');
      body += tail;
      ASSERT_EQ(body.size(), size);
      EXPECT_EQ(compareGuarded(body, kPrepassPaths, &reused), "") << size << " tail " << tail;
    }
  }
  for (const int depth : {100, 1023, 1024, 1025}) {
    std::string body = "{\"a\":";
    for (int i = 1; i < depth; ++i) body += "{\"b\":\"\xC3\xA9\\\"\",\"a\":";
    body += "\"end\"";
    body.append(static_cast<size_t>(depth - 1), '}');
    body += "}";
    EXPECT_EQ(compareGuarded(body, {"a", "a.b", "a.a", "a.a.b"}, &reused), "") << depth;
  }
}

// The test hooks themselves: the SSE2 stage is the x86-64 baseline, and a forced path is honoured
// (a body the byte scanner and the pre-pass both read gives the same values through each).
TEST(BodyScanPrepassTest, PathsAvailable) {
#if defined(__x86_64__)
  EXPECT_TRUE(BodyScanner::stopPrepassAvailable(BodyScanner::ScanPath::kPrepassSse2));
  EXPECT_TRUE(BodyScanner::stopPrepassAvailable(BodyScanner::ScanPath::kAuto));
#endif
  EXPECT_FALSE(BodyScanner::stopPrepassAvailable(BodyScanner::ScanPath::kBytes));
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
