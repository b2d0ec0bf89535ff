#include "transports/iothub/property_bag.h"

#include <array>
#include <utility>

#include "transports/percent_encoding.h"

namespace edgehub::transports::iothub {
namespace {

using core::SystemField;

struct KeyEntry {
  std::string_view key;
  SystemField field;
  bool to_client;  // whether the hub puts it on the wire on delivery
};

// Section 4 table. $.on and $.ifid are input-only: the input name travels in the topic.
constexpr std::array<KeyEntry, 13> kSystemKeys = {{
    {"$.mid", SystemField::kMessageId, true},
    {"$.cid", SystemField::kCorrelationId, true},
    {"$.uid", SystemField::kUserId, true},
    {"$.to", SystemField::kTo, true},
    {"$.exp", SystemField::kExpiryTimeUtc, true},
    {"$.ct", SystemField::kContentType, true},
    {"$.ce", SystemField::kContentEncoding, true},
    {"$.schema", SystemField::kMessageSchema, true},
    {"$.ctime", SystemField::kCreationTime, true},
    {"$.sub", SystemField::kComponentName, true},
    {"iothub-operation", SystemField::kOperation, true},
    {"$.on", SystemField::kOutputName, false},
    {"$.ifid", SystemField::kInterfaceId, false},
}};

constexpr std::string_view kAckKey = "ack";

void appendPair(std::string& out, bool& first, std::string_view key,
                std::optional<std::string_view> value) {
  if (!first) out.push_back('&');
  first = false;
  appendBagEncoded(out, key);
  if (value) {
    out.push_back('=');
    appendBagEncoded(out, *value);
  }
}

std::string_view view(const flatbuffers::String* s) {
  return std::string_view(s->c_str(), s->size());
}

}  // namespace

WireKey classifyWireKey(std::string_view key) {
  for (const KeyEntry& e : kSystemKeys) {
    if (e.key == key) return {WireKeyKind::kSystemField, e.field};
  }
  if (key == kAckKey) return {WireKeyKind::kSystemExtra, SystemField::kCount};
  // Our rule (section 4): client-supplied $.cdid/$.cmid and unknown $.-keys are dropped, so a
  // client can never pose as another sender through the bag.
  if (key.starts_with("$.")) return {WireKeyKind::kDropped, SystemField::kCount};
  return {WireKeyKind::kApplication, SystemField::kCount};
}

bool PropertyBagParser::decode(std::string_view raw, std::string& buf, std::string_view& out) {
  if (raw.find('%') == std::string_view::npos) {
    out = raw;
    return true;
  }
  buf.clear();  // keeps capacity
  if (!appendDecoded(buf, raw)) return false;
  out = buf;
  return true;
}

core::Status PropertyBagParser::malformed(std::string_view what, std::string_view raw_key) {
  std::string msg("invalid property bag: ");
  msg.append(what);
  msg.append(" '");
  msg.append(raw_key);
  msg.append("'");
  return core::invalidArgument(std::move(msg));
}

namespace {
// Application properties in the sender's order (every bag starts with them).
void appendApplicationProperties(std::string& out, bool& first, const ::edgehub::fb::Message& message) {
  if (const auto* props = message.properties()) {
    for (const ::edgehub::fb::Property* p : *props) {
      std::optional<std::string_view> value;
      if (p->value()) value = view(p->value());
      appendPair(out, first, view(p->name()), value);
    }
  }
}
}  // namespace

void appendDeliveryBag(std::string& out, const ::edgehub::fb::Message& message) {
  bool first = true;
  appendApplicationProperties(out, first, message);
  for (const KeyEntry& e : kSystemKeys) {
    if (!e.to_client) continue;
    if (auto v = core::systemFieldValue(message, e.field)) appendPair(out, first, e.key, *v);
  }
  if (const auto* sys = message.system(); sys && sys->extra()) {
    for (const ::edgehub::fb::Property* p : *sys->extra()) {
      if (view(p->name()) != kAckKey) continue;
      std::optional<std::string_view> value;
      if (p->value()) value = view(p->value());
      appendPair(out, first, kAckKey, value);
    }
  }
  std::optional<std::string_view> cdid = core::systemFieldValue(message, SystemField::kConnectionDeviceId);
  std::optional<std::string_view> cmid = core::systemFieldValue(message, SystemField::kConnectionModuleId);
  const ::edgehub::fb::Origin* origin = message.origin();
  if (!cdid) cdid = view(origin->device_id());
  if (!cmid && origin->kind() == ::edgehub::fb::IdentityKind::Module && origin->module_id()) {
    cmid = view(origin->module_id());
  }
  appendPair(out, first, "$.cdid", cdid);
  if (cmid) appendPair(out, first, "$.cmid", cmid);
}

void appendUpstreamBag(std::string& out, const ::edgehub::fb::Message& message) {
  bool first = true;
  appendApplicationProperties(out, first, message);
  for (const KeyEntry& e : kSystemKeys) {
    // What a device sends IoT Hub itself: the client-facing keys, and the interface id that
    // Plug and Play devices set; $.on is edge-internal.
    if (!e.to_client && e.field != SystemField::kInterfaceId) continue;
    if (auto v = core::systemFieldValue(message, e.field)) appendPair(out, first, e.key, *v);
  }
}

}  // namespace edgehub::transports::iothub
