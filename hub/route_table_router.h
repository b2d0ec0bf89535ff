#pragma once
// RouteTableRouter: core::Router (what the engine routes with) over routing::RouteTable (the
// compiled routes of a manifest). The adapter is the only place that turns a stored flatbuffer
// message into routing's MessageView, so neither library depends on the other.
//
// Upstream per identity (issue 05): the route table has one `$upstream`; the adapter gives every
// identity of the identity config an endpoint `$upstream/{client id}` (appended after the table's
// endpoints, whose indexes are kept) and sends a message's upstream copy to its sender's, found
// from the message's origin (the authenticated connection, never the message's own claims). A
// copy larger than the upstream limit is dropped here, where the route that sent it is known,
// and logged with that route's name.
//
// Thread-safety: immutable; route() may run on many threads, each with its own context.
// Hot path: route() builds the view in the context's reused vectors and finds the sender's
// endpoint with a heterogeneous hash lookup (no allocation once warm).
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config/identities.h"
#include "core/engine/router.h"
#include "routing/route_table.h"

namespace edgehub {

// IoT Hub's device-to-cloud limit (iothub-mqtt-dialect.md section 8), counted as
// core::routedMessageSize does.
inline constexpr size_t kUpstreamMaxMessageBytes = 256 * 1024;

class RouteTableRouter final : public core::Router {
 public:
  // Without identities (or without a route INTO $upstream) there are no per-identity endpoints
  // and upstream copies are dropped as from an unknown sender.
  explicit RouteTableRouter(routing::RouteTableConstSharedPtr table, const core::IdentityConfig* identities = nullptr,
                            size_t upstream_max_bytes = kUpstreamMaxMessageBytes);

  std::unique_ptr<core::RouterContext> newContext() const override;
  uint32_t route(const fb::Message& message, core::RouterContext& context,
                 std::vector<core::RouteDestination>& out) const override;
  std::span<const core::EndpointInfo> endpoints() const override { return endpoints_; }

  // Fills `out` (cleared) with the routing view of `message`; views point into the message and
  // into the two vectors.
  static routing::MessageView viewOf(const fb::Message& message, std::vector<routing::PropertyView>& properties,
                                     std::vector<routing::PropertyView>& system);

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using IdMap = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;

  // The upstream endpoint of the message's sender; false for an unknown sender.
  bool upstreamEndpointOf(const fb::Message& message, uint32_t& endpoint) const;

  routing::RouteTableConstSharedPtr table_;
  std::vector<core::EndpointInfo> endpoints_;
  int64_t upstream_index_ = -1;  // the table's $upstream, if any route uses it
  std::string edge_device_id_;
  IdMap upstream_of_module_;  // module id (of the edge device) -> endpoint
  IdMap upstream_of_device_;  // leaf device id -> endpoint
  size_t upstream_max_bytes_;
};

}  // namespace edgehub
