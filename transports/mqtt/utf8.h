#pragma once
// UTF-8 validation for MQTT strings (MQTT 3.1.1 section 1.5.3).
//
// Thread-safety: pure functions, safe from any thread. No allocation.
#include <string_view>

namespace edgehub::transports::mqtt {

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates
// U+D800..U+DFFF, nothing above U+10FFFF) and contains no U+0000 (MQTT-1.5.3-1, -2).
// Control characters and non-characters are allowed: the spec says senders SHOULD NOT use them
// and a receiver MAY close, and IoT SDK property bags never contain them, so accepting them costs
// nothing and avoids refusing odd but harmless clients.
bool isValidMqttUtf8(std::string_view text);

}  // namespace edgehub::transports::mqtt
