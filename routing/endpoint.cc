#include "routing/endpoint.h"

namespace edgehub::routing {

std::string Endpoint::toString() const {
  if (kind_ == Kind::kUpstream) return "$upstream";
  return "BrokeredEndpoint(\"/modules/" + module_id_ + "/inputs/" + input_name_ + "\")";
}

}  // namespace edgehub::routing
