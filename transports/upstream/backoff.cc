#include "transports/upstream/backoff.h"

#include <algorithm>

namespace edgehub::transports::upstream {

double Backoff::uniform() {
  // xorshift64*: plenty for jitter, deterministic per seed.
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  const uint64_t r = state_ * 0x2545F4914F6CDD1DULL;
  return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
}

std::chrono::milliseconds Backoff::next() {
  const double initial = static_cast<double>(std::max<int64_t>(1, policy_.initial.count()));
  const double cap = static_cast<double>(std::max(policy_.max.count(), policy_.initial.count()));
  double base = initial;
  for (uint32_t i = 0; i < failures_ && base < cap; ++i) base *= 2;
  base = std::min(base, cap);
  if (failures_ < 64) ++failures_;
  const double j = std::clamp(policy_.jitter, 0.0, 1.0);
  const double factor = 1.0 - j + 2.0 * j * uniform();
  return std::chrono::milliseconds(static_cast<int64_t>(base * factor));
}

}  // namespace edgehub::transports::upstream
