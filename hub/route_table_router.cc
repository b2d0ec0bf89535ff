#include "hub/route_table_router.h"

#include "core/log/logger.h"

namespace edgehub {

namespace {

struct Context final : core::RouterContext {
  routing::EvalContext eval;
  routing::RouteResults results;
  std::vector<routing::PropertyView> properties;
  std::vector<routing::PropertyView> system;
};

constexpr std::string_view kLog = "routing";

std::string_view view(const flatbuffers::String* s) { return s == nullptr ? std::string_view() : s->string_view(); }

void appendProperties(const flatbuffers::Vector<flatbuffers::Offset<fb::Property>>* props,
                      std::vector<routing::PropertyView>& out) {
  if (props == nullptr) return;
  for (const fb::Property* p : *props) {
    out.push_back(routing::PropertyView{view(p->name()), view(p->value()), p->value() == nullptr});
  }
}

}  // namespace

RouteTableRouter::RouteTableRouter(routing::RouteTableConstSharedPtr table, const core::IdentityConfig* identities,
                                   size_t upstream_max_bytes)
    : table_(std::move(table)), upstream_max_bytes_(upstream_max_bytes) {
  for (const routing::Endpoint& e : table_->endpoints()) {
    core::EndpointInfo info;
    info.kind = e.isUpstream() ? core::EndpointInfo::Kind::kUpstream : core::EndpointInfo::Kind::kModuleInput;
    info.module_id = e.moduleId();
    info.input = e.inputName();
    info.name = e.toString();
    if (e.isUpstream()) upstream_index_ = static_cast<int64_t>(endpoints_.size());
    endpoints_.push_back(std::move(info));
  }
  if (upstream_index_ < 0 || identities == nullptr) return;
  edge_device_id_ = identities->device_id;
  for (const core::IdentityEntry& entry : identities->identities) {
    const core::Identity& id = entry.identity;
    core::EndpointInfo info;
    info.kind = core::EndpointInfo::Kind::kUpstream;
    info.client_id = id.clientId();
    info.name = std::string(core::kUpstreamMailboxPrefix) + info.client_id;
    const auto index = static_cast<uint32_t>(endpoints_.size());
    if (id.isModule()) {
      upstream_of_module_.emplace(id.moduleId(), index);
    } else {
      upstream_of_device_.emplace(id.deviceId(), index);
    }
    endpoints_.push_back(std::move(info));
  }
}

bool RouteTableRouter::upstreamEndpointOf(const fb::Message& message, uint32_t& endpoint) const {
  const fb::Origin* origin = message.origin();
  const std::string_view device = view(origin->device_id());
  const IdMap* map = &upstream_of_device_;
  std::string_view key = device;
  if (origin->kind() == fb::IdentityKind::Module) {
    // Only modules of this edge device connect (dialect section 11.3.5).
    if (device != edge_device_id_ || origin->module_id() == nullptr) return false;
    map = &upstream_of_module_;
    key = view(origin->module_id());
  }
  auto it = map->find(key);
  if (it == map->end()) return false;
  endpoint = it->second;
  return true;
}

std::unique_ptr<core::RouterContext> RouteTableRouter::newContext() const { return std::make_unique<Context>(); }

routing::MessageView RouteTableRouter::viewOf(const fb::Message& message, std::vector<routing::PropertyView>& properties,
                                              std::vector<routing::PropertyView>& system) {
  properties.clear();
  system.clear();
  appendProperties(message.properties(), properties);
  for (size_t f = 0; f < static_cast<size_t>(core::SystemField::kCount); ++f) {
    const auto field = static_cast<core::SystemField>(f);
    if (auto v = core::systemFieldValue(message, field)) {
      system.push_back(routing::PropertyView{core::systemFieldName(field), *v, false});
    }
  }
  appendProperties(message.system()->extra(), system);
  routing::MessageView v;
  v.properties = properties;
  v.system_properties = system;
  if (const auto* body = message.body()) v.body = std::span<const uint8_t>(body->data(), body->size());
  return v;
}

uint32_t RouteTableRouter::route(const fb::Message& message, core::RouterContext& context,
                                 std::vector<core::RouteDestination>& out) const {
  auto& ctx = static_cast<Context&>(context);
  const routing::MessageView v = viewOf(message, ctx.properties, ctx.system);
  table_->route(v, ctx.eval, ctx.results);
  out.clear();
  uint32_t dropped = 0;
  for (const routing::RouteMatch& m : ctx.results.matches()) {
    const uint8_t priority_class =
        m.priority <= 9 ? static_cast<uint8_t>(m.priority) : core::kDefaultPriorityClass;
    uint32_t endpoint = m.endpoint;
    if (static_cast<int64_t>(m.endpoint) == upstream_index_) {
      const size_t size = core::routedMessageSize(message);
      if (size > upstream_max_bytes_) {
        const fb::Origin* o = message.origin();
        HUB_LOG_WARN(kLog, "route '%s': dropped a %zu-byte message from %s%s%s for $upstream (limit %zu bytes)",
                     table_->routes()[m.route].name.c_str(), size, o->device_id()->c_str(), o->module_id() ? "/" : "",
                     o->module_id() ? o->module_id()->c_str() : "", upstream_max_bytes_);
        ++dropped;
        continue;
      }
      if (!upstreamEndpointOf(message, endpoint)) {
        // No identity to send it as. Connected senders always have one (the router is built from
        // the identities they authenticate against); kept as a guard, counted with the drops.
        HUB_LOG_WARN(kLog, "route '%s': dropped a message for $upstream from a sender without an identity",
                     table_->routes()[m.route].name.c_str());
        ++dropped;
        continue;
      }
    }
    out.push_back(core::RouteDestination{endpoint, priority_class, m.ttl_secs});
  }
  return dropped;
}

}  // namespace edgehub
