#pragma once
// Router: what the engine needs from routing, as an interface, so that core/ does not depend on
// routing/ (the composition root adapts routing::RouteTable to it).
//
// Thread-safety: a Router is immutable once built; route() may run concurrently on several
// threads, each with its own RouterContext (newContext()). A manifest reload builds a new Router.
// Ownership: shared (std::shared_ptr<const Router>); contexts are owned by their thread's shard.
// Hot/cold: route() is hot (per message), the rest cold.
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/message/message.h"

namespace edgehub::core {

// Priority classes of an endpoint queue: the manifest's priorities 0-9, and the default
// priority (routes without one), which routing-language.md §14.2 puts below 9.
inline constexpr uint8_t kPriorityClasses = 11;
inline constexpr uint8_t kDefaultPriorityClass = 10;
inline constexpr int64_t kNoExpiry = std::numeric_limits<int64_t>::max();

// One endpoint of the route table (routing-language.md §4).
//
// `$upstream` is one endpoint in the route table but many here: messages go to the cloud under
// their sender's identity (issue 05), so the router gives each sending identity an upstream
// endpoint of its own (`$upstream/{client id}`, its own durable queue and order), homed on that
// identity's shard. The manifest's plain `$upstream` stays in the list (its index is the route
// table's) but nothing is routed to it.
struct EndpointInfo {
  enum class Kind : uint8_t { kUpstream, kModuleInput };
  Kind kind = Kind::kUpstream;
  std::string module_id;  // kModuleInput: the target module (of the edge device)
  std::string input;      // kModuleInput: the input name
  std::string client_id;  // kUpstream: the sender ("{d}/{m}" or "{d}"); empty for the plain $upstream
  std::string name;       // `$upstream`, `$upstream/{client id}` or `BrokeredEndpoint("/modules/m/inputs/i")`
};

// The mailbox of an identity's upstream endpoint is kUpstreamMailboxPrefix + client id (a module's
// own inputs are under its bare client id).
inline constexpr std::string_view kUpstreamMailboxPrefix = "$upstream/";

// Where one message goes: an endpoint index, a priority class and a TTL.
struct RouteDestination {
  uint32_t endpoint = 0;
  uint8_t priority_class = kDefaultPriorityClass;
  int64_t ttl_secs = 0;  // effective TTL; std::numeric_limits<int64_t>::max() = never expires
};

class RouterContext {
 public:
  virtual ~RouterContext() = default;
};

class Router {
 public:
  virtual ~Router() = default;
  // Per-thread evaluation state.
  virtual std::unique_ptr<RouterContext> newContext() const = 0;
  // Clears `out` and fills it with the message's destinations, each endpoint at most once.
  // Returns the upstream copies it dropped: larger than the upstream limit (logged with the
  // route's name) or from a sender without an identity.
  virtual uint32_t route(const fb::Message& message, RouterContext& context,
                         std::vector<RouteDestination>& out) const = 0;
  virtual std::span<const EndpointInfo> endpoints() const = 0;
};

}  // namespace edgehub::core
