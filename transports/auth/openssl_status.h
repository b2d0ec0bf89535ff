#pragma once
// The one translation from OpenSSL's error queue to core::Status (style rule 11).
//
// Thread-safety: OpenSSL's error queue is per thread, so this reads and clears only the calling
// thread's queue. Hot/cold: cold (errors only).
#include <string_view>

#include "core/status.h"

namespace edgehub::transports::auth {

// Drains the *whole* ERR queue of the calling thread (a stale entry left behind would be blamed
// on the next, unrelated failure) and returns kInternal "context: err1; err2; ...", or
// "context: no OpenSSL error queued" when the queue was empty. Never returns OK: call it only
// after an OpenSSL function reported failure.
core::Status fromOpenssl(std::string_view context);

}  // namespace edgehub::transports::auth
