// Route evaluation and compilation benchmarks (single thread). Run:
//   build-routing/bench/routing_bench
#include <benchmark/benchmark.h>

#include <simdjson.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config/manifest.h"
#include "routing/body_scan.h"
#include "routing/compiler.h"
#include "routing/eval_context.h"
#include "routing/message_view.h"
#include "routing/route_table.h"

namespace edgehub::routing {
namespace {

// Concatenation by append: GCC 12 reports a false -Wrestrict on `"x" + std::string(...)`.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

// ~200-byte JSON telemetry body.
const std::string kBody =
    R"({"deviceId":"sensor-17","temperature":31.5,"humidity":48.25,"pressure":1013.2,)"
    R"("status":"ok","alarm":false,"level":3,"location":{"lat":47.64,"lon":-122.13},)"
    R"("tags":["a","b"],"seq":123456,"ts":"2024-05-01T12:00:00Z"})";

// Owns the strings its views point to; held by unique_ptr so the views stay valid.
struct TestMessage {
  std::vector<PropertyView> props;
  std::vector<PropertyView> sys;
  std::string module;
  std::string output;
  MessageView view() const {
    MessageView v;
    v.properties = props;
    v.system_properties = sys;
    v.body = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kBody.data()), kBody.size());
    return v;
  }
};

std::unique_ptr<TestMessage> moduleMessage(std::string_view module, std::string_view output) {
  auto owned = std::make_unique<TestMessage>();
  TestMessage& m = *owned;
  m.module = std::string(module);
  m.output = std::string(output);
  m.props = {{"key1", "value1"}, {"key2", "3"}, {"alert", "yes"}, {"source", "plant-7"},
             {"level", "2"}};
  m.sys = {{"connectionDeviceId", "edge1"},
           {"connectionModuleId", m.module},
           {"outputName", m.output},
           {"messageId", "m-1"},
           {"contentType", "application/json"},
           {"contentEncoding", "utf-8"}};
  return owned;
}

RouteTableConstSharedPtr buildTable(const std::vector<std::string>& texts) {
  std::vector<core::RouteSpec> specs;
  for (size_t i = 0; i < texts.size(); ++i) {
    core::RouteSpec s;
    s.name = cat("r", std::to_string(i));
    s.text = texts[i];
    s.priority = static_cast<uint32_t>(i % 10);
    specs.push_back(std::move(s));
  }
  auto t = RouteTable::build(specs, 7200);
  if (!t.isOk()) {
    fprintf(stderr, "%s\n", std::string(t.status().message()).c_str());
    abort();
  }
  return *t;
}

void BM_RouteEval_PropertyEquals(benchmark::State& state) {
  const auto table = buildTable({"FROM /messages/* WHERE key1 = 'value1' INTO $upstream"});
  const auto msg = moduleMessage("filter", "out1");
  const MessageView view = msg->view();
  EvalContext ctx;
  RouteResults results;
  for (auto _ : state) {
    table->route(view, ctx, results);
    benchmark::DoNotOptimize(results.size());
  }
  if (results.size() != 1) state.SkipWithError("route did not match");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RouteEval_PropertyEquals);

std::vector<std::string> bodyRoutes() {
  return {
      "FROM /messages/* WHERE $body.temperature > 30 INTO $upstream",
      "FROM /messages/* WHERE $body.humidity < 40 INTO BrokeredEndpoint('/modules/m1/inputs/dry')",
      "FROM /messages/* WHERE $body.status = 'ok' INTO BrokeredEndpoint('/modules/m2/inputs/in')",
      "FROM /messages/* WHERE $body.alarm INTO BrokeredEndpoint('/modules/alarm/inputs/in')",
      "FROM /messages/* WHERE $body.level >= 3 AND $body.pressure > 1000 INTO $upstream",
      "FROM /messages/* WHERE $body.location.lat > 45 INTO BrokeredEndpoint('/modules/geo/inputs/n')",
      "FROM /messages/* WHERE $body.tags[1] = 'b' INTO BrokeredEndpoint('/modules/tag/inputs/b')",
      "FROM /messages/* WHERE $body.deviceId = 'sensor-17' INTO BrokeredEndpoint('/modules/d/inputs/x')",
      "FROM /messages/* WHERE $body.seq % 2 = 0 INTO BrokeredEndpoint('/modules/even/inputs/in')",
      "FROM /messages/* WHERE is_defined($body.missing) INTO BrokeredEndpoint('/modules/x/inputs/y')",
  };
}

void BM_RouteEval_10Routes_Body(benchmark::State& state) {
  const auto table = buildTable(bodyRoutes());
  const auto msg = moduleMessage("filter", "out1");
  const MessageView view = msg->view();
  EvalContext ctx;
  RouteResults results;
  for (auto _ : state) {
    table->route(view, ctx, results);
    benchmark::DoNotOptimize(results.size());
  }
  if (results.size() != 6) state.SkipWithError("unexpected match count");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RouteEval_10Routes_Body);

// 100 routes from 20 modules: per module 5 routes (specific output with a property condition,
// all outputs with a body condition, a plain forward, a module-to-module hop, a property check).
std::vector<std::string> mixedRoutes() {
  std::vector<std::string> r;
  for (int m = 0; m < 20; ++m) {
    const std::string mod = cat("mod", std::to_string(m));
    const std::string next = cat("mod", std::to_string((m + 1) % 20));
    const std::string from = cat("FROM /messages/modules/", mod);
    r.push_back(cat(from, "/outputs/alerts WHERE alert = 'yes' INTO $upstream"));
    r.push_back(cat(from, "/* WHERE $body.temperature > ", std::to_string(20 + m),
                    " INTO BrokeredEndpoint('/modules/", next, "/inputs/hot')"));
    r.push_back(cat(from, "/outputs/telemetry INTO $upstream"));
    r.push_back(cat(from, "/outputs/out1 WHERE as_number(level) >= 2 INTO BrokeredEndpoint('/modules/",
                    next, "/inputs/in1')"));
    r.push_back(cat(from, "/outputs/out1 WHERE key1 = 'value1' AND $body.status = 'ok' INTO ",
                    "BrokeredEndpoint('/modules/store/inputs/", mod, "')"));
  }
  return r;
}

void BM_RouteEval_100Routes_Mixed(benchmark::State& state) {
  const auto table = buildTable(mixedRoutes());
  std::vector<std::unique_ptr<TestMessage>> msgs;
  for (int m = 0; m < 20; ++m) msgs.push_back(moduleMessage(cat("mod", std::to_string(m)), m % 2 ? "out1" : "telemetry"));
  std::vector<MessageView> views;
  for (const auto& m : msgs) views.push_back(m->view());
  EvalContext ctx;
  RouteResults results;
  size_t i = 0;
  size_t matched = 0;
  for (auto _ : state) {
    table->route(views[i], ctx, results);
    matched += results.size();
    i = (i + 1) % views.size();
  }
  benchmark::DoNotOptimize(matched);
  if (matched == 0) state.SkipWithError("nothing matched");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RouteEval_100Routes_Mixed);

void BM_RouteCompile_100Routes(benchmark::State& state) {
  const auto texts = mixedRoutes();
  std::vector<core::RouteSpec> specs;
  for (size_t i = 0; i < texts.size(); ++i) {
    core::RouteSpec s;
    s.name = cat("r", std::to_string(i));
    s.text = texts[i];
    specs.push_back(std::move(s));
  }
  for (auto _ : state) {
    auto t = RouteTable::build(specs, 7200);
    benchmark::DoNotOptimize(t.isOk());
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_RouteCompile_100Routes)->Unit(benchmark::kMicrosecond);

void BM_SimdjsonParse_Body(benchmark::State& state) {
  simdjson::dom::parser parser;
  const simdjson::padded_string body(kBody);
  for (auto _ : state) {
    auto doc = parser.parse(body);
    benchmark::DoNotOptimize(doc.error());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBody.size()));
}
BENCHMARK(BM_SimdjsonParse_Body);

// The one-pass body scan alone, for the paths of bodyRoutes(): the share of
// BM_RouteEval_10Routes_Body that is not condition evaluation.
void BM_BodyScan_Body(benchmark::State& state) {
  BodyPlan plan;
  for (const char* p : {"temperature", "humidity", "status", "alarm", "level", "pressure",
                        "location.lat", "tags[1]", "deviceId", "seq", "missing"}) {
    std::vector<PathStep> steps;
    std::string detail;
    if (!parseBodyPath(p, true, &steps, &detail)) abort();
    plan.add(steps);
  }
  const auto msg = moduleMessage("filter", "out1");
  const MessageView view = msg->view();
  BodyScanner scanner;
  for (auto _ : state) {
    benchmark::DoNotOptimize(scanner.load(view, plan));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BodyScan_Body);

}  // namespace
}  // namespace edgehub::routing
