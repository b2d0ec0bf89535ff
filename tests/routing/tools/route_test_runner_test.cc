#include "routing/tools/route_test_runner.h"

#include <gtest/gtest.h>

#include <sstream>

namespace edgehub::routing {
namespace {

const char* kMsg = R"({"properties":{"key1":"value1"},"systemProperties":{"connectionModuleId":"m","outputName":"o"},"body":""})";

std::string line(const std::string& id, const std::string& what, const std::string& text,
                 const std::string& expect, const std::string& extra = "") {
  return "{\"id\":\"" + id + "\",\"" + what + "\":\"" + text + "\",\"message\":" + kMsg +
         ",\"expect\":\"" + expect + "\"" + extra + "}\n";
}

TEST(RouteTestRunnerTest, AllPassingGivesZeroAndOneLinePerCase) {
  std::istringstream in(line("c1", "condition", "key1 = 'value1'", "true") +
                        line("c2", "condition", "key1 = 3", "error") +
                        line("r1", "route", "FROM /messages/modules/m/* INTO brokeredendpoint('/x/a/y/b')",
                             "match", ",\"endpoint\":\"BrokeredEndpoint('/modules/a/inputs/b')\"") +
                        "\n");
  std::ostringstream out;
  EXPECT_EQ(runRouteTestCases(in, out), 0);
  const std::string s = out.str();
  EXPECT_NE(s.find(R"({"id":"c1","result":"true","pass":true})"), std::string::npos) << s;
  EXPECT_NE(s.find(R"("id":"c2","result":"error","error":"1:1: cannot compare string and number)"),
            std::string::npos) << s;
  EXPECT_NE(s.find(R"x("endpoint":"BrokeredEndpoint(\"/modules/a/inputs/b\")","priority":2000000000,"ttl":7200)x"),
            std::string::npos) << s;
  EXPECT_NE(s.find(R"({"summary":{"passed":3,"failed":0,"total":3,"failed_ids":[],"unreadable_lines":[]}})"),
            std::string::npos) << s;
  EXPECT_NE(s.find("3 passed, 0 failed\n"), std::string::npos);
}

TEST(RouteTestRunnerTest, FailureGivesOneAndListsIds) {
  std::istringstream in(line("bad", "condition", "key1 = 'nope'", "true") +
                        line("wrongEndpoint", "route", "FROM /* INTO $upstream", "match",
                             ",\"endpoint\":\"BrokeredEndpoint('/modules/a/inputs/b')\""));
  std::ostringstream out;
  std::vector<RouteTestCaseResult> results;
  const RouteTestSummary s = runRouteTestCasesDetailed(in, &out, &results);
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_EQ(s.failed_ids, (std::vector<std::string>{"bad", "wrongEndpoint"}));
  EXPECT_NE(out.str().find("0 passed, 2 failed"), std::string::npos);
}

TEST(RouteTestRunnerTest, UnreadableLineGivesTwoWithLineNumber) {
  std::istringstream in(line("c1", "condition", "true", "true") + "{not json\n" + "[1]\n");
  std::ostringstream out;
  const RouteTestSummary s = runRouteTestCasesDetailed(in, &out, nullptr);
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_EQ(s.unreadable_lines, (std::vector<size_t>{2, 3}));
  EXPECT_NE(out.str().find("{\"line\":2,"), std::string::npos);
}

TEST(RouteTestRunnerTest, CasesWithoutExpectOnlyReport) {
  std::istringstream in("{\"id\":\"x\",\"condition\":\"undefined\",\"message\":{}}\n");
  std::ostringstream out;
  EXPECT_EQ(runRouteTestCases(in, out), 0);
  EXPECT_NE(out.str().find(R"({"id":"x","result":"undefined"})"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace edgehub::routing
