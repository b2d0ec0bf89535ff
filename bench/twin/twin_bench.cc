// Module twins through a running hub (issue 06 targets): the twin GET round trip on an idle hub
// (p99 ≤ 1 ms) and reported patches sustained from 10 modules with `sync` durability
// (≥ 10,000/s). The hub runs in process (edgehub::Hub, RocksDB store in a temporary directory)
// and the modules are raw MQTT clients on 127.0.0.1. The baseline measured in the same run is a
// QoS 1 telemetry publish's PUBACK round trip (a message made durable by the same store), so the
// GET figure reads as a ratio to the hub's own acknowledged-message latency.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hub/hub.h"
#include "tests/hub/support/mqtt_test_client.h"

namespace edgehub {
namespace {

using testing::MqttTestClient;
using transports::mqtt::PacketType;

constexpr int kModules = 10;

// "m<i>" (appends: GCC 12 reports a false -Wrestrict on "literal" + std::string at -O3).
std::string moduleName(int i) {
  std::string m = "m";
  m.append(std::to_string(i));
  return m;
}

// One hub for the whole binary (started on first use, stopped at exit).
struct BenchHub {
  BenchHub() {
    char tmpl[] = "/tmp/edgehub-twin-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir = tmpl;
    std::vector<std::string> names;
    for (int i = 0; i < kModules; ++i) names.push_back(moduleName(i));
    ids = testing::testIdentities(names);
    std::string routes = R"({"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {)";
    for (int i = 0; i < kModules; ++i) routes.append(i ? ", " : "").append("\"m").append(std::to_string(i)).append("\": {}");
    routes += R"json(}}}, "$edgeHub": {"properties.desired": {"schemaVersion": "1.1",
      "routes": {"baseline": "FROM /messages/modules/m1/* INTO BrokeredEndpoint(\"/modules/m2/inputs/in\")"},
      "storeAndForwardConfiguration": {"timeToLiveSecs": 60}}},
      "m0": {"properties.desired": {"interval": 5, "mode": "fast"}}}})json";
    auto manifest = core::parseManifest(routes);
    if (!manifest.isOk()) return;
    HubOptions o;
    o.manifest = std::move(manifest).value();
    o.identities = ids;
    o.data_dir = dir + "/data";
    o.io_threads = 2;
    o.mqtt_listen = "127.0.0.1:0";
    o.mqtts_listen = "";
    o.durability = "sync";
    auto created = Hub::create(std::move(o));
    if (!created.isOk() || !created.value()->start().isOk()) return;
    hub = std::move(created).value();
  }
  ~BenchHub() {
    if (hub) hub->stop();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::unique_ptr<MqttTestClient> module(int i) {
    auto c = MqttTestClient::open(hub->mqttAddress());
    const std::string m = moduleName(i);
    if (!c || c->connect(ids.device_id + "/" + m, testing::moduleUsername(ids, m), testing::moduleSasToken(ids, m)) != 0 ||
        c->subscribe("$iothub/twin/res/#", 0) != 0) {
      return nullptr;
    }
    return c;
  }
  std::string dir;
  core::IdentityConfig ids;
  std::unique_ptr<Hub> hub;
};

// Created on first use, stopped in main() before exit: a hub stopped from a static destructor
// would log after the logger's thread-local buffers are gone.
std::unique_ptr<BenchHub> g_hub;
BenchHub& benchHub() {
  if (!g_hub) g_hub = std::make_unique<BenchHub>();
  return *g_hub;
}

// Waits for the next PUBLISH whose topic starts with `prefix`.
bool awaitPublish(MqttTestClient& c, const std::string& prefix) {
  for (;;) {
    auto p = c.next(std::chrono::seconds(10));
    if (!p) return false;
    if (p->type == PacketType::kPublish && p->topic.compare(0, prefix.size(), prefix) == 0) return true;
  }
}

void reportLatencies(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  state.counters["max_us"] = us.back();
}

// Baseline: a QoS 1 telemetry publish until its PUBACK (stored durably with fsync first).
void BM_Baseline_TelemetryPubackRoundTrip_Sync(benchmark::State& state) {
  auto& h = benchHub();
  if (!h.hub) return state.SkipWithError("hub did not start");
  auto c = h.module(1);
  if (!c) return state.SkipWithError("module did not connect");
  const std::string topic = "devices/" + h.ids.device_id + "/modules/m1/messages/events/";
  std::vector<double> us;
  uint16_t id = 1;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!c->publish(topic, "{\"t\":1}", 1, id)) return state.SkipWithError("no PUBACK");
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    id = static_cast<uint16_t>(id % 60000 + 1);
  }
  reportLatencies(state, us);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_TelemetryPubackRoundTrip_Sync)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Twin GET until its 200 response, one request at a time on an otherwise idle hub.
void BM_TwinGetRoundTrip(benchmark::State& state) {
  auto& h = benchHub();
  if (!h.hub) return state.SkipWithError("hub did not start");
  auto c = h.module(0);
  if (!c) return state.SkipWithError("module did not connect");
  std::vector<double> us;
  int rid = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string get = "$iothub/twin/GET/?$rid=";
    std::string res = "$iothub/twin/res/200/?$rid=";
    get.append(std::to_string(++rid));
    res.append(std::to_string(rid));
    if (!c->publish(get, "", 0) || !awaitPublish(*c, res)) {
      return state.SkipWithError("no twin response");
    }
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  reportLatencies(state, us);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TwinGetRoundTrip)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Reported patches from 10 modules at once (one thread each), pipelined 100 deep per module
// (the SDKs do not wait for one patch's answer before sending the next), `sync` durability:
// every 204 is sent after the twin's fsync.
void BM_TwinReportedPatches_10Modules_Sync(benchmark::State& state) {
  auto& h = benchHub();
  if (!h.hub) return state.SkipWithError("hub did not start");
  static std::mutex mu;
  std::unique_ptr<MqttTestClient> c;
  {
    std::lock_guard lock(mu);
    c = h.module(state.thread_index());
  }
  if (!c) return state.SkipWithError("module did not connect");
  constexpr int kDepth = 100;
  int64_t n = 0;
  for (auto _ : state) {
    for (int i = 0; i < kDepth; ++i) {
      std::string body = "{\"counter\":";
      body.append(std::to_string(n + i)).append(",\"status\":{\"ok\":true}}");
      std::string topic = "$iothub/twin/PATCH/properties/reported/?$rid=";
      topic.append(std::to_string(i));
      if (!c->publish(topic, body, 0)) {
        return state.SkipWithError("write failed");
      }
    }
    for (int i = 0; i < kDepth; ++i) {
      if (!awaitPublish(*c, "$iothub/twin/res/204/")) return state.SkipWithError("no 204");
    }
    n += kDepth;
  }
  state.SetItemsProcessed(n);
}
BENCHMARK(BM_TwinReportedPatches_10Modules_Sync)->Threads(kModules)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgehub

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  edgehub::g_hub.reset();
  return 0;
}
