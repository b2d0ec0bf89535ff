#pragma once
// TlsServerContext: the server-side TLS configuration of the MQTT listener (certificate chain,
// private key, protocol and cipher policy), loaded once and shared by every TLS connection.
//
// Policy: TLS 1.2 minimum (TLS 1.3 preferred when the client offers it), AEAD ciphers with
// forward secrecy only, no compression (CRIME), no renegotiation (a cheap DoS lever and a
// historical source of bugs), stateless session tickets allowed.
//
// Thread-safety: immutable after create(); one context is shared (shared_ptr) by sessions on
// every IO loop, which OpenSSL allows for an SSL_CTX that is no longer being configured.
// Ownership: each TlsSession holds a shared_ptr, so the context outlives its last connection.
// OpenSSL types stay out of this header (style rule 2); TlsSession reaches the native handle
// through the private tls_context_impl.h.
// Hot/cold: cold (created at startup or on certificate reload).
#include <memory>
#include <string>

#include "core/status.h"

namespace edgehub::transports::tls {

struct TlsServerConfig {
  // PEM: the server certificate first, then the intermediates (and optionally the CA), which
  // are sent to clients so that they can build the chain to the root they trust.
  std::string cert_chain_path;
  // PEM private key (PKCS#8 or traditional, unencrypted) matching the first certificate.
  std::string key_path;
};

class TlsServerContext;
using TlsServerContextSharedPtr = std::shared_ptr<TlsServerContext>;

class TlsServerContext {
 public:
  // Loads and checks the certificate chain and key. Errors name the file and carry the OpenSSL
  // reason: kNotFound/kIoError for an unreadable file, kInvalidArgument for a file that does
  // not parse or a key that does not match the certificate.
  static core::Result<TlsServerContextSharedPtr> create(const TlsServerConfig& config);

  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  // The configuration this context was loaded from (for logs).
  const TlsServerConfig& config() const { return config_; }

  struct Impl;  // Defined in transports/tls/tls_context_impl.h (holds the SSL_CTX).
  const Impl& impl() const { return *impl_; }

 private:
  TlsServerContext(TlsServerConfig config, std::unique_ptr<Impl> impl);

  TlsServerConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgehub::transports::tls
