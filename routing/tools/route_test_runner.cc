#include "routing/tools/route_test_runner.h"

#include <nlohmann/json.hpp>

#include "routing/eval_context.h"
#include "routing/parser.h"
#include "routing/route_table.h"
#include "routing/tools/message_json.h"
#include "routing/unicode.h"

namespace edgehub::routing {

namespace {

constexpr std::string_view kConditionPrefix = "FROM /* WHERE ";

// Endpoints compare case-insensitively with ' and " alike (conformance README).
std::string endpointKey(std::string_view s) {
  std::string out;
  appendFolded(out, s);
  for (char& c : out) {
    if (c == '\'') c = '"';
  }
  return out;
}

RouteTestCaseResult runOne(const nlohmann::ordered_json& c) {
  RouteTestCaseResult r;
  r.id = c.contains("id") && c["id"].is_string() ? c["id"].get<std::string>() : std::string();
  const bool is_condition = c.contains("condition");
  std::string text;
  if (is_condition) {
    text = std::string(kConditionPrefix) + c["condition"].get<std::string>() + " INTO $upstream";
  } else if (c.contains("route") && c["route"].is_string()) {
    text = c["route"].get<std::string>();
  } else {
    r.result = "error";
    r.error = "case has neither \"condition\" nor \"route\"";
    return r;
  }
  OwnedMessage owned;
  if (c.contains("message")) {
    auto m = messageFromJson(c["message"].dump());
    if (!m.isOk()) {
      r.result = "error";
      r.error = std::string(m.status().message());
      return r;
    }
    owned = std::move(m).value();
  }
  const MessageView view = owned.view();
  RouteError err;
  auto compiled = compileRoute(text, &err);
  if (!compiled.isOk()) {
    r.result = "error";
    if (is_condition && err.line == 1 && err.column > kConditionPrefix.size()) {
      // Report the position within the condition the case wrote.
      err.column -= static_cast<uint32_t>(kConditionPrefix.size());
    }
    r.error = err.toString();
    return r;
  }
  EvalContext ctx;
  ctx.beginMessage(view);
  if (is_condition) {
    r.result = std::string(triStateName(compiled->condition.evaluate(view, ctx)));
    return r;
  }
  const bool source_ok = RouteTable::sourceMatches(compiled->prefix, RouteTable::sourcePath(view));
  if (source_ok && compiled->condition.matches(view, ctx)) {
    r.result = "match";
    r.endpoint = compiled->endpoint.toString();
  } else {
    r.result = "nomatch";
  }
  return r;
}

}  // namespace

RouteTestSummary runRouteTestCasesDetailed(std::istream& in, std::ostream* out,
                                           std::vector<RouteTestCaseResult>* results) {
  RouteTestSummary summary;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    nlohmann::ordered_json c;
    try {
      c = nlohmann::ordered_json::parse(line);
    } catch (const std::exception& e) {
      summary.unreadable_lines.push_back(line_no);
      if (out != nullptr) {
        nlohmann::ordered_json o;
        o["line"] = line_no;
        o["error"] = std::string("unreadable line: ") + e.what();
        *out << o.dump() << "\n";
      }
      continue;
    }
    if (!c.is_object()) {
      summary.unreadable_lines.push_back(line_no);
      if (out != nullptr) {
        *out << R"({"line":)" << line_no << R"(,"error":"unreadable line: not a JSON object"})" << "\n";
      }
      continue;
    }
    RouteTestCaseResult r;
    try {
      r = runOne(c);
      if (c.contains("expect") && c["expect"].is_string()) {
        r.has_expect = true;
        const std::string expect = c["expect"].get<std::string>();
        r.passed = r.result == expect;
        if (r.passed && expect == "match" && c.contains("endpoint") && c["endpoint"].is_string()) {
          r.passed = endpointKey(r.endpoint) == endpointKey(c["endpoint"].get<std::string>());
        }
      }
    } catch (const std::exception& e) {
      r.result = "error";
      r.error = std::string("malformed case: ") + e.what();
      r.has_expect = c.contains("expect");
      r.passed = false;
    }
    ++summary.total;
    if (r.has_expect) {
      if (r.passed) {
        ++summary.passed;
      } else {
        ++summary.failed;
        summary.failed_ids.push_back(r.id);
      }
    }
    if (out != nullptr) {
      nlohmann::ordered_json o;
      o["id"] = r.id;
      o["result"] = r.result;
      if (r.result == "match") {
        o["endpoint"] = r.endpoint;
        o["priority"] = core::kDefaultRoutePriority;
        o["ttl"] = core::kDefaultGlobalTtlSecs;
      }
      if (r.result == "error") o["error"] = r.error;
      if (r.has_expect) o["pass"] = r.passed;
      *out << o.dump() << "\n";
    }
    if (results != nullptr) results->push_back(std::move(r));
  }
  summary.exit_code = !summary.unreadable_lines.empty() ? 2 : (summary.failed > 0 ? 1 : 0);
  if (out != nullptr) {
    nlohmann::ordered_json s;
    s["passed"] = summary.passed;
    s["failed"] = summary.failed;
    s["total"] = summary.total;
    s["failed_ids"] = summary.failed_ids;
    s["unreadable_lines"] = summary.unreadable_lines;
    nlohmann::ordered_json o;
    o["summary"] = s;
    *out << o.dump() << "\n";
    *out << summary.passed << " passed, " << summary.failed << " failed\n";
  }
  return summary;
}

int runRouteTestCases(std::istream& in, std::ostream& out) {
  return runRouteTestCasesDetailed(in, &out, nullptr).exit_code;
}

}  // namespace edgehub::routing
