#include "transports/tls/tls_context.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <optional>
#include <utility>

#include "transports/tls/file_util.h"
#include "transports/tls/openssl_error.h"
#include "transports/tls/tls_context_impl.h"

namespace edgehub::transports::tls {
namespace {

// TLS 1.2 suites: ECDHE only (forward secrecy), AEAD only, ECDSA and RSA certificates both
// (operators bring their own certificates; the dev certificates are ECDSA). TLS 1.3 keeps
// OpenSSL's default suites, which are all AEAD.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Session-id context for the (server-side) session cache; any constant works for one service.
constexpr unsigned char kSessionIdContext[] = "edgehub-mqtt";

std::string quoted(std::string_view what, const std::string& path) {
  std::string out(what);
  out.append(" '");
  out.append(path);
  out.push_back('\'');
  return out;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

BioPtr memBio(const std::string& bytes) {
  BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  HUB_RELEASE_ASSERT(bio != nullptr, "BIO_new_mem_buf: out of memory");
  return bio;
}

core::Result<std::string> readRequired(const std::string& path, std::string_view what) {
  HUB_ASSIGN_OR_RETURN(std::optional<std::string> bytes, readFileIfExists(path, what));
  if (!bytes) return core::notFound(quoted(what, path) + ": No such file or directory");
  return std::move(*bytes);
}

// Loads the chain: the first certificate is the server's, the rest go out as the chain.
core::Status loadChain(SSL_CTX* ctx, const std::string& path) {
  constexpr std::string_view kWhat = "TLS certificate chain";
  HUB_ASSIGN_OR_RETURN(std::string pem, readRequired(path, kWhat));
  BioPtr bio = memBio(pem);
  X509Ptr leaf(PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) {
    return opensslError(core::StatusCode::kInvalidArgument,
                        quoted(kWhat, path) + ": no PEM certificate could be read");
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return opensslError(core::StatusCode::kInvalidArgument,
                        quoted(kWhat, path) + ": certificate rejected");
  }
  for (;;) {
    X509Ptr extra(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!extra) break;
    // add0 takes ownership on success only.
    if (SSL_CTX_add0_chain_cert(ctx, extra.get()) != 1) {
      return opensslError(core::StatusCode::kInvalidArgument,
                          quoted(kWhat, path) + ": chain certificate rejected");
    }
    (void)extra.release();
  }
  // The loop ends on "no start line" at the end of the file; that is not an error.
  const unsigned long last = ERR_peek_last_error();
  if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM &&
                     ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    return opensslError(core::StatusCode::kInvalidArgument,
                        quoted(kWhat, path) + ": malformed certificate in chain");
  }
  ERR_clear_error();
  return core::Status::ok();
}

core::Status loadKey(SSL_CTX* ctx, const std::string& key_path, const std::string& cert_path) {
  constexpr std::string_view kWhat = "TLS private key";
  HUB_ASSIGN_OR_RETURN(std::string pem, readRequired(key_path, kWhat));
  BioPtr bio = memBio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return opensslError(core::StatusCode::kInvalidArgument,
                        quoted(kWhat, key_path) + ": no unencrypted PEM private key could be read");
  }
  // SSL_CTX_use_PrivateKey already compares the key with the certificate; check again
  // explicitly so that the error always says which two files disagree.
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return opensslError(core::StatusCode::kInvalidArgument,
                        quoted(kWhat, key_path) + " does not match the certificate '" +
                            cert_path + "'");
  }
  return core::Status::ok();
}

}  // namespace

TlsServerContext::TlsServerContext(TlsServerConfig config, std::unique_ptr<Impl> impl)
    : config_(std::move(config)), impl_(std::move(impl)) {}

TlsServerContext::~TlsServerContext() = default;

core::Result<TlsServerContextSharedPtr> TlsServerContext::create(const TlsServerConfig& config) {
  ErrorQueueGuard guard;
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (raw == nullptr) return opensslError(core::StatusCode::kInternal, "SSL_CTX_new");
  auto impl = std::make_unique<Impl>(raw);
  SSL_CTX* ctx = impl->ctx;

  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return opensslError(core::StatusCode::kInternal, "SSL_CTX_set_min_proto_version");
  }
  // No compression: CRIME. No renegotiation: nothing of MQTT needs it, and a client that asks
  // for it repeatedly costs us a full handshake each time. Server preference: our list is
  // ordered by strength, clients' lists sometimes are not.
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    return opensslError(core::StatusCode::kInternal, "SSL_CTX_set_cipher_list");
  }
  if (SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof(kSessionIdContext) - 1) != 1) {
    return opensslError(core::StatusCode::kInternal, "SSL_CTX_set_session_id_context");
  }
  HUB_RETURN_IF_ERROR(loadChain(ctx, config.cert_chain_path));
  HUB_RETURN_IF_ERROR(loadKey(ctx, config.key_path, config.cert_chain_path));
  return TlsServerContextSharedPtr(new TlsServerContext(config, std::move(impl)));
}

}  // namespace edgehub::transports::tls
