#pragma once
// Converting between IoT Hub MQTT publishes and hub messages (iothub-mqtt-dialect.md sections 3
// and 4): building the message from a telemetry PUBLISH, and the topic a message is delivered on.
//
// Hot path: both run per message. With a reused MessageBuilder, PropertyBagParser and output
// string, the only allocation is the finished MessageRef.
// Thread-safety: none beyond the arguments': use one builder/parser/string per connection.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/identity.h"
#include "core/message/message.h"
#include "core/status.h"
#include "transports/iothub/property_bag.h"
#include "transports/iothub/topic.h"

namespace edgehub::transports::iothub {

// The edgeHubOriginInterface values (routing-language.md section 12).
inline constexpr std::string_view kOriginInternal = "internal";
inline constexpr std::string_view kOriginDownstream = "downstream";

// Builds the message for a telemetry PUBLISH. The builder is reset first. Origin,
// connectionDeviceId and connectionModuleId come from `sender` (the authenticated connection),
// never from the topic or the bag (our rule 11.3.3); outputName from $.on; edgeHubOriginInterface
// is "internal" for a module (only modules of this edge device can connect, rule 11.3.5) and
// "downstream" for a leaf device. The bag is mapped per classifyWireKey: system fields set (last
// duplicate wins), application properties added in order (duplicates kept), null-valued system
// keys and dropped keys ignored.
// Errors: kInvalidArgument (not a telemetry topic, malformed bag), kPermissionDenied
// (checkPublishAllowed fails), and MessageBuilder::finish()'s errors.
core::Result<core::MessageRef> buildTelemetryMessage(core::MessageBuilder& builder,
                                                     PropertyBagParser& parser,
                                                     const core::Identity& sender,
                                                     const ParsedTopic& topic,
                                                     std::span<const uint8_t> payload,
                                                     uint64_t sequence, int64_t enqueued_ms);

// The same with a parser local to the call: allocation-free only while every escaped key or value
// fits the small-string buffer; connections should keep a PropertyBagParser and use the above.
core::Result<core::MessageRef> buildTelemetryMessage(core::MessageBuilder& builder,
                                                     const core::Identity& sender,
                                                     const ParsedTopic& topic,
                                                     std::span<const uint8_t> payload,
                                                     uint64_t sequence, int64_t enqueued_ms);

// Appends "devices/{d}/modules/{m}/inputs/{input}/{bag}" for delivering `message` to module
// input `input` of `target` (ids and input percent-encoded as path segments; the bag per
// appendDeliveryBag). The '/' after the input is always written (the C SDK requires it).
// Errors: kInvalidArgument (target is not a module, or input is empty); `out` is then unchanged.
core::Status encodeDeliveryTopic(const core::Identity& target, std::string_view input,
                                 const ::edgehub::fb::Message& message, std::string& out);

}  // namespace edgehub::transports::iothub
