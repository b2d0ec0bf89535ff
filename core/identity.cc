#include "core/identity.h"

#include <string>
#include <utility>

namespace edgehub::core {
namespace {

constexpr size_t kMaxIdLength = 128;
constexpr std::string_view kDevicePrefix = "/devices/";
constexpr std::string_view kModulesInfix = "/modules/";

// IoT Hub's id alphabet: ASCII letters, digits and these punctuation characters. Everything else
// (in particular '/', whitespace, control characters and non-ASCII bytes) is rejected, because
// ids appear unescaped in topics, client ids and connection strings.
bool isIdChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-': case '.': case '%': case '_': case '*': case '?': case '!': case '(': case ')':
    case ',': case ':': case '=': case '@': case '$': case '\'': case '#': case '+':
      return true;
    default:
      return false;
  }
}

bool hasValidIdChars(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    if (!isIdChar(c)) return false;
  }
  return true;
}

// A printable rendering of an id for error messages: outside input may contain control bytes,
// which must not reach logs raw.
std::string quoted(std::string_view id) {
  constexpr size_t kShown = 160;
  std::string out = "'";
  for (size_t i = 0; i < id.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'') {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (id.size() > kShown) out += "...";
  out += "'";
  return out;
}

Status checkDeviceId(std::string_view id) {
  if (Identity::isValidDeviceId(id)) return Status::ok();
  if (id.empty()) return invalidArgument("device id must not be empty");
  if (id.size() > kMaxIdLength) {
    return invalidArgument("device id is longer than 128 characters (" +
                           std::to_string(id.size()) + ")");
  }
  if (id.front() == '$' && hasValidIdChars(id)) {
    return invalidArgument("invalid device id " + quoted(id) +
                           ": only module ids may start with '$'");
  }
  return invalidArgument("invalid device id " + quoted(id) +
                         ": allowed are ASCII letters, digits and -.%_*?!(),:=@$'#+");
}

Status checkModuleId(std::string_view id) {
  if (Identity::isValidModuleId(id)) return Status::ok();
  if (id.empty()) return invalidArgument("module id must not be empty");
  if (id.size() > kMaxIdLength) {
    return invalidArgument("module id is longer than 128 characters (" +
                           std::to_string(id.size()) + ")");
  }
  return invalidArgument("invalid module id " + quoted(id) +
                         ": allowed are ASCII letters, digits and -.%_*?!(),:=@$'#+");
}

}  // namespace

Identity Identity::device(std::string device_id) {
  HUB_ASSERT(isValidDeviceId(device_id), "Identity::device: invalid device id");
  return Identity(std::move(device_id), std::string());
}

Identity Identity::module(std::string device_id, std::string module_id) {
  HUB_ASSERT(isValidDeviceId(device_id), "Identity::module: invalid device id");
  HUB_ASSERT(isValidModuleId(module_id), "Identity::module: invalid module id");
  return Identity(std::move(device_id), std::move(module_id));
}

Result<Identity> Identity::makeDevice(std::string_view device_id) {
  HUB_RETURN_IF_ERROR(checkDeviceId(device_id));
  return Identity(std::string(device_id), std::string());
}

Result<Identity> Identity::makeModule(std::string_view device_id, std::string_view module_id) {
  HUB_RETURN_IF_ERROR(checkDeviceId(device_id));
  HUB_RETURN_IF_ERROR(checkModuleId(module_id));
  return Identity(std::string(device_id), std::string(module_id));
}

Result<Identity> Identity::parse(std::string_view path) {
  if (!path.starts_with(kDevicePrefix)) {
    return invalidArgument("identity path " + quoted(path) + " does not start with /devices/");
  }
  std::string_view rest = path.substr(kDevicePrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return makeDevice(rest);
  const std::string_view device_id = rest.substr(0, slash);
  rest = rest.substr(slash);
  if (!rest.starts_with(kModulesInfix)) {
    return invalidArgument("identity path " + quoted(path) +
                           " is neither /devices/{d} nor /devices/{d}/modules/{m}");
  }
  // A '/' inside the module part is rejected by the module id check.
  return makeModule(device_id, rest.substr(kModulesInfix.size()));
}

Result<Identity> Identity::parseClientId(std::string_view client_id) {
  const size_t slash = client_id.find('/');
  if (slash == std::string_view::npos) return makeDevice(client_id);
  // Exactly one '/' separates device and module; a second one fails the module id check.
  return makeModule(client_id.substr(0, slash), client_id.substr(slash + 1));
}

bool Identity::isValidDeviceId(std::string_view id) {
  // '$' names are reserved for system modules ($edgeHub, $edgeAgent); a device id starting with
  // '$' would be confusable with them in client ids and logs.
  return hasValidIdChars(id) && id.front() != '$';
}

bool Identity::isValidModuleId(std::string_view id) { return hasValidIdChars(id); }

std::string Identity::toString() const {
  std::string out(kDevicePrefix);
  out += device_id_;
  if (!module_id_.empty()) {
    out += kModulesInfix;
    out += module_id_;
  }
  return out;
}

std::string Identity::clientId() const {
  if (module_id_.empty()) return device_id_;
  return device_id_ + "/" + module_id_;
}

}  // namespace edgehub::core
