#pragma once
// Three assertion tiers (style rule 12):
//  - HUB_ASSERT(cond, msg): a debug-only invariant; compiled out in release builds.
//  - HUB_RELEASE_ASSERT(cond, msg): an unrecoverable invariant; aborts in every build.
//  - HUB_BUG(msg): "cannot happen" on a path we can survive: logs and counts in release,
//    aborts in debug so tests catch it.
// Thread-safety: all are safe from any thread.
#include <cstdint>

namespace edgehub::core {
[[noreturn]] void assertFailed(const char* file, int line, const char* cond, const char* msg) noexcept;
void reportBug(const char* file, int line, const char* msg) noexcept;
// Number of HUB_BUG hits since start (exported as a metric).
uint64_t bugCount() noexcept;
}  // namespace edgehub::core

#define HUB_RELEASE_ASSERT(cond, msg) \
  ((cond) ? (void)0 : ::edgehub::core::assertFailed(__FILE__, __LINE__, #cond, msg))

#ifdef NDEBUG
#define HUB_ASSERT(cond, msg) ((void)0)
#else
#define HUB_ASSERT(cond, msg) HUB_RELEASE_ASSERT(cond, msg)
#endif

#define HUB_BUG(msg) ::edgehub::core::reportBug(__FILE__, __LINE__, msg)
