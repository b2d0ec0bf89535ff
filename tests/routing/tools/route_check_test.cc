#include "routing/tools/route_check.h"

#include <gtest/gtest.h>

#include <sstream>

namespace edgehub::routing {
namespace {

core::RouteSpec spec(std::string name, std::string text, uint32_t priority = core::kDefaultRoutePriority) {
  core::RouteSpec s;
  s.name = std::move(name);
  s.text = std::move(text);
  s.priority = priority;
  return s;
}

TEST(RouteCheckTest, ErrorsNameRoutePositionAndReason) {
  core::Manifest m;
  m.routes = {spec("ok", "FROM /messages/* INTO $upstream"),
              spec("hot", "FROM /messages WHERE temp > 30 INTO $upstream"),
              spec("local", "FROM /messages/* INTO $local")};
  std::ostringstream out;
  EXPECT_EQ(runRouteCheck(m, nullptr, out), 1);
  EXPECT_NE(out.str().find("error: route 'hot' 1:22: cannot compare string and number with '>'"),
            std::string::npos) << out.str();
  EXPECT_NE(out.str().find("error: route 'local' 1:23: unsupported system endpoint '$local'"),
            std::string::npos) << out.str();
}

TEST(RouteCheckTest, LintWarnings) {
  core::Manifest m;
  m.routes = {spec("body", "FROM /messages/* WHERE $body.t > 1 INTO $upstream"),
              spec("guarded", "FROM /messages/* WHERE $contentType = 'application/json' AND $body.t > 1 INTO $upstream"),
              spec("all", "FROM /* INTO $upstream"),
              spec("mid", "FROM /messages/modules/*/outputs/o1 INTO $upstream"),
              spec("glob", "FROM /messages/modules/m/outputs/o* INTO $upstream"),
              spec("loop", "FROM /messages/modules/f/outputs/out INTO BrokeredEndpoint('/modules/f/inputs/in')")};
  std::ostringstream out;
  EXPECT_EQ(runRouteCheck(m, nullptr, out), 0);
  const std::string s = out.str();
  EXPECT_NE(s.find("warning: route 'body': $body conditions"), std::string::npos) << s;
  EXPECT_EQ(s.find("warning: route 'guarded'"), std::string::npos) << s;
  EXPECT_NE(s.find("warning: route 'all': FROM /* also matches twin change notifications"), std::string::npos);
  EXPECT_NE(s.find("warning: route 'mid': '*' in the middle"), std::string::npos);
  EXPECT_NE(s.find("warning: route 'glob': source segment 'o*' is not a glob"), std::string::npos);
  EXPECT_NE(s.find("warning: route 'loop': possible loop: messages from module 'f'"), std::string::npos);
  EXPECT_NE(s.find("ok: 6 routes compiled"), std::string::npos);
}

TEST(RouteCheckTest, ExplainsAMessage) {
  core::Manifest m;
  m.routes = {spec("fromF", "FROM /messages/modules/f/* WHERE key1 = 'value1' INTO $upstream", 1),
              spec("other", "FROM /messages/modules/g/* INTO $upstream"),
              spec("cond", "FROM /messages/* WHERE key1 = 'x' INTO $upstream"),
              spec("undef", "FROM /messages/* WHERE missing = 'x' INTO $upstream")};
  const std::string msg =
      R"({"properties":{"key1":"value1"},"systemProperties":{"connectionModuleId":"f","outputName":"o"}})";
  std::ostringstream out;
  EXPECT_EQ(runRouteCheck(m, &msg, out), 0);
  const std::string s = out.str();
  EXPECT_NE(s.find("source: /messages/modules/f/outputs/o\n"), std::string::npos) << s;
  EXPECT_NE(s.find("route 'fromF': match -> $upstream (priority 1, ttl 7200s)"), std::string::npos) << s;
  EXPECT_NE(s.find("route 'other': no match: source mismatch"), std::string::npos) << s;
  EXPECT_NE(s.find("route 'cond': no match: condition is false"), std::string::npos) << s;
  EXPECT_NE(s.find("route 'undef': no match: condition is undefined"), std::string::npos) << s;
  EXPECT_NE(s.find("deliver: $upstream priority 1 ttl 7200s (route 'fromF')"), std::string::npos) << s;
  const std::string bad = "{";
  std::ostringstream out2;
  EXPECT_EQ(runRouteCheck(m, &bad, out2), 1);
}

}  // namespace
}  // namespace edgehub::routing
