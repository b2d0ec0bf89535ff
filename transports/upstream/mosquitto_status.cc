#include "transports/upstream/mosquitto_status.h"

#include <mosquitto.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace edgehub::transports::upstream {

core::Status fromMosq(int rc, std::string_view what) {
  if (rc == MOSQ_ERR_SUCCESS) return core::Status::ok();
  const int saved_errno = errno;  // Read before anything else can clobber it.
  std::string msg(what);
  msg += ": ";
  if (rc == MOSQ_ERR_ERRNO) {
    msg += std::strerror(saved_errno);
  } else {
    msg += mosquitto_strerror(rc);
  }
  switch (rc) {
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_OVERSIZE_PACKET:
      return core::invalidArgument(std::move(msg));
    case MOSQ_ERR_NOMEM:
      return core::resourceExhausted(std::move(msg));
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
    case MOSQ_ERR_CONN_REFUSED:
    case MOSQ_ERR_KEEPALIVE:
    case MOSQ_ERR_EAI:
    case MOSQ_ERR_LOOKUP:
    case MOSQ_ERR_ERRNO:
    case MOSQ_ERR_TLS:
    case MOSQ_ERR_TLS_HANDSHAKE:
    case MOSQ_ERR_PROTOCOL:
    case MOSQ_ERR_PROXY:
      return core::unavailable(std::move(msg));
    case MOSQ_ERR_AUTH:
      return core::unauthenticated(std::move(msg));
    case MOSQ_ERR_ACL_DENIED:
      return core::permissionDenied(std::move(msg));
    default:
      return core::internalError(std::move(msg));
  }
}

std::string_view connackCodeName(int code) {
  switch (code) {
    case 0: return "connection accepted";
    case 1: return "unacceptable protocol version";
    case 2: return "identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
    default: return "unknown CONNACK code";
  }
}

}  // namespace edgehub::transports::upstream
