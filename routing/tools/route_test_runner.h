#pragma once
// `edgehub route test FILE`: runs route-language test cases in the conformance JSON Lines format
// (shared/conformance/README.md) and reports one JSON line per case plus a summary.
//
// Output, one line per case (members that do not apply are omitted):
//   {"id": ..., "result": "true|false|undefined|error|match|nomatch", "endpoint": ...,
//    "priority": ..., "ttl": ..., "error": "...", "pass": true|false}
// then a JSON summary line {"summary": {"passed": N, "failed": N, "total": N, "failed_ids": [...],
// "unreadable_lines": [...]}} and a plain line "N passed, N failed".
//
// Exit code: 0 when every case that has an "expect" matched it, 1 otherwise, 2 when some input
// line could not be read (its line number is reported).
//
// Thread-safety: reentrant (no shared state). Hot/cold: cold (a CLI tool).
#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace edgehub::routing {

struct RouteTestCaseResult {
  std::string id;
  std::string result;    // true, false, undefined, error, match, nomatch
  std::string endpoint;  // canonical endpoint for match
  std::string error;     // compile error for error
  bool has_expect = false;
  bool passed = false;
};

struct RouteTestSummary {
  int passed = 0;
  int failed = 0;
  int total = 0;
  std::vector<std::string> failed_ids;
  std::vector<size_t> unreadable_lines;  // 1-based
  int exit_code = 0;
};

// Runs every case; writes the report to `out` if non-null and the per-case results to
// `results` if non-null.
RouteTestSummary runRouteTestCasesDetailed(std::istream& in, std::ostream* out,
                                           std::vector<RouteTestCaseResult>* results);

int runRouteTestCases(std::istream& in, std::ostream& out);

}  // namespace edgehub::routing
