#pragma once
// Private to transports/tls/: OpenSSL error-queue helpers for the TLS code, built on the one
// translation function transports/auth/openssl_status.h (style rule 11).
//
// Thread-safety: OpenSSL's error queue is per thread; these touch only the caller's queue.
// Hot/cold: cold, except ErrorQueueGuard, which costs one ERR_clear_error() per use.
#include <string_view>

#include "core/status.h"

namespace edgehub::transports::tls {

// auth::fromOpenssl(context) with `code` instead of kInternal: a bad certificate file or a
// peer's broken handshake is not a bug of ours. Drains the calling thread's whole ERR queue.
core::Status opensslError(core::StatusCode code, std::string_view context);

// Clears the calling thread's ERR queue on construction and destruction, so that an error left
// behind by one connection is never read by (or blamed on) another connection of the same
// thread, and so that SSL_get_error() sees only the errors of the call it classifies.
class ErrorQueueGuard {
 public:
  ErrorQueueGuard();
  ~ErrorQueueGuard();
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

}  // namespace edgehub::transports::tls
