#pragma once
// Base64 (RFC 4648 section 4, standard alphabet with '=' padding) for symmetric keys and SAS
// signatures.
//
// Decoding is strict, because keys come from configuration files and a lenient decoder would
// accept two different texts for one key: the length must be a multiple of 4, padding may only
// end the text (at most two '='), no whitespace or URL-safe characters, and the unused low bits
// of the last character must be zero.
//
// Thread-safety: pure functions. Hot/cold: cold (configuration, one call per authentication).
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::core {

// Encodes arbitrary bytes (held in a string_view) as padded base64.
std::string base64Encode(std::string_view bytes);

// Decodes padded base64 into bytes. Errors: kInvalidArgument naming the first bad position
// (the message never echoes the input, which may be a secret).
Result<std::string> base64Decode(std::string_view text);

}  // namespace edgehub::core
