#pragma once
// Deployment manifest loading (routing-language.md §13).
//
// Accepts either a full deployment manifest ({"modulesContent": {"$edgeAgent": ..., "$edgeHub":
// ..., "<module>": ...}}) or a bare $edgeHub desired-properties object ({"schemaVersion": ...,
// "routes": ..., "storeAndForwardConfiguration": ...}). The manifest is validated as a whole:
// any error rejects it, and the error lists every problem found with its JSON location.
//
// Route *texts* are only extracted here; compiling them is routing/'s job (issue 02), so a
// manifest whose routes are syntactically wrong still loads at this layer.
//
// Thread-safety: the functions are pure; the returned values are plain data.
// Hot/cold: cold (runs at start and on reload).
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace edgehub::core {

// The default priority of a route without one: served after all of 0-9.
inline constexpr uint32_t kDefaultRoutePriority = 2'000'000'000;
// Global TTL when storeAndForwardConfiguration.timeToLiveSecs is absent (§17 k).
inline constexpr int64_t kDefaultGlobalTtlSecs = 7200;
// Largest manifest text accepted (real deployment manifests are limited to far less by IoT Hub);
// bigger input is rejected before it is parsed or, for files, read.
inline constexpr size_t kMaxManifestBytes = 16 * 1024 * 1024;

struct RouteSpec {
  std::string name;          // the key in "routes"; non-empty, case-sensitive
  std::string text;          // the route statement, as written
  uint32_t priority = kDefaultRoutePriority;  // 0-9 or kDefaultRoutePriority
  uint32_t time_to_live_secs = 0;             // 0 = inherit the global TTL
  std::string json_path;     // e.g. "routes.alerts" (for error messages)
};

struct StoreAndForwardConfig {
  // Seconds; negative means infinite, 0 means messages that inherit it expire at once.
  int64_t time_to_live_secs = kDefaultGlobalTtlSecs;
  std::optional<int64_t> max_size_bytes;  // storeLimits.maxSizeBytes; absent = no limit
};

struct ModuleSpec {
  std::string name;                  // module id, a key of $edgeAgent.modules
  std::string desired_properties;    // initial desired twin, compact JSON text ("{}" if none)
};

struct Manifest {
  std::string schema_version;        // as written, e.g. "1.1" or "1.1.0"
  int schema_major = 1;
  int schema_minor = 0;
  std::vector<RouteSpec> routes;     // in manifest order
  StoreAndForwardConfig store_and_forward;
  // Modules from $edgeAgent.modules, in manifest order; empty for a bare $edgeHub object.
  std::vector<ModuleSpec> modules;
  bool bare_edge_hub = false;        // loaded from a bare $edgeHub desired-properties object
};

// Parses and validates manifest JSON text. On error, the Status is kInvalidArgument and its
// message lists every problem, one per line, each as "<json path>: <reason>" (a JSON syntax
// error reads "line L, column C: <reason>").
//
// JSON paths are logical, the same for a full manifest and a bare $edgeHub object:
// "$edgeHub.routes.alerts.priority", "$edgeHub.storeAndForwardConfiguration.timeToLiveSecs",
// "$edgeAgent.modules.<name>", "<module>.properties.desired"; structural problems of a full
// manifest use "modulesContent..." (RouteSpec::json_path stays relative: "routes.alerts").
Result<Manifest> parseManifest(std::string_view json_text);

// Reads a file and parses it; the error names the file. A file larger than kMaxManifestBytes is
// rejected without being read. Errors: kNotFound / kIoError (cannot read), kInvalidArgument
// ("manifest '<path>' is invalid:\n<problems>").
Result<Manifest> loadManifestFile(const std::string& path);

}  // namespace edgehub::core
