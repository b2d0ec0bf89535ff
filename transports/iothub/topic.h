#pragma once
// IoT Hub MQTT topics (iothub-mqtt-dialect.md sections 3 and 11): classifying what a client
// publishes and subscribes to, and deciding whether its identity may do so.
//
// Thread-safety: value types and pure functions, safe from any thread.
// Ownership: every string_view in a ParsedTopic/ParsedFilter points into the topic passed in and
// is valid as long as it is. Id segments are kept percent-encoded as sent (validated, never
// decoded into a buffer), so parsing allocates nothing; compare them with decodesTo().
// An error Status allocates its message (errors are cold).
#include <cstdint>
#include <string>
#include <string_view>

#include "core/identity.h"
#include "core/status.h"

namespace edgehub::transports::iothub {

enum class TopicKind : uint8_t {
  kTelemetry,          // devices/{d}[/modules/{m}]/messages/events[/[{bag}[/]]]
  kTwinGet,            // $iothub/twin/GET/?$rid={rid}
  kTwinReportedPatch,  // $iothub/twin/PATCH/properties/reported/?$rid={rid}
  kMethodResponse,     // $iothub/methods/res/{status}/?$rid={rid}
  // Ours, for the operator identity $edgeHub only (`edgehub method invoke`): call a method of a
  // module of this edge device; answered on $edgehub/methods/res/{status}/?$rid={rid}.
  kMethodInvoke,       // $edgehub/methods/invoke/{module}/{method}/?$rid={rid}[&$timeout={s}]
};

using core::kEdgeHubModuleId;

struct ParsedTopic {
  TopicKind kind = TopicKind::kTelemetry;
  // Telemetry: the ids as sent (percent-encoded; escapes validated, decoded value non-empty).
  // module_id is empty for device telemetry.
  std::string_view device_id;
  std::string_view module_id;
  // Telemetry: the raw bag, without the slashes around it; may be empty.
  std::string_view property_bag;
  // Twin and method kinds: the $rid value, byte for byte as sent (the response echoes it).
  std::string_view request_id;
  // kMethodResponse: the status the module chose.
  int32_t method_status = 0;
  // kMethodInvoke: the target module (as sent, one topic level) and the method name.
  std::string_view target_module;
  std::string_view method_name;
  // kMethodInvoke: "&$timeout={seconds}" after the $rid, 0 when absent.
  int32_t timeout_secs = 0;

  bool isModuleTelemetry() const { return kind == TopicKind::kTelemetry && !module_id.empty(); }
};

// Classifies a PUBLISH topic. Only the eight telemetry templates of section 3.1 are accepted
// (device or module, with or without a bag, with or without a trailing '/'); anything after the
// bag's closing '/' is an error rather than silently ignored, because our rule is to refuse data
// we would not route. Errors: kInvalidArgument with the reason.
core::Result<ParsedTopic> parsePublishTopic(std::string_view topic);

// Our rule 11.3.2: telemetry ids must equal the connection identity exactly (ordinal,
// case-sensitive, after percent-decoding), device topics only for devices and module topics only
// for modules. Twin and method topics carry no identity and are always the connection's own.
// kMethodInvoke only for the operator identity (module kEdgeHubModuleId).
// Errors: kPermissionDenied.
core::Status checkPublishAllowed(const core::Identity& connection, const ParsedTopic& topic);

enum class FilterKind : uint8_t {
  kModuleInputs,         // devices/{d}/modules/{m}/inputs/# or devices/{d}/modules/{m}/#
  kC2d,                  // devices/{d}/messages/devicebound/#
  kTwinResponses,        // exactly $iothub/twin/res/#
  kTwinDesiredPatches,   // starts with $iothub/twin/PATCH/properties/desired/
  kMethodRequests,       // starts with $iothub/methods/POST/
  kMethodInvokeResults,  // exactly $edgehub/methods/res/# (the operator identity only)
  kOther,                // not the IoT dialect
};

struct ParsedFilter {
  FilterKind kind = FilterKind::kOther;
  std::string_view device_id;  // kModuleInputs, kC2d: as sent (percent-encoded)
  std::string_view module_id;  // kModuleInputs
};

// Classifies a SUBSCRIBE filter by the section 3.4 patterns. Never fails: unknown is kOther.
ParsedFilter classifySubscribeFilter(std::string_view filter);

// Our rule 11.3.4: module inputs only with the module's own ids, C2D only with a device's own id,
// twin and method filters always (they are bound to the connection); everything else refused.
bool subscribeAllowed(const core::Identity& connection, std::string_view filter);

}  // namespace edgehub::transports::iothub
