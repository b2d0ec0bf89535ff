#include "transports/auth/openssl_status.h"

#include <openssl/err.h>

#include <string>

namespace edgehub::transports::auth {

core::Status fromOpenssl(std::string_view context) {
  std::string message(context);
  message.append(": ");
  bool first = true;
  for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!first) message.append("; ");
    message.append(buffer);
    first = false;
  }
  if (first) message.append("no OpenSSL error queued");
  return core::internalError(std::move(message));
}

}  // namespace edgehub::transports::auth
