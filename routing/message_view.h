#pragma once
// MessageView: what routing sees of a message (routing-language.md §1).
//
// A non-owning view. The hub builds one from its flatbuffer message, the conformance runner from
// JSON; routing never depends on either representation.
//
// Ownership: every span and string_view points into memory owned by the caller, which must stay
// valid and unchanged for the duration of the routing call that receives the view.
// Thread-safety: plain data; a view may be read from several threads if its memory is.
#include <cstdint>
#include <span>
#include <string_view>

namespace edgehub::routing {

struct PropertyView {
  std::string_view name;
  std::string_view value;
  // A property present without a value (§8.5). `value` is ignored when set.
  bool is_null = false;
};

struct MessageView {
  std::span<const PropertyView> properties;         // application properties, in message order
  std::span<const PropertyView> system_properties;  // connectionDeviceId, connectionModuleId,
                                                    // outputName, contentType, contentEncoding,
                                                    // messageType, cid, ...
  std::span<const uint8_t> body;
};

}  // namespace edgehub::routing
