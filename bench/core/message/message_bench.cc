// Message model costs on the ingress path: building one message (5 application properties,
// 4 system properties, a ~200-byte body) with a reused MessageBuilder, verifying one read back
// from bytes, and fanning one out by reference. Baseline in the same run: the same content copied
// into a std::map<std::string, std::string> plus a std::string body, what a naive model costs.
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "core/identity.h"
#include "core/message/message.h"

namespace edgehub::core {
namespace {

constexpr std::string_view kBody =
    R"({"machine":{"temperature":21.53,"pressure":1.02},"ambient":{"temperature":20.9,"humidity":25},"timeCreated":"2026-12-01T21:36:23.1234567Z","id":"sensor-0001"})";

const Identity& origin() {
  static const Identity id = Identity::module("edge1", "sensor");
  return id;
}

void buildOne(MessageBuilder& b, uint64_t seq) {
  b.reset();
  b.setSequence(seq);
  b.setEnqueuedTimeMs(1'764'624'983'123);
  b.setOrigin(origin());
  b.setSystem(SystemField::kMessageId, "m-0001");
  b.setSystem(SystemField::kContentType, "application/json");
  b.setSystem(SystemField::kContentEncoding, "utf-8");
  b.setSystem(SystemField::kOutputName, "readings");
  b.addProperty("key1", "value1");
  b.addProperty("key2", "3");
  b.addProperty("level", "critical");
  b.addProperty("site", "plant-7");
  b.addProperty("unit", "celsius");
  b.setBody(kBody);
}

void BM_MessageBuilder_Build(benchmark::State& state) {
  MessageBuilder b;
  uint64_t seq = 0;
  for (auto _ : state) {
    buildOne(b, ++seq);
    auto m = b.finish();
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MessageBuilder_Build);

void BM_Baseline_StdMapMessage(benchmark::State& state) {
  for (auto _ : state) {
    std::map<std::string, std::string> props;
    props.emplace("key1", "value1");
    props.emplace("key2", "3");
    props.emplace("level", "critical");
    props.emplace("site", "plant-7");
    props.emplace("unit", "celsius");
    props.emplace("$.mid", "m-0001");
    props.emplace("$.ct", "application/json");
    props.emplace("$.ce", "utf-8");
    props.emplace("$.on", "readings");
    std::string body(kBody);
    benchmark::DoNotOptimize(props);
    benchmark::DoNotOptimize(body);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_StdMapMessage);

void BM_MessageRef_FromBytesVerify(benchmark::State& state) {
  MessageBuilder b;
  buildOne(b, 1);
  MessageRef m = std::move(b.finish()).value();
  for (auto _ : state) {
    auto copy = MessageRef::fromBytes(m.bytes());
    benchmark::DoNotOptimize(copy);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MessageRef_FromBytesVerify);

void BM_MessageRef_FanOut10(benchmark::State& state) {
  MessageBuilder b;
  buildOne(b, 1);
  MessageRef m = std::move(b.finish()).value();
  for (auto _ : state) {
    MessageRef refs[10];
    for (auto& r : refs) r = m;
    benchmark::DoNotOptimize(refs);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MessageRef_FanOut10);

}  // namespace
}  // namespace edgehub::core
