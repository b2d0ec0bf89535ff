#pragma once
// Building a MessageView from the conformance-case JSON shape
//   {"properties": {...}, "systemProperties": {...}, "body": "..." | "bodyBase64": "..."}
// Used by the CLI tools only (cold path). Internal to routing/tools.
//
// Thread-safety: OwnedMessage is a plain value; the view points into it, so it must not be
// copied or moved after view() is taken. Errors are reported as Status (no exceptions escape).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "routing/message_view.h"

namespace edgehub::routing {

struct OwnedMessage {
  std::vector<std::pair<std::string, std::string>> properties;
  std::vector<bool> property_null;
  std::vector<std::pair<std::string, std::string>> system_properties;
  std::vector<bool> system_null;
  std::vector<uint8_t> body;
  std::vector<PropertyView> property_views;
  std::vector<PropertyView> system_views;

  MessageView view();
};

// Parses the JSON text of a message object.
core::Result<OwnedMessage> messageFromJson(std::string_view json_text);

}  // namespace edgehub::routing
