#pragma once
// Helpers shared by the routing tests: an owning message builder and one-line evaluation.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "routing/eval_context.h"
#include "routing/message_view.h"
#include "routing/parser.h"
#include "routing/value.h"

namespace edgehub::routing::testing {

// Concatenation by append: GCC 12 reports a false -Wrestrict on `"x" + std::string(...)`.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

struct Prop {
  std::string name;
  std::string value;
  bool is_null = false;
};

// Owns the strings a MessageView points to. Not copyable once a view was taken.
class TestMessage {
 public:
  TestMessage& prop(std::string n, std::string v) {
    props_.push_back({std::move(n), std::move(v), false});
    return *this;
  }
  TestMessage& nullProp(std::string n) {
    props_.push_back({std::move(n), "", true});
    return *this;
  }
  TestMessage& sys(std::string n, std::string v) {
    sys_.push_back({std::move(n), std::move(v), false});
    return *this;
  }
  TestMessage& body(std::string b) {
    body_.assign(b.begin(), b.end());
    return *this;
  }
  TestMessage& bodyBytes(std::vector<uint8_t> b) {
    body_ = std::move(b);
    return *this;
  }
  TestMessage& json(std::string b) {
    sys("contentType", "application/json");
    sys("contentEncoding", "utf-8");
    return body(std::move(b));
  }
  MessageView view() {
    pv_.clear();
    sv_.clear();
    for (auto& p : props_) pv_.push_back({p.name, p.value, p.is_null});
    for (auto& p : sys_) sv_.push_back({p.name, p.value, p.is_null});
    MessageView v;
    v.properties = pv_;
    v.system_properties = sv_;
    v.body = body_;
    return v;
  }

 private:
  std::vector<Prop> props_;
  std::vector<Prop> sys_;
  std::vector<uint8_t> body_;
  std::vector<PropertyView> pv_;
  std::vector<PropertyView> sv_;
};

// "true"/"false"/"undefined", or "error: L:C: reason" (positions within the full route).
inline std::string evalCondition(const std::string& condition, TestMessage& msg) {
  auto r = compileRoute("FROM /* WHERE " + condition + " INTO $upstream");
  if (!r.isOk()) return "error: " + std::string(r.status().message());
  EvalContext ctx;
  const MessageView v = msg.view();
  ctx.beginMessage(v);
  return std::string(triStateName(r->condition.evaluate(v, ctx)));
}

inline std::string evalCondition(const std::string& condition) {
  TestMessage m;
  return evalCondition(condition, m);
}

// The error text of a route ("L:C: reason"), or "ok".
inline std::string routeError(const std::string& route) {
  auto r = compileRoute(route);
  return r.isOk() ? "ok" : std::string(r.status().message());
}

}  // namespace edgehub::routing::testing
