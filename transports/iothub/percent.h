#pragma once
// Percent-encoding (RFC 3986 section 2.1) for the IoT Hub MQTT dialect: topic path segments and
// property-bag keys and values. Hex digits are accepted in either case on input because the C SDK
// emits lowercase escapes and the Node SDK uppercase (iothub-mqtt-dialect.md section 2.2).
//
// Thread-safety: pure functions, safe from any thread. Nothing here allocates except appends to a
// caller-owned std::string, which keeps its capacity across calls.
#include <string>
#include <string_view>

namespace edgehub::transports::iothub {

// True when every '%' in `raw` is followed by two hex digits.
bool hasValidEscapes(std::string_view raw);

// Appends the decoding of `raw` to `out`. '+' stays '+': the SDKs encode a space as %20 and the
// edgeHub serialiser never decodes '+' (it is not form encoding). Returns false on a malformed
// escape; `out` is then partially appended.
bool appendDecoded(std::string& out, std::string_view raw);

// True when `raw` decodes to exactly `expected`; false also for a malformed escape. Lets the
// authorization checks compare topic ids with the connection identity without decoding into a
// buffer.
bool decodesTo(std::string_view raw, std::string_view expected);

// Property-bag encoding: everything except RFC 3986 unreserved characters is escaped (uppercase
// hex), as the edgeHub serialiser does; in particular '$' becomes %24, which the C SDK requires
// to recognise system keys.
void appendBagEncoded(std::string& out, std::string_view text);

// Topic path-segment encoding: escapes what would change the topic's meaning ('/', '%', the MQTT
// wildcards '+' and '#', '?', '&', '=') plus controls, space and non-ASCII; leaves ids such as
// "$edgeHub" readable.
void appendSegmentEncoded(std::string& out, std::string_view text);

}  // namespace edgehub::transports::iothub
