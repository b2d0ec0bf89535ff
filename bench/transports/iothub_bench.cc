// IoT Hub MQTT dialect benchmarks (single thread). Run:
//   build-iothub/bench/transports_bench --benchmark_filter=IotHub
// BM_IotHubParseAndBuild: classify a module telemetry topic with a 5-property bag (3 system, 2
// application, percent-escaped as the Node SDK sends them), check it against the connection
// identity and build the MessageRef with a reused builder and parser: the per-PUBLISH ingress
// cost. BM_IotHubBaselineStdMap splits and decodes the same bag into a
// std::map<std::string, std::string>, the naive way, as a yardstick in the same run.
// BM_IotHubParseOnly: the parse half alone (no message), like for like with the baseline.
// BM_IotHubEncodeDelivery: the delivery topic for that message into a reused string.
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "transports/iothub/message.h"
#include "transports/percent_encoding.h"

namespace edgehub::transports::iothub {
namespace {

constexpr std::string_view kTopic =
    "devices/dev1/modules/mod1/messages/events/"
    "%24.on=out1&%24.mid=m-1&%24.ct=application%2Fjson&alert=true&site=north/";
constexpr std::string_view kPayload = "{\"temperature\":21.5,\"humidity\":40}";

std::span<const uint8_t> payload() {
  return {reinterpret_cast<const uint8_t*>(kPayload.data()), kPayload.size()};
}

void BM_IotHubParseAndBuild(benchmark::State& state) {
  const core::Identity sender = core::Identity::module("dev1", "mod1");
  core::MessageBuilder builder;
  PropertyBagParser parser;
  uint64_t seq = 0;
  for (auto _ : state) {
    auto topic = parsePublishTopic(kTopic);
    if (!topic.isOk()) std::abort();
    auto msg = buildTelemetryMessage(builder, parser, sender, topic.value(), payload(), ++seq, 1);
    if (!msg.isOk()) std::abort();
    benchmark::DoNotOptimize(msg.value().bytes().data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IotHubParseAndBuild);

// The parsing half alone (topic + bag through the callback, no message built), to compare with
// the std::map baseline like for like.
void BM_IotHubParseOnly(benchmark::State& state) {
  const core::Identity sender = core::Identity::module("dev1", "mod1");
  PropertyBagParser parser;
  for (auto _ : state) {
    auto topic = parsePublishTopic(kTopic);
    if (!topic.isOk() || !checkPublishAllowed(sender, topic.value()).isOk()) std::abort();
    size_t n = 0;
    auto s = parser.parse(topic.value().property_bag,
                          [&n](std::string_view k, std::optional<std::string_view> v) {
                            n += k.size() + (v ? v->size() : 0);
                          });
    if (!s.isOk()) std::abort();
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IotHubParseOnly);

void BM_IotHubBaselineStdMap(benchmark::State& state) {
  for (auto _ : state) {
    std::string_view bag = kTopic.substr(kTopic.find("events/") + 7);
    bag = bag.substr(0, bag.find('/'));
    std::map<std::string, std::string> props;
    size_t pos = 0;
    while (pos <= bag.size()) {
      size_t amp = bag.find('&', pos);
      if (amp == std::string_view::npos) amp = bag.size();
      std::string_view pair = bag.substr(pos, amp - pos);
      pos = amp + 1;
      size_t eq = pair.find('=');
      std::string key, value;
      if (!appendDecoded(key, pair.substr(0, eq))) std::abort();
      if (eq != std::string_view::npos && !appendDecoded(value, pair.substr(eq + 1))) std::abort();
      props.emplace(std::move(key), std::move(value));
    }
    benchmark::DoNotOptimize(props.size());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IotHubBaselineStdMap);

void BM_IotHubEncodeDelivery(benchmark::State& state) {
  const core::Identity sender = core::Identity::module("dev1", "mod1");
  const core::Identity target = core::Identity::module("dev1", "filter");
  core::MessageBuilder builder;
  auto topic = parsePublishTopic(kTopic);
  if (!topic.isOk()) std::abort();
  auto msg = buildTelemetryMessage(builder, sender, topic.value(), payload(), 1, 1);
  if (!msg.isOk()) std::abort();
  std::string out;
  for (auto _ : state) {
    out.clear();
    if (!encodeDeliveryTopic(target, "in1", msg.value().message(), out).isOk()) std::abort();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IotHubEncodeDelivery);

}  // namespace
}  // namespace edgehub::transports::iothub
