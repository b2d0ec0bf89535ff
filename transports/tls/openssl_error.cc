#include "transports/tls/openssl_error.h"

#include <openssl/err.h>

#include <string>

#include "transports/auth/openssl_status.h"

namespace edgehub::transports::tls {

core::Status opensslError(core::StatusCode code, std::string_view context) {
  const core::Status status = auth::fromOpenssl(context);
  return core::Status(code, std::string(status.message()));
}

ErrorQueueGuard::ErrorQueueGuard() { ERR_clear_error(); }
ErrorQueueGuard::~ErrorQueueGuard() { ERR_clear_error(); }

}  // namespace edgehub::transports::tls
