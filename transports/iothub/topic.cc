#include "transports/iothub/topic.h"

#include <charconv>
#include <utility>

#include "transports/percent_encoding.h"

namespace edgehub::transports::iothub {
namespace {

constexpr std::string_view kDevicesPrefix = "devices/";
constexpr std::string_view kModulesLevel = "modules/";
constexpr std::string_view kEventsLevels = "messages/events";
constexpr std::string_view kTwinGet = "$iothub/twin/GET/";
constexpr std::string_view kTwinReported = "$iothub/twin/PATCH/properties/reported/";
constexpr std::string_view kMethodRes = "$iothub/methods/res/";
constexpr std::string_view kMethodInvokePrefix = "$edgehub/methods/invoke/";
constexpr std::string_view kRidKey = "$rid=";

core::Status bad(std::string_view why) {
  std::string msg("invalid IoT Hub topic: ");
  msg.append(why);
  return core::invalidArgument(std::move(msg));
}

// Takes the next '/'-terminated level off `rest`. False when there is no '/'.
bool takeLevel(std::string_view& rest, std::string_view& level) {
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  level = rest.substr(0, slash);
  rest.remove_prefix(slash + 1);
  return true;
}

// An id segment must be non-empty and carry only well-formed escapes. (A segment made only of
// escapes cannot decode to empty, so non-empty raw means non-empty decoded.)
bool validIdSegment(std::string_view raw) { return !raw.empty() && hasValidEscapes(raw); }

// `query` is what follows "?": "$rid=..." first, optionally "&..." after (ignored).
core::Status parseRid(std::string_view query, ParsedTopic& out) {
  if (!query.starts_with(kRidKey)) return bad("missing ?$rid=");
  query.remove_prefix(kRidKey.size());
  std::string_view rid = query.substr(0, query.find('&'));
  if (rid.empty()) return bad("empty $rid");
  out.request_id = rid;
  return core::Status::ok();
}

core::Result<ParsedTopic> parseTelemetry(std::string_view rest) {
  ParsedTopic out;
  out.kind = TopicKind::kTelemetry;
  std::string_view level;
  if (!takeLevel(rest, level) || !validIdSegment(level)) return bad("bad device id segment");
  out.device_id = level;
  if (rest.starts_with(kModulesLevel)) {
    rest.remove_prefix(kModulesLevel.size());
    if (!takeLevel(rest, level) || !validIdSegment(level)) return bad("bad module id segment");
    out.module_id = level;
  }
  if (!rest.starts_with(kEventsLevels)) return bad("not a telemetry topic");
  rest.remove_prefix(kEventsLevels.size());
  if (rest.empty()) return out;  // ".../messages/events"
  if (rest.front() != '/') return bad("not a telemetry topic");
  rest.remove_prefix(1);
  size_t slash = rest.find('/');
  out.property_bag = rest.substr(0, slash);
  if (slash != std::string_view::npos && slash + 1 != rest.size()) {
    return bad("levels after the property bag");
  }
  return out;
}

}  // namespace

core::Result<ParsedTopic> parsePublishTopic(std::string_view topic) {
  if (topic.starts_with(kDevicesPrefix)) return parseTelemetry(topic.substr(kDevicesPrefix.size()));
  ParsedTopic out;
  if (topic.starts_with(kTwinGet) || topic.starts_with(kTwinReported)) {
    bool get = topic.starts_with(kTwinGet);
    out.kind = get ? TopicKind::kTwinGet : TopicKind::kTwinReportedPatch;
    std::string_view rest = topic.substr(get ? kTwinGet.size() : kTwinReported.size());
    if (!rest.starts_with('?')) return bad("twin topic without ?$rid=");
    HUB_RETURN_IF_ERROR(parseRid(rest.substr(1), out));
    return out;
  }
  if (topic.starts_with(kMethodRes)) {
    out.kind = TopicKind::kMethodResponse;
    std::string_view rest = topic.substr(kMethodRes.size());
    std::string_view status;
    if (!takeLevel(rest, status) || status.empty()) return bad("method response without status");
    const char* end = status.data() + status.size();
    auto [ptr, ec] = std::from_chars(status.data(), end, out.method_status);
    if (ec != std::errc() || ptr != end) return bad("method response status is not an integer");
    if (!rest.starts_with('?')) return bad("method response without ?$rid=");
    HUB_RETURN_IF_ERROR(parseRid(rest.substr(1), out));
    return out;
  }
  if (topic.starts_with(kMethodInvokePrefix)) {
    out.kind = TopicKind::kMethodInvoke;
    std::string_view rest = topic.substr(kMethodInvokePrefix.size());
    if (!takeLevel(rest, out.target_module) || out.target_module.empty()) return bad("method call without a module");
    if (!takeLevel(rest, out.method_name) || out.method_name.empty()) return bad("method call without a method name");
    if (!rest.starts_with('?')) return bad("method call without ?$rid=");
    HUB_RETURN_IF_ERROR(parseRid(rest.substr(1), out));
    constexpr std::string_view kTimeout = "&$timeout=";
    if (size_t at = rest.find(kTimeout); at != std::string_view::npos) {
      std::string_view v = rest.substr(at + kTimeout.size());
      v = v.substr(0, v.find('&'));
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out.timeout_secs);
      if (ec != std::errc() || ptr != v.data() + v.size() || out.timeout_secs < 1 || out.timeout_secs > 3600) {
        return bad("method call timeout must be 1-3600 seconds");
      }
    }
    return out;
  }
  return bad("no IoT Hub template matches");
}

core::Status checkPublishAllowed(const core::Identity& connection, const ParsedTopic& topic) {
  if (topic.kind == TopicKind::kMethodInvoke) {
    if (connection.isModule() && connection.moduleId() == kEdgeHubModuleId) return core::Status::ok();
    return core::permissionDenied("only the hub's own identity ($edgeHub) may call methods");
  }
  if (topic.kind != TopicKind::kTelemetry) return core::Status::ok();
  bool module_topic = !topic.module_id.empty();
  if (module_topic != connection.isModule()) {
    return core::permissionDenied(module_topic ? "device may not publish module telemetry"
                                               : "module may not publish device telemetry");
  }
  if (!decodesTo(topic.device_id, connection.deviceId()) ||
      (module_topic && !decodesTo(topic.module_id, connection.moduleId()))) {
    std::string msg("telemetry topic names another identity than ");
    msg.append(connection.clientId());
    return core::permissionDenied(std::move(msg));
  }
  return core::Status::ok();
}

ParsedFilter classifySubscribeFilter(std::string_view filter) {
  ParsedFilter out;
  if (filter == "$iothub/twin/res/#") {
    out.kind = FilterKind::kTwinResponses;
    return out;
  }
  if (filter.starts_with("$iothub/twin/PATCH/properties/desired/")) {
    out.kind = FilterKind::kTwinDesiredPatches;
    return out;
  }
  if (filter.starts_with("$iothub/methods/POST/")) {
    out.kind = FilterKind::kMethodRequests;
    return out;
  }
  if (filter == "$edgehub/methods/res/#") {
    out.kind = FilterKind::kMethodInvokeResults;
    return out;
  }
  if (!filter.starts_with(kDevicesPrefix)) return out;
  std::string_view rest = filter.substr(kDevicesPrefix.size());
  std::string_view device;
  if (!takeLevel(rest, device) || device.empty()) return out;
  if (rest == "messages/devicebound/#") {
    out.kind = FilterKind::kC2d;
    out.device_id = device;
    return out;
  }
  if (!rest.starts_with(kModulesLevel)) return out;
  rest.remove_prefix(kModulesLevel.size());
  std::string_view module;
  if (!takeLevel(rest, module) || module.empty()) return out;
  if (rest == "#" || rest == "inputs/#") {
    out.kind = FilterKind::kModuleInputs;
    out.device_id = device;
    out.module_id = module;
  }
  return out;
}

bool subscribeAllowed(const core::Identity& connection, std::string_view filter) {
  ParsedFilter f = classifySubscribeFilter(filter);
  switch (f.kind) {
    case FilterKind::kTwinResponses:
    case FilterKind::kTwinDesiredPatches:
    case FilterKind::kMethodRequests:
      return true;
    case FilterKind::kMethodInvokeResults:
      return connection.isModule() && connection.moduleId() == kEdgeHubModuleId;
    case FilterKind::kModuleInputs:
      return connection.isModule() && decodesTo(f.device_id, connection.deviceId()) &&
             decodesTo(f.module_id, connection.moduleId());
    case FilterKind::kC2d:
      return !connection.isModule() && decodesTo(f.device_id, connection.deviceId());
    case FilterKind::kOther:
      return false;
  }
  return false;
}

}  // namespace edgehub::transports::iothub
