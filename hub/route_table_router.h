#pragma once
// RouteTableRouter: core::Router (what the engine routes with) over routing::RouteTable (the
// compiled routes of a manifest). The adapter is the only place that turns a stored flatbuffer
// message into routing's MessageView, so neither library depends on the other.
//
// Thread-safety: immutable; route() may run on many threads, each with its own context.
// Hot path: route() builds the view in the context's reused vectors (no allocation once warm).
#include <memory>
#include <vector>

#include "core/engine/router.h"
#include "routing/route_table.h"

namespace edgehub {

class RouteTableRouter final : public core::Router {
 public:
  explicit RouteTableRouter(routing::RouteTableConstSharedPtr table);

  std::unique_ptr<core::RouterContext> newContext() const override;
  void route(const fb::Message& message, core::RouterContext& context,
             std::vector<core::RouteDestination>& out) const override;
  std::span<const core::EndpointInfo> endpoints() const override { return endpoints_; }

  // Fills `out` (cleared) with the routing view of `message`; views point into the message and
  // into the two vectors.
  static routing::MessageView viewOf(const fb::Message& message, std::vector<routing::PropertyView>& properties,
                                     std::vector<routing::PropertyView>& system);

 private:
  routing::RouteTableConstSharedPtr table_;
  std::vector<core::EndpointInfo> endpoints_;
};

}  // namespace edgehub
