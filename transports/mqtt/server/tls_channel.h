#pragma once
// TLS for the MQTT server: a SecureChannel factory over transports/tls (OpenSSL memory BIOs),
// and the development certificates the hub makes when the operator gives none.
//
// Thread-safety: the factory may be called from any thread (the TLS context is shared and
// immutable); each channel belongs to one connection. Hot/cold: creation cold.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "transports/mqtt/server/link.h"

namespace edgehub::transports::mqtt {

using SecureChannelFactory = std::function<std::unique_ptr<SecureChannel>()>;

// A factory of server-side TLS channels (TLS 1.2 minimum) for the PEM chain and key.
core::Result<SecureChannelFactory> makeTlsChannelFactory(const std::string& cert_chain_path,
                                                         const std::string& key_path);

struct DevTlsFiles {
  std::string ca_path;
  std::string cert_chain_path;
  std::string key_path;
  bool created_ca = false;
};
// Creates (or reuses) the development CA and server certificate under <data_dir>/certs.
core::Result<DevTlsFiles> ensureDevTlsFiles(const std::string& data_dir, const std::vector<std::string>& names);
// Where the development CA is (whether or not it exists yet).
std::string devTlsCaPath(const std::string& data_dir);

}  // namespace edgehub::transports::mqtt
