#include "routing/route_table.h"

#include <gtest/gtest.h>

#include "tests/routing/test_util.h"

namespace edgehub::routing {
namespace {

using testing::cat;
using testing::TestMessage;

core::RouteSpec spec(std::string name, std::string text, uint32_t priority = core::kDefaultRoutePriority,
                     uint32_t ttl = 0) {
  core::RouteSpec s;
  s.name = std::move(name);
  s.text = std::move(text);
  s.priority = priority;
  s.time_to_live_secs = ttl;
  s.json_path = cat("routes.", s.name);
  return s;
}

TestMessage moduleMessage(std::string module, std::string output) {
  TestMessage m;
  m.sys("connectionDeviceId", "edge1").sys("connectionModuleId", std::move(module));
  if (!output.empty()) m.sys("outputName", std::move(output));
  return m;
}

std::vector<std::string> route(const RouteTable& t, TestMessage& m) {
  EvalContext ctx;
  RouteResults results;
  const MessageView v = m.view();
  t.route(v, ctx, results);
  std::vector<std::string> out;
  for (const RouteMatch& r : results.matches()) {
    out.push_back(cat(t.endpoint(r.endpoint).toString(), " p", std::to_string(r.priority), " ttl",
                      r.ttl_secs == kTtlInfinite ? std::string("inf") : std::to_string(r.ttl_secs), " ",
                      t.routes()[r.route].name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(RouteTableTest, EffectiveTtl) {
  EXPECT_EQ(effectiveTtl(0, 7200), 7200);
  EXPECT_EQ(effectiveTtl(0, -1), kTtlInfinite);
  EXPECT_EQ(effectiveTtl(0, 0), 0);
  EXPECT_EQ(effectiveTtl(30, 7200), 30);
  EXPECT_EQ(effectiveTtl(86400, 7200), 86400);
}

TEST(RouteTableTest, OnePerEndpointBestPriorityThenLongestTtl) {
  std::vector<core::RouteSpec> specs = {
      spec("leafHot", "FROM /messages WHERE NOT is_defined($connectionModuleId) AND $body.t > 30 INTO $upstream", 1),
      spec("leafAll", "FROM /messages WHERE NOT is_defined($connectionModuleId) INTO $upstream"),
      spec("short", "FROM /messages/* INTO BrokeredEndpoint('/modules/m/inputs/i')", 3, 10),
      spec("long", "FROM /* INTO brokeredendpoint(\"/x/m/y/i\")", 3, 1000),
      spec("inherit", "FROM /messages INTO BrokeredEndpoint('/modules/m/inputs/i')", 3, 0),
  };
  auto table = RouteTable::build(specs, 7200);
  ASSERT_TRUE(table.isOk()) << table.status().message();
  EXPECT_EQ((*table)->endpoints().size(), 2u);
  TestMessage hot;
  hot.json("{\"t\":35}");
  EXPECT_EQ(route(**table, hot), (std::vector<std::string>{
                                     "$upstream p1 ttl7200 leafHot",
                                     "BrokeredEndpoint(\"/modules/m/inputs/i\") p3 ttl7200 inherit"}));
  TestMessage cold;
  cold.json("{\"t\":5}");
  EXPECT_EQ(route(**table, cold)[0], "$upstream p2000000000 ttl7200 leafAll");
  // With an infinite global TTL, the inheriting route has the longest TTL.
  auto inf = RouteTable::build(specs, -1);
  ASSERT_TRUE(inf.isOk());
  EXPECT_EQ(route(**inf, cold)[1], "BrokeredEndpoint(\"/modules/m/inputs/i\") p3 ttlinf inherit");
  // With a short global TTL, the 1000 s route wins the tie.
  auto shorter = RouteTable::build(specs, 5);
  ASSERT_TRUE(shorter.isOk());
  EXPECT_EQ(route(**shorter, cold)[1], "BrokeredEndpoint(\"/modules/m/inputs/i\") p3 ttl1000 long");
}

TEST(RouteTableTest, SourceMatchingAndIndexWithManyGroups) {
  std::vector<core::RouteSpec> specs;
  for (int i = 0; i < 20; ++i) {
    const std::string n = std::to_string(i);
    specs.push_back(spec(cat("m", n), cat("FROM /messages/modules/m", n,
                                          "/outputs/* INTO BrokeredEndpoint('/modules/s/inputs/m", n, "')")));
  }
  specs.push_back(spec("all", "FROM /* INTO $upstream"));
  specs.push_back(spec("twin", "FROM /twinChangeNotifications INTO BrokeredEndpoint('/modules/t/inputs/t')"));
  specs.push_back(spec("literalStar", "FROM /messages/modules/*/outputs/o1 INTO BrokeredEndpoint('/modules/x/inputs/x')"));
  specs.push_back(spec("upper", "FROM /MESSAGES/MODULES/M1/OUTPUTS/O1 INTO BrokeredEndpoint('/modules/u/inputs/u')"));
  auto table = RouteTable::build(specs, 7200);
  ASSERT_TRUE(table.isOk()) << table.status().message();
  TestMessage m1 = moduleMessage("m1", "o1");
  EXPECT_EQ(route(**table, m1), (std::vector<std::string>{
                                    "$upstream p2000000000 ttl7200 all",
                                    "BrokeredEndpoint(\"/modules/s/inputs/m1\") p2000000000 ttl7200 m1",
                                    "BrokeredEndpoint(\"/modules/u/inputs/u\") p2000000000 ttl7200 upper"}));
  TestMessage m10 = moduleMessage("m10", "o1");  // must not match m1's prefix
  EXPECT_EQ(route(**table, m10).size(), 2u);
  TestMessage no_output = moduleMessage("m1", "");
  EXPECT_EQ(route(**table, no_output), (std::vector<std::string>{"$upstream p2000000000 ttl7200 all"}));
  TestMessage twin;
  twin.sys("messageType", "TwinChangeNotification").sys("connectionModuleId", "$edgeHub");
  EXPECT_EQ(route(**table, twin).size(), 2u);
  TestMessage star = moduleMessage("*", "o1");
  EXPECT_EQ(route(**table, star).size(), 2u);  // all + literalStar
}

TEST(RouteTableTest, ErrorsListEveryFailingRoute) {
  std::vector<core::RouteSpec> specs = {
      spec("good", "FROM /messages/* INTO $upstream"),
      spec("hot", "SELECT * FROM /messages WHERE temp > 30 INTO $upstream"),
      spec("tail", "FROM /messages/* INTO $upstream WHERE x = '1'"),
  };
  std::vector<RouteCompileError> errors;
  auto table = RouteTable::build(specs, 7200, &errors);
  ASSERT_FALSE(table.isOk());
  EXPECT_EQ(table.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.status().message(),
            "route 'hot' 1:31: cannot compare string and number with '>': application property values "
            "are strings; use as_number(temp) > 30\n"
            "route 'tail' 1:33: unexpected text after sink");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].route_name, "hot");
  EXPECT_EQ(errors[0].json_path, "routes.hot");
  EXPECT_EQ(errors[1].error.column, 33u);
}

TEST(RouteTableTest, BuildFromManifestUsesGlobalTtl) {
  core::Manifest manifest;
  manifest.routes.push_back(spec("r", "FROM /messages/* INTO $upstream", 0));
  manifest.store_and_forward.time_to_live_secs = 60;
  auto table = RouteTable::build(manifest);
  ASSERT_TRUE(table.isOk());
  TestMessage m;
  EXPECT_EQ(route(**table, m), (std::vector<std::string>{"$upstream p0 ttl60 r"}));
}

TEST(RouteTableTest, EmptyTableAndNoMatch) {
  auto table = RouteTable::build(std::vector<core::RouteSpec>{}, 7200);
  ASSERT_TRUE(table.isOk());
  TestMessage m;
  EXPECT_TRUE(route(**table, m).empty());
}

TEST(RouteTableTest, SourcePath) {
  TestMessage device;
  EXPECT_EQ(RouteTable::sourcePath(device.view()), "/messages");
  TestMessage module = moduleMessage("m1", "");
  EXPECT_EQ(RouteTable::sourcePath(module.view()), "/messages/modules/m1");
  TestMessage output = moduleMessage("m1", "o1");
  EXPECT_EQ(RouteTable::sourcePath(output.view()), "/messages/modules/m1/outputs/o1");
  EXPECT_TRUE(RouteTable::sourceMatches("/messages/modules/M1/", "/messages/modules/m1/outputs/o1"));
  EXPECT_FALSE(RouteTable::sourceMatches("/messages/modules/m1/", "/messages/modules/m10"));
}

}  // namespace
}  // namespace edgehub::routing
