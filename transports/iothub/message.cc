#include "transports/iothub/message.h"

#include <optional>

#include "transports/percent_encoding.h"

namespace edgehub::transports::iothub {

core::Result<core::MessageRef> buildTelemetryMessage(core::MessageBuilder& builder,
                                                     PropertyBagParser& parser,
                                                     const core::Identity& sender,
                                                     const ParsedTopic& topic,
                                                     std::span<const uint8_t> payload,
                                                     uint64_t sequence, int64_t enqueued_ms) {
  if (topic.kind != TopicKind::kTelemetry) {
    return core::invalidArgument("not a telemetry topic");
  }
  // Checked here as well as by the caller: building a message that names the wrong sender must
  // be impossible, not merely avoided.
  HUB_RETURN_IF_ERROR(checkPublishAllowed(sender, topic));
  builder.reset();
  builder.setSequence(sequence);
  builder.setEnqueuedTimeMs(enqueued_ms);
  builder.setOrigin(sender);
  HUB_RETURN_IF_ERROR(parser.parse(
      topic.property_bag, [&builder](std::string_view key, std::optional<std::string_view> value) {
        WireKey wk = classifyWireKey(key);
        switch (wk.kind) {
          case WireKeyKind::kSystemField:
            // A system field has no null state in the schema; a null-valued one means nothing.
            if (value) builder.setSystem(wk.field, *value);
            break;
          case WireKeyKind::kSystemExtra:
            builder.addSystemExtra(key, value);
            break;
          case WireKeyKind::kDropped:
            break;
          case WireKeyKind::kApplication:
            builder.addProperty(key, value);
            break;
        }
      }));
  // Set after the bag so nothing in it can override them.
  builder.setSystem(core::SystemField::kConnectionDeviceId, sender.deviceId());
  if (sender.isModule()) builder.setSystem(core::SystemField::kConnectionModuleId, sender.moduleId());
  builder.setSystem(core::SystemField::kOriginInterface,
                    sender.isModule() ? kOriginInternal : kOriginDownstream);
  builder.setBody(payload);
  return builder.finish();
}

core::Result<core::MessageRef> buildTelemetryMessage(core::MessageBuilder& builder,
                                                     const core::Identity& sender,
                                                     const ParsedTopic& topic,
                                                     std::span<const uint8_t> payload,
                                                     uint64_t sequence, int64_t enqueued_ms) {
  PropertyBagParser parser;
  return buildTelemetryMessage(builder, parser, sender, topic, payload, sequence, enqueued_ms);
}

core::Status encodeDeliveryTopic(const core::Identity& target, std::string_view input,
                                 const ::edgehub::fb::Message& message, std::string& out) {
  if (!target.isModule()) return core::invalidArgument("delivery target is not a module");
  if (input.empty()) return core::invalidArgument("empty input name");
  out.append("devices/");
  appendSegmentEncoded(out, target.deviceId());
  out.append("/modules/");
  appendSegmentEncoded(out, target.moduleId());
  out.append("/inputs/");
  appendSegmentEncoded(out, input);
  out.push_back('/');
  appendDeliveryBag(out, message);
  return core::Status::ok();
}

}  // namespace edgehub::transports::iothub
