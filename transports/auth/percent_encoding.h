#pragma once
// Percent-encoding (RFC 3986 section 2.1) as the IoT Hub MQTT dialect uses it in SAS tokens and
// MQTT usernames. Hex digits are accepted in either case because the C SDK emits lowercase
// escapes and the Node SDK uppercase (dialect doc section 2.2). '+' is a literal plus, never a
// space: these are URI components, not HTML form data, and base64 signatures contain '+'.
//
// Thread-safety: pure functions. Hot/cold: cold (one call per CONNECT).
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace edgehub::transports::auth {

// Decodes every "%XY". Errors: kInvalidArgument naming the offset of a '%' that is not followed
// by two hex digits. The message never echoes the input (it may be part of a credential).
core::Result<std::string> percentDecodeStrict(std::string_view text);

// Decodes every valid "%XY" and leaves anything else as it is (a lone '%' stays '%'), as .NET's
// Uri.UnescapeDataString does: edgeHub decodes username values that way, and a client sending
// "100%" in its product string must keep connecting.
std::string percentDecodeLenient(std::string_view text);

// Encodes everything except the RFC 3986 unreserved set (A-Z a-z 0-9 - . _ ~) as uppercase
// "%XY", the form encodeURIComponent produces for the characters that matter here.
std::string percentEncode(std::string_view bytes);

// Splits at every `separator` (empty parts kept); the views point into `text`.
std::vector<std::string_view> split(std::string_view text, char separator);

}  // namespace edgehub::transports::auth
