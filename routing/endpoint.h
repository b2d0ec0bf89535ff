#pragma once
// Endpoint identity (routing-language.md §4): `$upstream`, or a module input identified by the
// case-sensitive pair (module id, input name).
//
// Thread-safety: value type. Ownership: owns its strings.
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace edgehub::routing {

class Endpoint {
 public:
  enum class Kind : unsigned char { kUpstream, kModuleInput };

  Endpoint() : kind_(Kind::kUpstream) {}  // $upstream

  static Endpoint upstream() { return Endpoint(Kind::kUpstream, {}, {}); }
  static Endpoint moduleInput(std::string module_id, std::string input_name) {
    return Endpoint(Kind::kModuleInput, std::move(module_id), std::move(input_name));
  }

  Kind kind() const { return kind_; }
  bool isUpstream() const { return kind_ == Kind::kUpstream; }
  const std::string& moduleId() const { return module_id_; }
  const std::string& inputName() const { return input_name_; }

  // Canonical form: `$upstream` or `BrokeredEndpoint("/modules/<module>/inputs/<input>")`.
  std::string toString() const;

  friend bool operator==(const Endpoint& a, const Endpoint& b) {
    return a.kind_ == b.kind_ && a.module_id_ == b.module_id_ && a.input_name_ == b.input_name_;
  }

 private:
  Endpoint(Kind kind, std::string module_id, std::string input_name)
      : kind_(kind), module_id_(std::move(module_id)), input_name_(std::move(input_name)) {}

  Kind kind_;
  std::string module_id_;
  std::string input_name_;
};

struct EndpointHash {
  size_t operator()(const Endpoint& e) const {
    return std::hash<std::string>()(e.moduleId()) * 31 + std::hash<std::string>()(e.inputName()) +
           static_cast<size_t>(e.kind());
  }
};

}  // namespace edgehub::routing
