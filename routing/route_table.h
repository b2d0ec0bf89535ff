#pragma once
// RouteTable: every route of a manifest, compiled together, indexed by source (§3, §14).
//
// For a message, route() yields the set of (endpoint, priority, TTL): each endpoint at most once,
// with the smallest priority number among the matching routes to it and, among routes sharing
// that priority, the longest effective TTL (infinite is longest).
//
// Index: routes are grouped by their folded route prefix; a message only evaluates the groups
// whose prefix is one of the segment prefixes of its source path ("/", "/messages/",
// "/messages/modules/", "/messages/modules/m1/", ...), found by hash lookup.
//
// Usage on the hot path (per evaluating thread):
//   thread_local EvalContext ctx; thread_local RouteResults results;   // reused, no allocation
//   RouteTableConstSharedPtr table = current();                        // snapshot
//   table->route(view, ctx, results);
//   for (const RouteMatch& m : results.matches()) enqueue(table->endpoint(m.endpoint), m.priority, m.ttl_secs);
//
// Thread-safety: immutable once built; route() may be called concurrently from many threads,
// each with its own EvalContext and RouteResults. A new manifest builds a new table, swapped in
// as a whole (shared_ptr<const RouteTable> snapshots).
// Ownership: the table owns its compiled routes; RouteResults refer to endpoints by index.
// Hot/cold: build() cold, route() hot.
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/manifest.h"
#include "core/status.h"
#include "routing/body_scan.h"
#include "routing/endpoint.h"
#include "routing/eval_context.h"
#include "routing/message_view.h"
#include "routing/parser.h"

namespace edgehub::routing {

// Effective TTL meaning "never expires".
inline constexpr int64_t kTtlInfinite = std::numeric_limits<int64_t>::max();

// §14.4: the route's TTL if non-zero, else the global one (negative = infinite, 0 = expire now).
int64_t effectiveTtl(uint32_t route_ttl_secs, int64_t global_ttl_secs);

struct RouteMatch {
  uint32_t endpoint = 0;  // index into RouteTable::endpoints()
  uint32_t priority = core::kDefaultRoutePriority;
  int64_t ttl_secs = 0;   // effective TTL; kTtlInfinite for no expiry
  uint32_t route = 0;     // index of the winning route in RouteTable::routes()
};

// Caller-provided, reusable result container (keeps its capacity between messages).
class RouteResults {
 public:
  std::span<const RouteMatch> matches() const { return {buffer_.data(), count_}; }
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
  void clear();

 private:
  friend class RouteTable;
  static constexpr uint32_t kNoMatch = std::numeric_limits<uint32_t>::max();
  // The matches are buffer_[0, count_). A message matches each endpoint at most once, so route()
  // sizes the buffer to the table's endpoint count up front and the route loop appends without a
  // capacity check; both vectors only grow, to the largest table routed with, so they allocate
  // only while warming up.
  std::vector<RouteMatch> buffer_;
  size_t count_ = 0;
  // buffer_ index of each endpoint index of the current message's matches, kNoMatch for the
  // others: merging a matching route is one load instead of a scan of the matches. clear()
  // resets the entries of the current matches only (cost per match, not per endpoint).
  std::vector<uint32_t> match_of_endpoint_;
  std::string path_;  // scratch: folded source path of the current message
};

struct RouteEntry {
  std::string name;        // key in the manifest's routes
  CompiledRoute compiled;
  uint32_t priority = core::kDefaultRoutePriority;
  uint32_t time_to_live_secs = 0;  // as configured (0 = inherit)
  int64_t effective_ttl_secs = 0;
  uint32_t endpoint = 0;   // index into endpoints()
  std::string prefix_key;  // folded route prefix
};

struct RouteCompileError {
  std::string route_name;
  std::string json_path;
  RouteError error;

  // "route '<name>' L:C: reason"
  std::string toString() const;
};

class RouteTable;
using RouteTableConstSharedPtr = std::shared_ptr<const RouteTable>;

class RouteTable {
 public:
  // Compiles every route. Any failing route rejects the whole table: the Status
  // (kInvalidArgument) lists every failing route, one per line; *errors gets them structured.
  static core::Result<RouteTableConstSharedPtr> build(const core::Manifest& manifest,
                                                      std::vector<RouteCompileError>* errors = nullptr);
  static core::Result<RouteTableConstSharedPtr> build(std::span<const core::RouteSpec> routes,
                                                      int64_t global_ttl_secs,
                                                      std::vector<RouteCompileError>* errors = nullptr);

  // Clears `out` and fills it with one entry per endpoint the message is routed to.
  void route(const MessageView& message, EvalContext& ctx, RouteResults& out) const;

  std::span<const Endpoint> endpoints() const { return endpoints_; }
  const Endpoint& endpoint(uint32_t index) const { return endpoints_[index]; }
  std::span<const RouteEntry> routes() const { return routes_; }
  int64_t globalTtlSecs() const { return global_ttl_secs_; }

  // The message source path of §3.3 ("/messages/modules/m1/outputs/o1"), unfolded.
  static std::string sourcePath(const MessageView& message);
  // Whether a route prefix (§3.2) matches a message source path (§3.4).
  static bool sourceMatches(std::string_view route_prefix, std::string_view source_path);

 private:
  RouteTable() = default;
  void buildIndex();
  void evaluateGroup(uint32_t group, const MessageView& message, EvalContext& ctx,
                     RouteResults& out) const;

  // A route as its group evaluates it: everything the loop needs in one record, read in route
  // order, instead of a hop through RouteEntry and its CompiledCondition per route.
  struct GroupRoute {
    enum class Check : uint8_t { kAlways, kBodyTests, kProgram };
    Check check = Check::kProgram;
    RouteMatch match;  // what the route contributes when it fires
    const CompiledCondition* condition = nullptr;  // into routes_ (final once built)
    BodyTestForm tests;  // kBodyTests: a copy of the condition's bound form
  };
  struct Group {
    std::string key;  // folded prefix
    std::vector<GroupRoute> routes;
    bool shadowable = false;  // some route's body-test form is shadowable (§8.4)
    // When source_depth_ is 1: bit 0, the group matches every non-twin message ("/" or
    // "/messages/"); bit 1, every twin change notification ("/" or "/twinchangenotifications/").
    uint8_t depth1_classes = 0;
  };
  std::vector<RouteEntry> routes_;
  // Every $body path of every route, so that a message's body is scanned once for all of them.
  // The table is never moved after build(), so the conditions' pointers to it stay valid.
  BodyPlan body_plan_;
  std::vector<Endpoint> endpoints_;
  std::vector<Group> groups_;
  // The hot lookup of groups by key: open addressing (at most half full) by FNV-1a of the key,
  // which route() computes incrementally along the message's path, so that its segment prefixes
  // cost one pass instead of one std::hash of every prefix.
  struct GroupSlot {
    uint64_t hash = 0;
    uint32_t group = std::numeric_limits<uint32_t>::max();  // none
  };
  std::vector<GroupSlot> group_slots_;
  int64_t global_ttl_secs_ = core::kDefaultGlobalTtlSecs;
  // How much of the source path the groups need: 0 none (only "/"), 1 whether it is a twin
  // change notification, 2 the full path. Saves the system-property scans when not needed.
  int source_depth_ = 0;
};

}  // namespace edgehub::routing
