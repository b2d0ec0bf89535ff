#pragma once
// HostLookup: resolves a host name off the loop thread and reports the outcome on it.
//
// Why not uv_getaddrinfo: on an offline gateway a DNS query can hang for the resolver's whole
// timeout (seconds, per attempt). On libuv's thread pool such a query cannot be cancelled once
// it runs, and the loop cannot close while it is in flight, so stopping the hub would wait for
// it. A HostLookup runs its query on a detached thread of its own and is simply abandoned when
// its owner no longer wants the answer. Lookups are rare (one per upstream connection attempt).
//
// Thread-safety: start() and the destructor REQUIRE: on the loop thread. The resolve function
// runs on the lookup's own thread; it must not touch loop objects.
// Ownership: the caller owns the HostLookup; it must be destroyed before its Loop is closed
// (the thread posts to the loop until then). The thread owns a copy of the host name.
// Callbacks: `done` runs on the loop thread, at most once, never after the destructor; it may
// destroy the HostLookup. If the loop's post queue is full, `done` never runs (the caller's own
// deadline must cover that, as it covers a lookup that never returns).
#include <functional>
#include <memory>
#include <string>

#include "core/loop/loop.h"
#include "core/status.h"

namespace edgehub::core {

class HostLookup {
 public:
  // Looks the name up; OK if it has at least one address. Runs off the loop thread.
  using ResolveFn = std::function<Status(const std::string& host)>;
  using DoneFn = std::function<void(const Status&)>;

  // getaddrinfo(3) for a stream socket of any family. kUnavailable naming the host and the
  // resolver's reason when there is no address.
  static Status resolveWithGetaddrinfo(const std::string& host);

  // Starts the lookup (resolve empty: resolveWithGetaddrinfo). kResourceExhausted if no thread
  // could be started; `done` is then never called.
  static Result<std::unique_ptr<HostLookup>> start(Loop& loop, std::string host, ResolveFn resolve, DoneFn done);

  ~HostLookup();  // abandons the lookup: `done` will not run
  HostLookup(const HostLookup&) = delete;
  HostLookup& operator=(const HostLookup&) = delete;

 private:
  struct Shared;
  explicit HostLookup(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  std::shared_ptr<Shared> shared_;
};

// True for an IPv4 or IPv6 literal, which needs no lookup.
bool isIpLiteral(const std::string& host);

}  // namespace edgehub::core
