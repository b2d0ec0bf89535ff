#include "routing/tools/message_json.h"

#include <nlohmann/json.hpp>

namespace edgehub::routing {

MessageView OwnedMessage::view() {
  property_views.clear();
  for (size_t i = 0; i < properties.size(); ++i) {
    property_views.push_back(PropertyView{properties[i].first, properties[i].second, property_null[i]});
  }
  system_views.clear();
  for (size_t i = 0; i < system_properties.size(); ++i) {
    system_views.push_back(
        PropertyView{system_properties[i].first, system_properties[i].second, system_null[i]});
  }
  MessageView v;
  v.properties = property_views;
  v.system_properties = system_views;
  v.body = body;
  return v;
}

namespace {

bool decodeBase64(std::string_view in, std::vector<uint8_t>& out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    const int v = value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

}  // namespace

core::Result<OwnedMessage> messageFromJson(std::string_view json_text) {
  try {
    // nlohmann's default object type is ordered by key; the case format relies on message
    // order only for names differing in case, so keep insertion order with ordered_json.
    const auto j = nlohmann::ordered_json::parse(json_text);
    if (!j.is_object()) return core::invalidArgument("message must be a JSON object");
    OwnedMessage m;
    auto read = [](const nlohmann::ordered_json& obj,
                   std::vector<std::pair<std::string, std::string>>& out, std::vector<bool>& nulls) {
      if (!obj.is_object()) return;
      for (auto it = obj.begin(); it != obj.end(); ++it) {
        if (it.value().is_null()) {
          out.emplace_back(it.key(), std::string());
          nulls.push_back(true);
        } else if (it.value().is_string()) {
          out.emplace_back(it.key(), it.value().get<std::string>());
          nulls.push_back(false);
        } else {
          out.emplace_back(it.key(), it.value().dump());
          nulls.push_back(false);
        }
      }
    };
    if (j.contains("properties")) read(j["properties"], m.properties, m.property_null);
    if (j.contains("systemProperties")) {
      read(j["systemProperties"], m.system_properties, m.system_null);
    }
    if (j.contains("bodyBase64") && j["bodyBase64"].is_string()) {
      if (!decodeBase64(j["bodyBase64"].get<std::string>(), m.body)) {
        return core::invalidArgument("bodyBase64 is not valid base64");
      }
    } else if (j.contains("body") && j["body"].is_string()) {
      const std::string b = j["body"].get<std::string>();
      m.body.assign(b.begin(), b.end());
    }
    return m;
  } catch (const std::exception& e) {
    return core::invalidArgument(std::string("invalid message JSON: ") + e.what());
  }
}

}  // namespace edgehub::routing
