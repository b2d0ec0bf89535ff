#include "hub/route_table_router.h"

namespace edgehub {

namespace {

struct Context final : core::RouterContext {
  routing::EvalContext eval;
  routing::RouteResults results;
  std::vector<routing::PropertyView> properties;
  std::vector<routing::PropertyView> system;
};

std::string_view view(const flatbuffers::String* s) { return s == nullptr ? std::string_view() : s->string_view(); }

void appendProperties(const flatbuffers::Vector<flatbuffers::Offset<fb::Property>>* props,
                      std::vector<routing::PropertyView>& out) {
  if (props == nullptr) return;
  for (const fb::Property* p : *props) {
    out.push_back(routing::PropertyView{view(p->name()), view(p->value()), p->value() == nullptr});
  }
}

}  // namespace

RouteTableRouter::RouteTableRouter(routing::RouteTableConstSharedPtr table) : table_(std::move(table)) {
  for (const routing::Endpoint& e : table_->endpoints()) {
    core::EndpointInfo info;
    info.kind = e.isUpstream() ? core::EndpointInfo::Kind::kUpstream : core::EndpointInfo::Kind::kModuleInput;
    info.module_id = e.moduleId();
    info.input = e.inputName();
    info.name = e.toString();
    endpoints_.push_back(std::move(info));
  }
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

void RouteTableRouter::route(const fb::Message& message, core::RouterContext& context,
                             std::vector<core::RouteDestination>& out) const {
  auto& ctx = static_cast<Context&>(context);
  const routing::MessageView v = viewOf(message, ctx.properties, ctx.system);
  table_->route(v, ctx.eval, ctx.results);
  out.clear();
  for (const routing::RouteMatch& m : ctx.results.matches()) {
    const uint8_t priority_class =
        m.priority <= 9 ? static_cast<uint8_t>(m.priority) : core::kDefaultPriorityClass;
    out.push_back(core::RouteDestination{m.endpoint, priority_class, m.ttl_secs});
  }
}

}  // namespace edgehub
