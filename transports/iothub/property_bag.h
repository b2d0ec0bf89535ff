#pragma once
// The IoT Hub MQTT property bag (iothub-mqtt-dialect.md section 4): `k1=v1&k2&k3=v3`, keys and
// values percent-encoded. Parsing hands each decoded pair to a callback; encoding appends the
// delivery form of a message's properties to a caller-owned string.
//
// Hot path (every telemetry PUBLISH and every delivery): nothing is allocated per message once
// the parser's and the caller's scratch strings have grown to the largest bag seen.
//
// Thread-safety: PropertyBagParser is not thread-safe (one per connection or thread); the free
// functions are pure and safe from any thread.
#include <optional>
#include <string>
#include <string_view>

#include "core/message/message.h"
#include "core/status.h"

namespace edgehub::transports::iothub {

// What a decoded bag key means on input.
enum class WireKeyKind : uint8_t {
  kSystemField,  // a system property with a schema field (field is set)
  kSystemExtra,  // a system property without a field of its own ("ack")
  kDropped,      // "$.cdid", "$.cmid" and unknown "$."-keys: the hub sets or ignores them
  kApplication,  // everything else
};

struct WireKey {
  WireKeyKind kind = WireKeyKind::kApplication;
  core::SystemField field = core::SystemField::kCount;
};

// Maps a decoded key: $.mid $.cid $.uid $.to $.exp $.ct $.ce $.schema $.ctime $.on $.ifid $.sub
// and iothub-operation to their SystemFields; "ack" to a system extra. Keys are case-sensitive,
// as in the SDKs.
WireKey classifyWireKey(std::string_view key);

// Parses a bag. The callback is invoked as on_pair(std::string_view key,
// std::optional<std::string_view> value) in wire order (duplicates included); nullopt is a key
// without '='. The views point into the bag or into the parser's scratch and are valid only
// during the call.
//
// Rules: empty pairs ("a=1&&b=2", a trailing '&') are skipped; a pair starting with '=' (empty
// key), a second '=' in a pair (the SDK tokenizer rejects both; senders must write %3D) and a
// malformed '%' escape are kInvalidArgument errors naming the key. '+' is a literal '+'.
// The bag must already be cut at its terminating '/' (parsePublishTopic does that).
class PropertyBagParser {
 public:
  template <typename OnPair>
  core::Status parse(std::string_view bag, OnPair&& on_pair);

 private:
  // Returns a view of the decoded text: `raw` itself when it has no escapes, else `buf`.
  static bool decode(std::string_view raw, std::string& buf, std::string_view& out);
  static core::Status malformed(std::string_view what, std::string_view raw_key);

  std::string key_buf_;
  std::string value_buf_;
};

// Appends the delivery bag of `message` (no leading '/'): its application properties in order,
// then its system properties that travel to clients ($.mid $.cid $.uid $.to $.exp $.ct $.ce
// $.schema $.ctime $.sub iothub-operation ack), then $.cdid and, for a module sender, $.cmid
// (from connectionDeviceId/ModuleId, else the origin). Never $.on or $.ifid (section 4 table).
void appendDeliveryBag(std::string& out, const ::edgehub::fb::Message& message);

// Appends the bag for sending `message` to IoT Hub under its sender's identity (the upstream
// telemetry topic, dialect sections 4 and 10): application properties in order, then the
// system keys a device sends ($.mid, $.cid, $.uid, $.to, $.exp, $.ct, $.ce, $.schema, $.ctime,
// $.sub, iothub-operation, $.ifid). No $.cdid/$.cmid: the connection is the sender.
void appendUpstreamBag(std::string& out, const ::edgehub::fb::Message& message);

// ---- implementation ----

template <typename OnPair>
core::Status PropertyBagParser::parse(std::string_view bag, OnPair&& on_pair) {
  size_t pos = 0;
  while (pos <= bag.size()) {
    size_t amp = bag.find('&', pos);
    if (amp == std::string_view::npos) amp = bag.size();
    std::string_view pair = bag.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_key = pair.substr(0, eq);
    if (raw_key.empty()) return malformed("pair with an empty key", raw_key);
    std::string_view key;
    if (!decode(raw_key, key_buf_, key)) return malformed("malformed percent escape in key", raw_key);
    if (eq == std::string_view::npos) {
      on_pair(key, std::optional<std::string_view>());
      continue;
    }
    std::string_view raw_value = pair.substr(eq + 1);
    if (raw_value.find('=') != std::string_view::npos) {
      return malformed("unescaped '=' in value of key", raw_key);
    }
    std::string_view value;
    if (!decode(raw_value, value_buf_, value)) {
      return malformed("malformed percent escape in value of key", raw_key);
    }
    on_pair(key, std::optional<std::string_view>(value));
  }
  return core::Status::ok();
}

}  // namespace edgehub::transports::iothub
