#include "core/config/manifest.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace edgehub::core {
namespace {

// A bare $edgeHub object with the given schema version (JSON value text) and routes (JSON value
// text; empty = no routes member) and store-and-forward object text (empty = absent).
std::string bare(const std::string& version, const std::string& routes,
                 const std::string& saf = R"({"timeToLiveSecs": 7200})") {
  std::string out = "{";
  bool first = true;
  auto add = [&](const std::string& key, const std::string& value) {
    if (value.empty()) return;
    if (!first) out += ", ";
    first = false;
    out += "\"" + key + "\": " + value;
  };
  add("schemaVersion", version);
  add("routes", routes);
  add("storeAndForwardConfiguration", saf);
  return out + "}";
}

std::string v11(const std::string& routes) { return bare(R"("1.1")", routes); }

struct BadCase {
  const char* name;
  std::string json;
  std::vector<std::string> expected;  // each must appear in the error message
  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }
};

class ManifestBadTest : public testing::TestWithParam<BadCase> {};

TEST_P(ManifestBadTest, RejectedWithPreciseMessage) {
  const BadCase& c = GetParam();
  Result<Manifest> r = parseManifest(c.json);
  ASSERT_FALSE(r.isOk()) << c.json;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  for (const std::string& want : c.expected) {
    EXPECT_NE(r.status().message().find(want), std::string_view::npos)
        << "expected '" << want << "' in:\n" << r.status().message();
  }
}

const std::string kR = R"("FROM /messages INTO $upstream")";

INSTANTIATE_TEST_SUITE_P(
    Manifest, ManifestBadTest,
    testing::Values(
        BadCase{"EmptyText", "", {"line 1, column 1:"}},
        BadCase{"BadJsonLineColumn", "{\n  \"schemaVersion\": \"1.1\",\n  \"routes\": {,}\n}",
                {"line 3, column 14:", "syntax error"}},
        BadCase{"TrailingComma", "{\"schemaVersion\": \"1.1\",}", {"line 1, column 25:"}},
        BadCase{"ColumnsCountCodePoints", "{\"r\u00e9\u00e9\": x}", {"line 1, column 9:"}},
        BadCase{"NotAnObject", "[1, 2]", {"manifest: must be a JSON object, got an array"}},
        BadCase{"MissingSchemaVersion", bare("", "{}"), {"$edgeHub.schemaVersion: required"}},
        BadCase{"SchemaVersionNumber", bare("1.1", "{}"),
                {"$edgeHub.schemaVersion: must be a JSON string such as \"1.1\", got 1.1"}},
        BadCase{"SchemaVersionOneComponent", bare(R"("1")", "{}"),
                {"$edgeHub.schemaVersion: invalid version string \"1\""}},
        BadCase{"SchemaVersionX", bare(R"("1.x")", "{}"),
                {"$edgeHub.schemaVersion: invalid version string \"1.x\""}},
        BadCase{"SchemaVersionFiveComponents", bare(R"("1.1.0.0.0")", "{}"),
                {"invalid version string \"1.1.0.0.0\""}},
        BadCase{"SchemaVersionEmptyComponent", bare(R"("1..1")", "{}"), {"invalid version"}},
        BadCase{"SchemaVersionNegative", bare(R"("1.-1")", "{}"), {"invalid version"}},
        BadCase{"SchemaVersion14", bare(R"("1.4")", "{}"),
                {"$edgeHub.schemaVersion: unsupported version string \"1.4\" (supported: 1.0, "
                 "1.1, 1.2, 1.3)"}},
        BadCase{"SchemaVersion20", bare(R"("2.0")", "{}"), {"unsupported version string \"2.0\""}},
        BadCase{"SchemaVersion01", bare(R"("0.1")", "{}"), {"unsupported version string \"0.1\""}},
        BadCase{"ObjectRouteUnder10", bare(R"("1.0")", R"({"r": {"route": "FROM /messages INTO $upstream"}})"),
                {"$edgeHub.routes.r: route objects (priority, timeToLiveSecs) require "
                 "schemaVersion 1.1"}},
        BadCase{"NumberRouteUnder10", bare(R"("1.0")", R"({"r": 5})"),
                {"$edgeHub.routes.r: must be a string, got 5"}},
        BadCase{"RoutesNotObjectUnder10", bare(R"("1.0")", R"(["x"])"),
                {"$edgeHub.routes: must be an object"}},
        BadCase{"Priority10", v11(R"({"alerts": {"route": )" + kR + R"(, "priority": 10}})"),
                {"$edgeHub.routes.alerts.priority: must be 0-9 or 2000000000, got 10"}},
        BadCase{"PriorityNegative", v11(R"({"a": {"route": )" + kR + R"(, "priority": -1}})"),
                {"$edgeHub.routes.a.priority: must be 0-9 or 2000000000, got -1"}},
        BadCase{"PriorityFraction", v11(R"({"a": {"route": )" + kR + R"(, "priority": 1.5}})"),
                {"$edgeHub.routes.a.priority: must be 0-9 or 2000000000, got 1.5"}},
        BadCase{"PriorityWholeFloat", v11(R"({"a": {"route": )" + kR + R"(, "priority": 1.0}})"),
                {"$edgeHub.routes.a.priority: must be 0-9 or 2000000000, got 1.0"}},
        BadCase{"PriorityString", v11(R"({"a": {"route": )" + kR + R"(, "priority": "1"}})"),
                {"$edgeHub.routes.a.priority: must be 0-9 or 2000000000, got string \"1\""}},
        BadCase{"PriorityNull", v11(R"({"a": {"route": )" + kR + R"(, "priority": null}})"),
                {"$edgeHub.routes.a.priority: must be 0-9 or 2000000000, got null"}},
        BadCase{"PriorityNearDefault", v11(R"({"a": {"route": )" + kR + R"(, "priority": 2000000001}})"),
                {"got 2000000001"}},
        BadCase{"PriorityHuge", v11(R"({"a": {"route": )" + kR + R"(, "priority": 18446744073709551615}})"),
                {"$edgeHub.routes.a.priority: must be 0-9 or 2000000000, got 18446744073709551615"}},
        BadCase{"TtlNegative", v11(R"({"a": {"route": )" + kR + R"(, "timeToLiveSecs": -1}})"),
                {"$edgeHub.routes.a.timeToLiveSecs: must be an integer 0-4294967295, got -1"}},
        BadCase{"TtlTooLarge", v11(R"({"a": {"route": )" + kR + R"(, "timeToLiveSecs": 4294967296}})"),
                {"$edgeHub.routes.a.timeToLiveSecs: must be an integer 0-4294967295, got 4294967296"}},
        BadCase{"TtlNull", v11(R"({"a": {"route": )" + kR + R"(, "timeToLiveSecs": null}})"),
                {"$edgeHub.routes.a.timeToLiveSecs: must be an integer 0-4294967295, got null"}},
        BadCase{"TtlFraction", v11(R"({"a": {"route": )" + kR + R"(, "timeToLiveSecs": 10.5}})"),
                {"$edgeHub.routes.a.timeToLiveSecs: must be an integer 0-4294967295, got 10.5"}},
        BadCase{"TtlString", v11(R"({"a": {"route": )" + kR + R"(, "timeToLiveSecs": "60"}})"),
                {"got string \"60\""}},
        BadCase{"EmptyRouteName", v11(R"({"": )" + kR + "}"),
                {"$edgeHub.routes.\"\": route name must not be empty"}},
        BadCase{"EmptyRouteNameUnder10", bare(R"("1.0")", R"({"": )" + kR + "}"),
                {"route name must not be empty"}},
        BadCase{"BlankRouteUnder11", v11(R"({"r": "  \t "})"),
                {"$edgeHub.routes.r: route text must not be blank"}},
        BadCase{"EmptyRouteUnder11", v11(R"({"r": ""})"),
                {"$edgeHub.routes.r: route text must not be blank"}},
        BadCase{"MissingRouteMember", v11(R"({"r": {"priority": 1}})"),
                {"$edgeHub.routes.r.route: required"}},
        BadCase{"BlankRouteMember", v11(R"({"r": {"route": " "}})"),
                {"$edgeHub.routes.r.route: must not be blank"}},
        BadCase{"RouteMemberNumber", v11(R"({"r": {"route": 3}})"),
                {"$edgeHub.routes.r.route: must be a string, got 3"}},
        BadCase{"RouteAsNumber", v11(R"({"r": 42})"),
                {"$edgeHub.routes.r: must be a string or an object with a \"route\" member, got 42"}},
        BadCase{"RouteAsArray", v11(R"({"r": ["FROM /messages INTO $upstream"]})"),
                {"$edgeHub.routes.r: must be a string or an object with a \"route\" member, got an array"}},
        BadCase{"RouteAsNull", v11(R"({"r": null})"),
                {"$edgeHub.routes.r: must be a string or an object with a \"route\" member, got null"}},
        BadCase{"RouteAsBool", v11(R"({"r": true})"), {"$edgeHub.routes.r: must be a string or an object"}},
        BadCase{"MissingRoutesUnder11", bare(R"("1.1")", ""),
                {"$edgeHub.routes: required for schemaVersion 1.1 and later"}},
        BadCase{"MissingRoutesUnder13", bare(R"("1.3")", ""), {"$edgeHub.routes: required"}},
        BadCase{"RoutesArrayUnder11", bare(R"("1.2")", "[]"),
                {"$edgeHub.routes: must be an object mapping route names to routes, got an array"}},
        BadCase{"MissingStoreAndForward", bare(R"("1.1")", "{}", ""),
                {"$edgeHub.storeAndForwardConfiguration: required"}},
        BadCase{"MissingStoreAndForwardUnder10", bare(R"("1.0")", "", ""),
                {"$edgeHub.storeAndForwardConfiguration: required"}},
        BadCase{"StoreAndForwardNotObject", bare(R"("1.1")", "{}", "7200"),
                {"$edgeHub.storeAndForwardConfiguration: must be an object, got 7200"}},
        BadCase{"GlobalTtlAboveInt32", bare(R"("1.1")", "{}", R"({"timeToLiveSecs": 2147483648})"),
                {"$edgeHub.storeAndForwardConfiguration.timeToLiveSecs: must be an integer "
                 "-2147483648..2147483647, got 2147483648"}},
        BadCase{"GlobalTtlBelowInt32", bare(R"("1.1")", "{}", R"({"timeToLiveSecs": -2147483649})"),
                {"storeAndForwardConfiguration.timeToLiveSecs: must be an integer "
                 "-2147483648..2147483647, got -2147483649"}},
        BadCase{"GlobalTtlString", bare(R"("1.1")", "{}", R"({"timeToLiveSecs": "7200"})"),
                {"storeAndForwardConfiguration.timeToLiveSecs: must be an integer "
                 "-2147483648..2147483647, got string \"7200\""}},
        BadCase{"MaxSizeZero", bare(R"("1.1")", "{}", R"({"storeLimits": {"maxSizeBytes": 0}})"),
                {"$edgeHub.storeAndForwardConfiguration.storeLimits.maxSizeBytes: must be a "
                 "positive 64-bit integer, got 0"}},
        BadCase{"MaxSizeNegative", bare(R"("1.1")", "{}", R"({"storeLimits": {"maxSizeBytes": -5}})"),
                {"storeLimits.maxSizeBytes: must be a positive 64-bit integer, got -5"}},
        BadCase{"MaxSizeAboveInt64", bare(R"("1.1")", "{}", R"({"storeLimits": {"maxSizeBytes": 9223372036854775808}})"),
                {"storeLimits.maxSizeBytes: must be a positive 64-bit integer, got 9223372036854775808"}},
        BadCase{"MaxSizeString", bare(R"("1.1")", "{}", R"({"storeLimits": {"maxSizeBytes": "1GB"}})"),
                {"storeLimits.maxSizeBytes: must be a positive 64-bit integer, got string \"1GB\""}},
        BadCase{"MaxSizeFraction", bare(R"("1.1")", "{}", R"({"storeLimits": {"maxSizeBytes": 1.5}})"),
                {"storeLimits.maxSizeBytes: must be a positive 64-bit integer, got 1.5"}},
        BadCase{"StoreLimitsNotObject", bare(R"("1.1")", "{}", R"({"storeLimits": 5})"),
                {"$edgeHub.storeAndForwardConfiguration.storeLimits: must be an object, got 5"}},
        BadCase{"InvalidModuleId",
                R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {"bad/id": {}, "ok": {}}}},
                    "$edgeHub": {"properties.desired": )" + v11("{}") + "}}}",
                {"$edgeAgent.modules.bad/id: invalid module id 'bad/id'"}},
        BadCase{"ModuleIdWithSpace",
                R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {"my module": {}}}},
                    "$edgeHub": {"properties.desired": )" + v11("{}") + "}}}",
                {"$edgeAgent.modules.my module: invalid module id"}},
        BadCase{"ModuleIdTooLong",
                R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {")" +
                    std::string(129, 'm') + R"(": {}}}},
                    "$edgeHub": {"properties.desired": )" + v11("{}") + "}}}",
                {"module id is longer than 128 characters"}},
        BadCase{"ReservedModuleId",
                R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {"$edgeHub": {}}}},
                    "$edgeHub": {"properties.desired": )" + v11("{}") + "}}}",
                {"$edgeAgent.modules.$edgeHub: module ids starting with '$' are reserved"}},
        BadCase{"ModuleNotObject",
                R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {"m": 1}}},
                    "$edgeHub": {"properties.desired": )" + v11("{}") + "}}}",
                {"$edgeAgent.modules.m: must be an object, got 1"}},
        BadCase{"MissingEdgeHub", R"({"modulesContent": {"$edgeAgent": {"properties.desired": {}}}})",
                {"modulesContent.$edgeHub: required"}},
        BadCase{"EdgeHubWithoutDesired", R"({"modulesContent": {"$edgeHub": {}}})",
                {"modulesContent.$edgeHub.properties.desired: required"}},
        BadCase{"ModulesContentNotObject", R"({"modulesContent": []})",
                {"modulesContent: must be an object, got an array"}},
        BadCase{"ModuleDesiredNotObject",
                R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {"m": {}}}},
                    "$edgeHub": {"properties.desired": )" + v11("{}") + R"(},
                    "m": {"properties.desired": [1]}}})",
                {"m.properties.desired: must be an object, got an array"}},
        BadCase{"MultipleErrorsTogether",
                bare(R"("1.1")",
                     R"({"a": {"route": )" + kR + R"(, "priority": 10}, "b": "", "c": {"route": )" + kR +
                         R"(, "timeToLiveSecs": -1}})",
                     R"({"timeToLiveSecs": 1e3})"),
                {"$edgeHub.routes.a.priority: must be 0-9 or 2000000000, got 10\n"
                 "$edgeHub.routes.b: route text must not be blank\n"
                 "$edgeHub.routes.c.timeToLiveSecs: must be an integer 0-4294967295, got -1\n"
                 "$edgeHub.storeAndForwardConfiguration.timeToLiveSecs: must be an integer"}},
        BadCase{"VersionAndStoreErrorsTogether", bare("1", "{}", ""),
                {"$edgeHub.schemaVersion: must be a JSON string", "\n$edgeHub.storeAndForwardConfiguration: required"}},
        BadCase{"DuplicateRouteNameBare",
                v11(R"({"alerts": "FROM /a INTO $upstream", "alerts": "FROM /b INTO $upstream"})"),
                {"$edgeHub.routes.alerts: duplicate member name"}},
        BadCase{"DuplicateRouteNameFull",
                R"({"modulesContent": {"$edgeHub": {"properties.desired": )" +
                    v11(R"({"r": "FROM /a INTO $upstream", "x": [{"k": 1, "k": 2}], "r": "FROM /b INTO $upstream"})") +
                    "}}}",
                {"$edgeHub.routes.x[0].k: duplicate member name",
                 "\n$edgeHub.routes.r: duplicate member name"}},
        BadCase{"DuplicateModule",
                R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {"m": {}, "m": {}}}},
                    "$edgeHub": {"properties.desired": )" + v11("{}") + "}}}",
                {"$edgeAgent.modules.m: duplicate member name"}},
        BadCase{"TooDeep", std::string(600, '[') + std::string(600, ']'),
                {"line 1, column 513: JSON nested deeper than 512 levels"}}),
    [](const testing::TestParamInfo<BadCase>& p) { return std::string(p.param.name); });

TEST(ManifestTest, OversizedInputIsRejected) {
  const std::string padding(kMaxManifestBytes, ' ');
  const std::string big = padding + bare(R"("1.1")", "{}");
  Result<Manifest> r = parseManifest(big);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("manifest is too large: 16777" ), std::string_view::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("(limit 16777216)"), std::string_view::npos);
}

TEST(ManifestTest, Schema10BlankRoutesSkipped) {
  auto r = parseManifest(bare(R"("1.0")",
                              R"({"a": null, "b": "", "c": "   ", "d": "FROM /messages INTO $upstream"})"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->routes.size(), 1u);
  EXPECT_EQ(r->routes[0].name, "d");
  EXPECT_EQ(r->routes[0].text, "FROM /messages INTO $upstream");
  EXPECT_EQ(r->routes[0].priority, kDefaultRoutePriority);
  EXPECT_EQ(r->routes[0].time_to_live_secs, 0u);
  EXPECT_EQ(r->routes[0].json_path, "routes.d");
  EXPECT_EQ(r->schema_major, 1);
  EXPECT_EQ(r->schema_minor, 0);
}

TEST(ManifestTest, Schema10WithoutRoutesHasNone) {
  auto r = parseManifest(bare(R"("1.0")", ""));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->routes.empty());
}

TEST(ManifestTest, DefaultsApplied) {
  auto r = parseManifest(bare(R"("1.1")", R"({"r": "FROM /messages INTO $upstream"})", "{}"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->bare_edge_hub);
  EXPECT_TRUE(r->modules.empty());
  EXPECT_EQ(r->store_and_forward.time_to_live_secs, kDefaultGlobalTtlSecs);
  EXPECT_EQ(r->store_and_forward.time_to_live_secs, 7200);
  EXPECT_FALSE(r->store_and_forward.max_size_bytes.has_value());
  ASSERT_EQ(r->routes.size(), 1u);
  EXPECT_EQ(r->routes[0].priority, 2'000'000'000u);
  EXPECT_EQ(r->routes[0].time_to_live_secs, 0u);
}

TEST(ManifestTest, Schema11ObjectRoutesAndBounds) {
  auto r = parseManifest(bare(R"("1.1.0")",
                              R"({"hi": {"route": "FROM /a INTO $upstream", "priority": 0, "timeToLiveSecs": 4294967295, "extra": [1]},
                                  "lo": {"route": "FROM /b INTO $upstream", "priority": 9, "timeToLiveSecs": 0},
                                  "dflt": {"route": "FROM /c INTO $upstream", "priority": 2000000000},
                                  "plain": "FROM /d INTO $upstream"})",
                              R"({"timeToLiveSecs": -1, "storeLimits": {"maxSizeBytes": 9223372036854775807}})"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->schema_version, "1.1.0");
  EXPECT_EQ(r->schema_major, 1);
  EXPECT_EQ(r->schema_minor, 1);
  ASSERT_EQ(r->routes.size(), 4u);
  // Manifest order, not alphabetical.
  EXPECT_EQ(r->routes[0].name, "hi");
  EXPECT_EQ(r->routes[0].priority, 0u);
  EXPECT_EQ(r->routes[0].time_to_live_secs, 4294967295u);
  EXPECT_EQ(r->routes[1].name, "lo");
  EXPECT_EQ(r->routes[1].priority, 9u);
  EXPECT_EQ(r->routes[2].name, "dflt");
  EXPECT_EQ(r->routes[2].priority, kDefaultRoutePriority);
  EXPECT_EQ(r->routes[3].name, "plain");
  EXPECT_EQ(r->routes[3].text, "FROM /d INTO $upstream");
  EXPECT_EQ(r->store_and_forward.time_to_live_secs, -1);
  EXPECT_EQ(r->store_and_forward.max_size_bytes, 9223372036854775807);
}

TEST(ManifestTest, GlobalTtlInt32Bounds) {
  for (int64_t ttl : {int64_t{-2147483648LL}, int64_t{0}, int64_t{2147483647}}) {
    auto r = parseManifest(bare(R"("1.2")", "{}", "{\"timeToLiveSecs\": " + std::to_string(ttl) + "}"));
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(r->store_and_forward.time_to_live_secs, ttl);
  }
}

TEST(ManifestTest, AllSupportedVersionsAccepted) {
  for (const char* v : {"1.0", "1.1", "1.2", "1.3", "1.3.0", "1.2.3.4", "01.01"}) {
    std::string quoted = "\"";  // built piecewise: GCC 12 -Wrestrict misfires on "a" + s + "b"
    quoted.append(v);
    quoted.push_back('"');
    auto r = parseManifest(bare(quoted, "{}"));
    EXPECT_TRUE(r.isOk()) << v << ": " << r.status().toString();
  }
}

TEST(ManifestTest, UnknownMembersIgnored) {
  auto r = parseManifest(R"({"schemaVersion": "1.2", "$version": 3, "$metadata": {"x": 1},
      "mqttBroker": {"authorizations": []}, "routes": {},
      "storeAndForwardConfiguration": {"timeToLiveSecs": 10, "futureThing": true}})");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->store_and_forward.time_to_live_secs, 10);
}

TEST(ManifestTest, RouteNamesAreCaseSensitive) {
  auto r = parseManifest(v11(R"({"r": "FROM /a INTO $upstream", "R": "FROM /b INTO $upstream"})"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->routes.size(), 2u);
  EXPECT_EQ(r->routes[0].name, "r");
  EXPECT_EQ(r->routes[1].name, "R");
}

TEST(ManifestTest, RouteTextsAreNotCompiledHere) {
  auto r = parseManifest(v11(R"({"r": "this is not a route"})"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->routes[0].text, "this is not a route");
}

TEST(ManifestTest, FullManifestWithModulesAndDesiredProperties) {
  auto r = parseManifest(R"({"modulesContent": {
      "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1",
          "modules": {"zeta": {"type": "docker"}, "alpha": {"type": "docker"}, "mid-1": {}}}},
      "$edgeHub": {"properties.desired": {"schemaVersion": "1.1",
          "routes": {"r1": "FROM /messages INTO $upstream"},
          "storeAndForwardConfiguration": {"timeToLiveSecs": 60}}},
      "zeta": {"properties.desired": {"b": 1, "a": {"nested": [true, null]}}},
      "alpha": {"properties.desired": {}},
      "notDeployed": {"properties.desired": {"x": 1}}}})");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_FALSE(r->bare_edge_hub);
  ASSERT_EQ(r->modules.size(), 3u);
  EXPECT_EQ(r->modules[0].name, "zeta");
  EXPECT_EQ(r->modules[0].desired_properties, R"({"b":1,"a":{"nested":[true,null]}})");
  EXPECT_EQ(r->modules[1].name, "alpha");
  EXPECT_EQ(r->modules[1].desired_properties, "{}");
  EXPECT_EQ(r->modules[2].name, "mid-1");
  EXPECT_EQ(r->modules[2].desired_properties, "{}");
  ASSERT_EQ(r->routes.size(), 1u);
  EXPECT_EQ(r->store_and_forward.time_to_live_secs, 60);
}

TEST(ManifestTest, FullManifestWithoutEdgeAgentHasNoModules) {
  auto r = parseManifest(R"({"modulesContent": {"$edgeHub": {"properties.desired": )" +
                         v11("{}") + "}}}");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->modules.empty());
  EXPECT_FALSE(r->bare_edge_hub);
}

TEST(ManifestTest, ExampleDeploymentLoads) {
  auto r = loadManifestFile(std::string(HUB_SOURCE_DIR) + "/examples/deployment.json");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_FALSE(r->bare_edge_hub);
  EXPECT_GE(r->schema_minor, 1);
  ASSERT_EQ(r->modules.size(), 2u);
  EXPECT_EQ(r->modules[0].name, "sensor");
  EXPECT_EQ(r->modules[1].name, "filter");
  EXPECT_NE(r->modules[1].desired_properties.find("\"TemperatureThreshold\":25"), std::string::npos);
  ASSERT_GE(r->routes.size(), 4u);
  bool has_priority0 = false;
  bool has_priority5 = false;
  for (const RouteSpec& route : r->routes) {
    if (route.priority == 0) {
      has_priority0 = true;
      EXPECT_GT(route.time_to_live_secs, 7200u);
      EXPECT_NE(route.text.find("$body."), std::string::npos);
      EXPECT_NE(route.text.find("application/json"), std::string::npos);
    }
    if (route.priority == 5) has_priority5 = true;
  }
  EXPECT_TRUE(has_priority0);
  EXPECT_TRUE(has_priority5);
  ASSERT_TRUE(r->store_and_forward.max_size_bytes.has_value());
  EXPECT_GT(*r->store_and_forward.max_size_bytes, 0);
}

class ManifestFileTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "/manifest_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(ManifestFileTest, MissingFileNamesIt) {
  auto r = loadManifestFile(dir_ + "/nope.json");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("nope.json"), std::string_view::npos);
}

TEST_F(ManifestFileTest, InvalidFileNamesItAndListsProblems) {
  const std::string path = write("bad.json", v11(R"({"a": {"route": "x", "priority": 10}})"));
  auto r = loadManifestFile(path);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "manifest '" + path +
                                      "' is invalid:\n$edgeHub.routes.a.priority: must be 0-9 or "
                                      "2000000000, got 10");
}

TEST_F(ManifestFileTest, DirectoryIsRejected) {
  auto r = loadManifestFile(dir_);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("not a regular file"), std::string_view::npos);
}

TEST_F(ManifestFileTest, OversizedFileRejectedBeforeReading) {
  const std::string path = dir_ + "/big.json";
  files_.push_back(path);
  {
    std::ofstream out(path);
    out << "{}";
  }
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(kMaxManifestBytes) + 1), 0);
  auto r = loadManifestFile(path);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("is too large: 16777217 bytes (limit 16777216)"),
            std::string_view::npos)
      << r.status().message();
}

}  // namespace
}  // namespace edgehub::core
