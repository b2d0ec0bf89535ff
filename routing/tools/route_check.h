#pragma once
// `edgehub route check`: validates every route of a manifest, prints lint warnings and, given a
// message, explains which routes match it and why the others do not.
//
// Output lines:
//   error: route '<name>' L:C: <reason>
//   warning: route '<name>': <text>
//   ok: N routes compiled
// and with a message:
//   source: <message source path>
//   route '<name>': match -> <endpoint> (priority P, ttl T)
//   route '<name>': no match: source mismatch (route prefix ..., message source ...)
//   route '<name>': no match: condition is false | undefined
//   deliver: <endpoint> priority P ttl T     (the §14 result, one line per endpoint)
//
// Returns 0 when no route has an error, 1 otherwise (or when the message JSON is invalid).
// Thread-safety: reentrant. Hot/cold: cold.
#include <ostream>
#include <string>

#include "core/config/manifest.h"

namespace edgehub::routing {

int runRouteCheck(const core::Manifest& manifest, const std::string* message_json,
                  std::ostream& out);

}  // namespace edgehub::routing
