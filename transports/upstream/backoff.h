#pragma once
// Backoff: bounded exponential reconnect delays with jitter.
//
//   delay(n) = min(max, initial * 2^n) * U(1 - jitter, 1 + jitter),  n = failures so far
//
// The jitter keeps many identities that lost the link at the same instant from reconnecting
// in lock step (IoT Hub throttles new connections per second, dialect doc section 10.4). The
// random source is a small deterministic generator seeded by the caller, so tests reproduce.
//
// Thread-safety: a value type; one object per connection, used on its loop.
#include <chrono>
#include <cstdint>

namespace edgehub::transports::upstream {

struct BackoffPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{30'000};
  double jitter = 0.2;  // +-20%
};

class Backoff {
 public:
  Backoff(BackoffPolicy policy, uint64_t seed) : policy_(policy), state_(seed | 1) {}

  // The delay before the next attempt; counts one more failure.
  std::chrono::milliseconds next();
  // Back to `initial` (after a successful connect, or when the network is known to be back).
  void reset() { failures_ = 0; }
  uint32_t failures() const { return failures_; }
  const BackoffPolicy& policy() const { return policy_; }

 private:
  double uniform();  // [0, 1)

  BackoffPolicy policy_;
  uint64_t state_;
  uint32_t failures_ = 0;
};

}  // namespace edgehub::transports::upstream
