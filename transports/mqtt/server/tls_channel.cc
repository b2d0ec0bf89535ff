#include "transports/mqtt/server/tls_channel.h"

namespace edgehub::transports::mqtt {

// Interim: replaced by the OpenSSL implementation.
core::Result<SecureChannelFactory> makeTlsChannelFactory(const std::string&, const std::string&) {
  return core::unavailable("TLS is not available in this build");
}
core::Result<DevTlsFiles> ensureDevTlsFiles(const std::string&, const std::vector<std::string>&) {
  return core::unavailable("TLS is not available in this build");
}
std::string devTlsCaPath(const std::string& data_dir) { return data_dir + "/certs/edgehub-dev-ca.pem"; }

}  // namespace edgehub::transports::mqtt
