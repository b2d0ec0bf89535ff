#include "core/config/manifest.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/config/json_util.h"
#include "core/identity.h"

namespace edgehub::core {
namespace {

using config_internal::childPath;
using config_internal::describeJson;
using config_internal::isBlank;
using config_internal::Json;
using config_internal::jsonInt64;

constexpr std::string_view kEdgeHubPath = "$edgeHub";
constexpr std::string_view kEdgeAgentPath = "$edgeAgent";
constexpr std::string_view kDesired = "properties.desired";
constexpr int64_t kMaxRouteTtlSecs = 4'294'967'295;

// Collects every problem of one manifest; the manifest is rejected if any was found.
class Problems {
 public:
  void add(std::string_view path, std::string_view reason) {
    lines_.push_back(std::string(path) + ": " + std::string(reason));
  }
  bool empty() const { return lines_.empty(); }
  std::string text() const { return config_internal::joinLines(lines_); }

 private:
  std::vector<std::string> lines_;
};

struct SchemaVersion {
  int major = 0;
  int minor = 0;
};

// §13.2: two to four dot-separated non-negative decimal integers; only the first two are used.
std::optional<SchemaVersion> parseSchemaVersion(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t dot = text.find('.', start);
    parts.push_back(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (parts.size() < 2 || parts.size() > 4) return std::nullopt;
  std::vector<int> numbers;
  for (std::string_view part : parts) {
    // Nine digits keep the value inside int; longer components are not versions we know anyway.
    if (part.empty() || part.size() > 9) return std::nullopt;
    int value = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + (c - '0');
    }
    numbers.push_back(value);
  }
  return SchemaVersion{numbers[0], numbers[1]};
}

// Reads an optional integer member; reports a problem and returns nullopt when it is present but
// not an integer within [lo, hi]. `range` is the wording used in the message.
std::optional<int64_t> integerMember(const Json& object, std::string_view key,
                                     std::string_view path, int64_t lo, int64_t hi,
                                     std::string_view range, Problems& problems, bool* present) {
  *present = false;
  const auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  *present = true;
  const std::string member_path = childPath(path, key);
  bool out_of_range = false;
  const std::optional<int64_t> value = jsonInt64(*it, &out_of_range);
  if (!value || *value < lo || *value > hi) {
    problems.add(member_path, "must be " + std::string(range) + ", got " + describeJson(*it));
    return std::nullopt;
  }
  return value;
}

void parseRouteObject(const Json& value, RouteSpec& spec, const std::string& path,
                      Problems& problems, bool* ok) {
  const auto route = value.find("route");
  if (route == value.end()) {
    problems.add(childPath(path, "route"), "required (the route text)");
    *ok = false;
  } else if (!route->is_string()) {
    problems.add(childPath(path, "route"), "must be a string, got " + describeJson(*route));
    *ok = false;
  } else if (isBlank(route->get_ref<const std::string&>())) {
    problems.add(childPath(path, "route"), "must not be blank");
    *ok = false;
  } else {
    spec.text = route->get<std::string>();
  }

  bool present = false;
  // A priority must be one of the eleven queues of §14: 0-9 or the default.
  const auto priority_it = value.find("priority");
  if (priority_it != value.end()) {
    bool out_of_range = false;
    const std::optional<int64_t> p = jsonInt64(*priority_it, &out_of_range);
    if (!p || !((*p >= 0 && *p <= 9) || *p == kDefaultRoutePriority)) {
      problems.add(childPath(path, "priority"),
                   "must be 0-9 or 2000000000, got " + describeJson(*priority_it));
      *ok = false;
    } else {
      spec.priority = static_cast<uint32_t>(*p);
    }
  }
  const auto ttl = integerMember(value, "timeToLiveSecs", path, 0, kMaxRouteTtlSecs,
                                 "an integer 0-4294967295", problems, &present);
  if (present && !ttl) *ok = false;
  if (ttl) spec.time_to_live_secs = static_cast<uint32_t>(*ttl);
  // Other members are ignored (§13.3).
}

void parseRoutes(const Json& desired, const SchemaVersion& version, Manifest& manifest,
                 Problems& problems) {
  const std::string routes_path = childPath(kEdgeHubPath, "routes");
  const auto routes = desired.find("routes");
  const bool v10 = version.major == 1 && version.minor == 0;
  if (routes == desired.end()) {
    if (!v10) problems.add(routes_path, "required for schemaVersion 1.1 and later");
    return;
  }
  if (!routes->is_object()) {
    problems.add(routes_path, "must be an object mapping route names to routes, got " +
                                  describeJson(*routes));
    return;
  }
  for (auto it = routes->begin(); it != routes->end(); ++it) {
    const std::string& name = it.key();
    const Json& value = it.value();
    const std::string path = childPath(routes_path, name);
    if (name.empty()) {
      problems.add(path, "route name must not be empty");
      continue;
    }
    RouteSpec spec;
    spec.name = name;
    spec.json_path = childPath("routes", name);
    if (v10) {
      // Schema 1.0 (edgeHub's RouteSpec before priorities): strings only; null and blank skipped.
      if (value.is_null()) continue;
      if (value.is_object()) {
        problems.add(path, "route objects (priority, timeToLiveSecs) require schemaVersion 1.1 or "
                           "later; schema 1.0 routes must be strings");
        continue;
      }
      if (!value.is_string()) {
        problems.add(path, "must be a string, got " + describeJson(value));
        continue;
      }
      if (isBlank(value.get_ref<const std::string&>())) continue;
      spec.text = value.get<std::string>();
      manifest.routes.push_back(std::move(spec));
      continue;
    }
    if (value.is_string()) {
      if (isBlank(value.get_ref<const std::string&>())) {
        problems.add(path, "route text must not be blank");
        continue;
      }
      spec.text = value.get<std::string>();
      manifest.routes.push_back(std::move(spec));
      continue;
    }
    if (value.is_object()) {
      bool ok = true;
      parseRouteObject(value, spec, path, problems, &ok);
      if (ok) manifest.routes.push_back(std::move(spec));
      continue;
    }
    problems.add(path, "must be a string or an object with a \"route\" member, got " +
                           describeJson(value));
  }
}

void parseStoreAndForward(const Json& desired, Manifest& manifest, Problems& problems) {
  const std::string path = childPath(kEdgeHubPath, "storeAndForwardConfiguration");
  const auto saf = desired.find("storeAndForwardConfiguration");
  if (saf == desired.end()) {
    problems.add(path, "required (an object, e.g. {\"timeToLiveSecs\": 7200})");
    return;
  }
  if (!saf->is_object()) {
    problems.add(path, "must be an object, got " + describeJson(*saf));
    return;
  }
  bool present = false;
  const auto ttl = integerMember(*saf, "timeToLiveSecs", path,
                                 std::numeric_limits<int32_t>::min(),
                                 std::numeric_limits<int32_t>::max(),
                                 "an integer -2147483648..2147483647", problems, &present);
  if (ttl) manifest.store_and_forward.time_to_live_secs = *ttl;

  const auto limits = saf->find("storeLimits");
  if (limits == saf->end()) return;
  const std::string limits_path = childPath(path, "storeLimits");
  if (!limits->is_object()) {
    problems.add(limits_path, "must be an object, got " + describeJson(*limits));
    return;
  }
  const auto size = integerMember(*limits, "maxSizeBytes", limits_path, 1,
                                  std::numeric_limits<int64_t>::max(),
                                  "a positive 64-bit integer", problems, &present);
  if (size) manifest.store_and_forward.max_size_bytes = *size;
}

// Validates a $edgeHub desired-properties object (§13).
void parseEdgeHubDesired(const Json& desired, Manifest& manifest, Problems& problems) {
  const std::string version_path = childPath(kEdgeHubPath, "schemaVersion");
  const auto version_it = desired.find("schemaVersion");
  std::optional<SchemaVersion> version;
  if (version_it == desired.end()) {
    problems.add(version_path, "required (a string such as \"1.1\")");
  } else if (!version_it->is_string()) {
    problems.add(version_path, "must be a JSON string such as \"1.1\", got " +
                                   describeJson(*version_it));
  } else {
    const std::string& text = version_it->get_ref<const std::string&>();
    version = parseSchemaVersion(text);
    if (!version) {
      problems.add(version_path, "invalid version " + describeJson(*version_it) +
                                     ": expected 2 to 4 dot-separated non-negative integers, "
                                     "e.g. \"1.1\"");
    } else if (version->major != 1 || version->minor > 3) {
      problems.add(version_path, "unsupported version " + describeJson(*version_it) +
                                     " (supported: 1.0, 1.1, 1.2, 1.3)");
      version.reset();
    } else {
      manifest.schema_version = text;
      manifest.schema_major = version->major;
      manifest.schema_minor = version->minor;
    }
  }
  // Without a known version the route rules are unknown, so routes are not checked (that would
  // only add noise); the store-and-forward section is the same in every version.
  if (version) parseRoutes(desired, *version, manifest, problems);
  parseStoreAndForward(desired, manifest, problems);
}

// Returns module["properties.desired"] when it is an object; reports otherwise. nullptr if absent
// or invalid (*present says which).
const Json* desiredOf(const Json& module, const std::string& path, Problems& problems,
                      bool* present) {
  const auto it = module.find(kDesired);
  *present = it != module.end();
  if (!*present) return nullptr;
  if (!it->is_object()) {
    problems.add(childPath(path, kDesired), "must be an object, got " + describeJson(*it));
    return nullptr;
  }
  return &*it;
}

void parseEdgeAgent(const Json& agent, Manifest& manifest, Problems& problems) {
  if (!agent.is_object()) {
    problems.add("modulesContent.$edgeAgent", "must be an object, got " + describeJson(agent));
    return;
  }
  bool present = false;
  const Json* desired = desiredOf(agent, "modulesContent.$edgeAgent", problems, &present);
  if (!present) {
    problems.add("modulesContent.$edgeAgent.properties.desired", "required");
    return;
  }
  if (desired == nullptr) return;
  const auto modules = desired->find("modules");
  if (modules == desired->end()) return;  // a deployment without user modules
  const std::string modules_path = childPath(kEdgeAgentPath, "modules");
  if (!modules->is_object()) {
    problems.add(modules_path, "must be an object mapping module ids to modules, got " +
                                   describeJson(*modules));
    return;
  }
  for (auto it = modules->begin(); it != modules->end(); ++it) {
    const std::string& name = it.key();
    const std::string path = childPath(modules_path, name);
    auto id = Identity::makeModule("d", name);
    if (!id.isOk()) {
      problems.add(path, id.status().message());
      continue;
    }
    if (name.front() == '$') {
      // '$' names are the system modules ($edgeAgent, $edgeHub), configured in systemModules.
      problems.add(path, "module ids starting with '$' are reserved for system modules");
      continue;
    }
    if (!it.value().is_object()) {
      problems.add(path, "must be an object, got " + describeJson(it.value()));
      continue;
    }
    manifest.modules.push_back(ModuleSpec{name, "{}"});
  }
}

void parseFullManifest(const Json& root, Manifest& manifest, Problems& problems) {
  const Json& content = *root.find("modulesContent");
  if (!content.is_object()) {
    problems.add("modulesContent", "must be an object, got " + describeJson(content));
    return;
  }
  const auto agent = content.find("$edgeAgent");
  if (agent != content.end()) parseEdgeAgent(*agent, manifest, problems);

  const auto hub = content.find("$edgeHub");
  if (hub == content.end()) {
    problems.add("modulesContent.$edgeHub", "required (the hub's desired properties)");
  } else if (!hub->is_object()) {
    problems.add("modulesContent.$edgeHub", "must be an object, got " + describeJson(*hub));
  } else {
    bool present = false;
    const Json* desired = desiredOf(*hub, "modulesContent.$edgeHub", problems, &present);
    if (!present) {
      problems.add("modulesContent.$edgeHub.properties.desired", "required");
    } else if (desired != nullptr) {
      parseEdgeHubDesired(*desired, manifest, problems);
    }
  }

  // Every other member of modulesContent is a module's initial twin. Content for a module that
  // $edgeAgent does not deploy is ignored, as edgeAgent does.
  for (ModuleSpec& module : manifest.modules) {
    const auto it = content.find(module.name);
    if (it == content.end()) continue;
    if (!it->is_object()) {
      problems.add(module.name, "must be an object, got " + describeJson(*it));
      continue;
    }
    bool present = false;
    const Json* desired = desiredOf(*it, module.name, problems, &present);
    if (desired != nullptr) module.desired_properties = desired->dump();
  }
}

}  // namespace

Result<Manifest> parseManifest(std::string_view json_text) {
  try {
    std::vector<std::string> duplicates;
    HUB_ASSIGN_OR_RETURN(Json root, config_internal::parseJson(json_text, kMaxManifestBytes,
                                                               "manifest", &duplicates));
    if (!root.is_object()) {
      return invalidArgument("manifest: must be a JSON object, got " + describeJson(root));
    }
    Manifest manifest;
    Problems problems;
    const bool full = root.contains("modulesContent");
    // Duplicates are reported with the same logical paths as every other problem.
    constexpr std::string_view kHubRaw = "modulesContent.$edgeHub.properties.desired";
    constexpr std::string_view kAgentRaw = "modulesContent.$edgeAgent.properties.desired";
    for (const std::string& raw : duplicates) {
      std::string path = raw;
      if (!full) {
        path = childPath(kEdgeHubPath, raw);
      } else if (raw.starts_with(kHubRaw)) {
        path = std::string(kEdgeHubPath) + raw.substr(kHubRaw.size());
      } else if (raw.starts_with(kAgentRaw)) {
        path = std::string(kEdgeAgentPath) + raw.substr(kAgentRaw.size());
      }
      problems.add(path, "duplicate member name (the later value would replace the earlier)");
    }
    if (full) {
      parseFullManifest(root, manifest, problems);
    } else {
      manifest.bare_edge_hub = true;
      parseEdgeHubDesired(root, manifest, problems);
    }
    if (!problems.empty()) return invalidArgument(problems.text());
    return manifest;
  } catch (const std::exception& e) {
    // Every access above is type-checked first; reaching this is a bug, not bad input.
    return internalError(std::string("manifest parser: unexpected exception: ") + e.what());
  }
}

Result<Manifest> loadManifestFile(const std::string& path) {
  HUB_ASSIGN_OR_RETURN(std::string text,
                       config_internal::readSmallFile(path, kMaxManifestBytes, "manifest"));
  Result<Manifest> manifest = parseManifest(text);
  if (!manifest.isOk()) {
    return Status(manifest.status().code(),
                  "manifest '" + path + "' is invalid:\n" + std::string(manifest.status().message()));
  }
  return manifest;
}

}  // namespace edgehub::core
