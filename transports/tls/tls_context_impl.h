#pragma once
// Private to transports/tls/: the OpenSSL side of TlsServerContext, shared with TlsSession.
// Not part of the public surface (it includes <openssl/ssl.h>).
//
// Thread-safety: ctx is never modified after TlsServerContext::create() returns; SSL_new() on
// it is safe from any thread.
#include <openssl/ssl.h>

#include "transports/tls/tls_context.h"

namespace edgehub::transports::tls {

struct TlsServerContext::Impl {
  explicit Impl(SSL_CTX* c) : ctx(c) {}
  ~Impl() { SSL_CTX_free(ctx); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  SSL_CTX* ctx;  // Owned.
};

}  // namespace edgehub::transports::tls
