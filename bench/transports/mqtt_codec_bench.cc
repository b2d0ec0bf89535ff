// MQTT 3.1.1 codec benchmarks (single thread). Run:
//   build-mqtt/bench/transports_bench
// BM_DecodePublishStream decodes a 64 KiB-chunked stream of QoS 1 PUBLISH packets with a
// 100-byte payload and an IoT Hub telemetry topic; BM_MemcpyBaseline copies the same bytes in
// the same chunks, so decode/memcpy is the codec's cost relative to touching the bytes once.
#include <benchmark/benchmark.h>

#include <array>
#include <cstring>
#include <vector>

#include "transports/mqtt/decoder.h"
#include "transports/mqtt/encoder.h"

namespace edgehub::transports::mqtt {
namespace {

constexpr size_t kPackets = 4096;
constexpr size_t kChunk = 64 * 1024;  // a typical large socket read
constexpr std::string_view kTopic = "devices/dev1/modules/mod1/messages/events/";

std::vector<uint8_t> payload() { return std::vector<uint8_t>(100, 'x'); }

ByteBuffer publishStream() {
  static const std::vector<uint8_t> kPayload = payload();
  ByteBuffer out;
  for (size_t i = 0; i < kPackets; ++i) {
    Publish p{kTopic, static_cast<uint16_t>(1 + i % 65535), 1, false, false, kPayload};
    if (!appendPublish(out, p).isOk()) std::abort();
  }
  return out;
}

class CountingHandler : public PacketHandler {
 public:
  core::Status onPacket(const Packet& packet) override {
    // Touch the payload so the work cannot be elided.
    if (const auto* p = std::get_if<Publish>(&packet)) sum_ += p->payload.size() + p->packet_id;
    return core::Status::ok();
  }
  uint64_t sum_ = 0;
};

void BM_DecodePublishStream(benchmark::State& state) {
  const ByteBuffer stream = publishStream();
  CountingHandler handler;
  for (auto _ : state) {
    Decoder decoder(DecoderOptions{}, handler);
    for (size_t off = 0; off < stream.size(); off += kChunk) {
      size_t n = std::min(kChunk, stream.size() - off);
      if (!decoder.feed(std::span<const uint8_t>(stream.data() + off, n)).isOk()) std::abort();
    }
    benchmark::DoNotOptimize(handler.sum_);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kPackets));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
  state.counters["packet_bytes"] = static_cast<double>(stream.size()) / kPackets;
}
BENCHMARK(BM_DecodePublishStream);

void BM_MemcpyBaseline(benchmark::State& state) {
  const ByteBuffer stream = publishStream();
  std::vector<uint8_t> sink(kChunk);
  for (auto _ : state) {
    for (size_t off = 0; off < stream.size(); off += kChunk) {
      size_t n = std::min(kChunk, stream.size() - off);
      std::memcpy(sink.data(), stream.data() + off, n);
      benchmark::ClobberMemory();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kPackets));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_MemcpyBaseline);

// The outbound hot path: one PUBLISH header per message into a per-connection scratch buffer,
// the payload going out by writev.
void BM_EncodePublishHeader(benchmark::State& state) {
  static const std::vector<uint8_t> kPayload = payload();
  std::array<uint8_t, 128> header{};
  uint16_t id = 1;
  for (auto _ : state) {
    Publish p{kTopic, id, 1, false, false, kPayload};
    auto n = encodePublishHeader(header, p);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
    id = static_cast<uint16_t>(id == 65535 ? 1 : id + 1);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_EncodePublishHeader);

// A batch of whole PUBLISH + PUBACK packets appended to one warm buffer (the batched write).
void BM_AppendPublishBatch(benchmark::State& state) {
  static const std::vector<uint8_t> kPayload = payload();
  ByteBuffer out;
  out.reserve(64 * 200);
  for (auto _ : state) {
    out.clear();
    for (uint16_t i = 1; i <= 64; ++i) {
      if (!appendPublish(out, Publish{kTopic, i, 1, false, false, kPayload}).isOk()) std::abort();
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 64));
}
BENCHMARK(BM_AppendPublishBatch);

// Baseline for the encoders: copying the same packet's header bytes.
void BM_MemcpyHeaderBaseline(benchmark::State& state) {
  static const std::vector<uint8_t> kPayload = payload();
  std::array<uint8_t, 128> src{};
  auto n = encodePublishHeader(src, Publish{kTopic, 1, 1, false, false, kPayload});
  if (!n.isOk()) std::abort();
  const size_t len = *n;
  std::array<uint8_t, 128> dst{};
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), len);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MemcpyHeaderBaseline);

}  // namespace
}  // namespace edgehub::transports::mqtt
