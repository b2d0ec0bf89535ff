#pragma once
// Percent-encoding (RFC 3986 section 2.1) for the IoT Hub MQTT dialect, in one place for every
// transport: SAS tokens and usernames (cold, one call per CONNECT) and topic path segments and
// property bags (hot, per message; those functions only append to caller-owned strings, which
// keep their capacity).
//
// Hex digits are accepted in either case on input, because the C SDK emits lowercase escapes
// and the Node SDK uppercase (iothub-mqtt-dialect.md section 2.2). '+' is always a literal plus,
// never a space: these are URI components, not HTML form data, and base64 signatures contain
// '+'.
//
// Thread-safety: pure functions, safe from any thread.
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace edgehub::transports {

// True when every '%' in `raw` is followed by two hex digits.
bool hasValidEscapes(std::string_view raw);
// Appends the decoding of `raw` to `out`. Returns false on a malformed escape; `out` is then
// partially appended.
bool appendDecoded(std::string& out, std::string_view raw);
// True when `raw` decodes to exactly `expected`; false also for a malformed escape. Lets the
// authorization checks compare topic ids with the connection identity without a buffer.
bool decodesTo(std::string_view raw, std::string_view expected);
// Decodes every escape; a malformed one is an error (kInvalidArgument naming its offset).
core::Result<std::string> percentDecodeStrict(std::string_view text);
// Decodes valid escapes and keeps malformed ones literally (edgeHub's username parser does).
std::string percentDecodeLenient(std::string_view text);

// Escapes everything but RFC 3986 unreserved characters, with uppercase hex (what edgeHub's
// serialiser writes; '$' becomes %24, which the C SDK requires to recognise system keys).
void appendBagEncoded(std::string& out, std::string_view text);
std::string percentEncode(std::string_view text);
// Topic path-segment encoding: escapes what would change the topic's meaning ('/', '%', the MQTT
// wildcards '+' and '#', '?', '&', '=') plus controls, space and non-ASCII; leaves ids such as
// "$edgeHub" readable.
void appendSegmentEncoded(std::string& out, std::string_view text);

// Splits on every separator; empty parts are kept ("a&&b" -> "a", "", "b").
std::vector<std::string_view> split(std::string_view text, char separator);

}  // namespace edgehub::transports
