#pragma once
// fromMosq(): the one translation of libmosquitto return codes into core::Status (style rule 11),
// plus the names of MQTT 3.1.1 CONNACK return codes. <mosquitto.h> stays in the .cc file.
//
// Thread-safety: pure functions, safe from any thread. Hot/cold: cold (errors only).
#include <string_view>

#include "core/status.h"

namespace edgehub::transports::upstream {

// Maps a MOSQ_ERR_* value: SUCCESS -> OK; INVAL/MALFORMED_UTF8/PAYLOAD_SIZE -> kInvalidArgument;
// NOMEM -> kResourceExhausted; NO_CONN/CONN_LOST/CONN_REFUSED/KEEPALIVE/EAI/LOOKUP/ERRNO (with
// strerror of the current errno) -> kUnavailable; TLS/TLS_HANDSHAKE -> kUnavailable (a TLS
// failure is treated like a network failure: retried with backoff); AUTH/ACL_DENIED ->
// kUnauthenticated/kPermissionDenied; everything else -> kInternal. `what` names the call.
core::Status fromMosq(int rc, std::string_view what);

// "connection accepted", "unacceptable protocol version", "identifier rejected", "server
// unavailable", "bad user name or password", "not authorized", or "unknown CONNACK code".
std::string_view connackCodeName(int code);

}  // namespace edgehub::transports::upstream
