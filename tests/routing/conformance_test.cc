// The shared conformance suite (tests/routing/data/routing-cases.jsonl, a verbatim copy of
// shared/conformance/routing-cases.jsonl): every case must pass.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "routing/tools/route_test_runner.h"

namespace edgehub::routing {
namespace {

TEST(ConformanceTest, EveryCasePasses) {
  std::ifstream in(std::string(HUB_SOURCE_DIR) + "/tests/routing/data/routing-cases.jsonl");
  ASSERT_TRUE(in.good()) << "missing tests/routing/data/routing-cases.jsonl";
  std::vector<RouteTestCaseResult> results;
  const RouteTestSummary summary = runRouteTestCasesDetailed(in, nullptr, &results);
  EXPECT_TRUE(summary.unreadable_lines.empty());
  EXPECT_EQ(summary.total, 571);
  for (const auto& r : results) {
    EXPECT_TRUE(r.has_expect) << r.id;
    EXPECT_TRUE(r.passed) << r.id << ": got " << r.result << " " << r.endpoint << " " << r.error;
  }
  EXPECT_EQ(summary.passed, summary.total);
  EXPECT_EQ(summary.exit_code, 0);
}

}  // namespace
}  // namespace edgehub::routing
