#pragma once
// The load generator's message header: the first kPayloadHeaderSize bytes of every payload.
//   offset 0  u32 publisher index
//   offset 4  u32 reserved (0)
//   offset 8  u64 sequence number (0, 1, 2, ... per publisher)
//   offset 16 u64 send time, ns of std::chrono::steady_clock (CLOCK_MONOTONIC)
// Host byte order: sender and receiver are the same process, so no conversion is needed.
// The rest of the payload is filler.
//
// Thread-safety: pure functions. Ownership: none.
#include <chrono>
#include <cstdint>
#include <cstring>

namespace edgehub::bench {

inline constexpr size_t kPayloadHeaderSize = 24;

struct PayloadHeader {
  uint32_t publisher = 0;
  uint64_t sequence = 0;
  uint64_t send_ns = 0;
};

inline void writePayloadHeader(uint8_t* out, const PayloadHeader& h) {
  const uint32_t reserved = 0;
  std::memcpy(out, &h.publisher, 4);
  std::memcpy(out + 4, &reserved, 4);
  std::memcpy(out + 8, &h.sequence, 8);
  std::memcpy(out + 16, &h.send_ns, 8);
}

// REQUIRES: at least kPayloadHeaderSize readable bytes.
inline PayloadHeader readPayloadHeader(const uint8_t* in) {
  PayloadHeader h;
  std::memcpy(&h.publisher, in, 4);
  std::memcpy(&h.sequence, in + 8, 8);
  std::memcpy(&h.send_ns, in + 16, 8);
  return h;
}

inline uint64_t monotonicNowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace edgehub::bench
