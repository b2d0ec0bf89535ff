#pragma once
// Development certificates: a local CA and a server certificate it signs, so that the MQTT
// listener can offer TLS out of the box when the operator gives no --tls-cert/--tls-key.
// Modules trust the CA (`edgehub certs ca-path` prints where it is).
//
// Files under <data_dir>/certs/ (directory 0700, private keys 0600, all written atomically):
//   edgehub-dev-ca.pem          self-signed CA, EC P-256, 10 years, CA:TRUE (critical),
//                               keyUsage keyCertSign,cRLSign (critical)
//   edgehub-dev-ca.key.pem      its private key (PKCS#8 PEM)
//   edgehub-server.pem          server certificate (825 days, never past the CA's expiry,
//                               serverAuth, SAN localhost, gethostname(), 127.0.0.1, ::1 and
//                               the extra names) followed by the CA certificate
//   edgehub-server.key.pem      its private key
//
// Reuse rules, chosen so that a CA that modules may already trust is never replaced behind
// the operator's back:
//   - all files valid and the server certificate covers every name and is valid for 30 more
//     days: nothing is written;
//   - CA valid but the server certificate missing, stale, not matching its key, not signed by
//     the CA or missing a name: a new server key and certificate are issued from that CA;
//   - CA certificate absent: a new CA (and server certificate) is created. A CA key without
//     its certificate is the leftover of an interrupted first start (the key is written
//     first), which nobody can trust yet, so it is replaced;
//   - CA certificate present but unusable (unparsable, expired, not a CA, key missing or not
//     matching): kFailedPrecondition naming the file; the operator decides what to do.
//
// Thread-safety: free functions; two processes must not share a data directory.
// Hot/cold: cold (startup).
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time_source.h"

namespace edgehub::transports::tls {

struct DevCertificates {
  std::string ca_path;                 // <data_dir>/certs/edgehub-dev-ca.pem
  std::string server_cert_chain_path;  // <data_dir>/certs/edgehub-server.pem (leaf + CA)
  std::string server_key_path;         // <data_dir>/certs/edgehub-server.key.pem
  bool created_ca = false;             // this call created the CA
  bool issued_server_cert = false;     // this call issued a new server certificate
};

// Ensures valid development certificates exist (see the rules above) and returns their paths.
// `extra_names` are added to the server certificate's SAN: an IP literal (v4 or v6) becomes an
// IP entry, anything else a DNS entry (letters, digits, '-', '.', '_', a leading "*."; other
// characters are kInvalidArgument). `now` decides expiry and the new certificates' validity.
core::Result<DevCertificates> ensureDevCertificates(const std::string& data_dir,
                                                    const std::vector<std::string>& extra_names,
                                                    core::SystemTime now);
// The same at the real wall-clock time.
core::Result<DevCertificates> ensureDevCertificates(const std::string& data_dir,
                                                    const std::vector<std::string>& extra_names);

// <data_dir>/certs/edgehub-dev-ca.pem, whether or not it exists.
std::string devCaPath(const std::string& data_dir);

}  // namespace edgehub::transports::tls
