#include "transports/tls/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "transports/tls/openssl_error.h"
#include "transports/tls/tls_context_impl.h"

namespace edgehub::transports::tls {
namespace {
// Every TLS connection starts with a handshake record (ContentType 22).
constexpr uint8_t kHandshakeRecordType = 0x16;
}  // namespace

struct TlsSession::Impl {
  Impl() = default;
  ~Impl() { SSL_free(ssl); }  // Frees both BIOs too (SSL_set_bio transferred them).
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  SSL* ssl = nullptr;
  BIO* in = nullptr;   // Socket -> OpenSSL. Owned by ssl.
  BIO* out = nullptr;  // OpenSSL -> socket. Owned by ssl.
};

TlsSession::TlsSession(TlsServerContextSharedPtr context)
    : context_(std::move(context)), impl_(std::make_unique<Impl>()) {
  HUB_RELEASE_ASSERT(context_ != nullptr, "TlsSession needs a context");
  // Out of memory is the only way these fail (style rule 12: crash).
  impl_->ssl = SSL_new(context_->impl().ctx);
  HUB_RELEASE_ASSERT(impl_->ssl != nullptr, "SSL_new failed");
  impl_->in = BIO_new(BIO_s_mem());
  impl_->out = BIO_new(BIO_s_mem());
  HUB_RELEASE_ASSERT(impl_->in != nullptr && impl_->out != nullptr, "BIO_new failed");
  // An empty input BIO means "wait for more bytes" (retry), never EOF: the socket's EOF is the
  // owner's business, reported by closing the connection.
  BIO_set_mem_eof_return(impl_->in, -1);
  SSL_set_bio(impl_->ssl, impl_->in, impl_->out);
  SSL_set_accept_state(impl_->ssl);
}

TlsSession::~TlsSession() {
  // SSL_free may queue nothing, but be sure no error of this connection outlives it.
  ErrorQueueGuard guard;
  impl_.reset();
}

void TlsSession::drainOutput(std::vector<uint8_t>& ciphertext_out) {
  const size_t pending = BIO_ctrl_pending(impl_->out);
  if (pending == 0) return;
  const size_t old = ciphertext_out.size();
  ciphertext_out.resize(old + pending);
  size_t read = 0;
  const int rc = BIO_read_ex(impl_->out, ciphertext_out.data() + old, pending, &read);
  HUB_RELEASE_ASSERT(rc == 1 && read == pending, "memory BIO read short");
}

core::Status TlsSession::fail(core::Status status, std::vector<uint8_t>& ciphertext_out) {
  failed_ = true;
  // The alert OpenSSL wrote (protocol_version, decode_error, ...) tells the peer why.
  drainOutput(ciphertext_out);
  return status;
}

core::Status TlsSession::writeRecord(std::span<const uint8_t> bytes) {
  // A memory BIO accepts everything, so SSL_write_ex completes in one call; anything else is a
  // broken invariant or a fatal session error.
  size_t written = 0;
  if (SSL_write_ex(impl_->ssl, bytes.data(), bytes.size(), &written) != 1 ||
      written != bytes.size()) {
    return opensslError(core::StatusCode::kInternal, "TLS write failed");
  }
  return core::Status::ok();
}

core::Status TlsSession::encrypt(std::span<const std::span<const uint8_t>> plaintext,
                                 std::vector<uint8_t>& ciphertext_out) {
  if (staging_.capacity() < kMaxRecordPlaintext) staging_.reserve(kMaxRecordPlaintext);
  for (std::span<const uint8_t> data : plaintext) {
    while (!data.empty()) {
      if (staging_.empty() && data.size() >= kMaxRecordPlaintext) {
        // Whole records straight from the caller's buffer: no copy. The tail (< one record)
        // goes to staging so that it can share a record with what follows.
        const size_t direct = data.size() - data.size() % kMaxRecordPlaintext;
        HUB_RETURN_IF_ERROR(writeRecord(data.first(direct)));
        data = data.subspan(direct);
        continue;
      }
      const size_t take = std::min(kMaxRecordPlaintext - staging_.size(), data.size());
      staging_.insert(staging_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(take));
      data = data.subspan(take);
      if (staging_.size() == kMaxRecordPlaintext) {
        HUB_RETURN_IF_ERROR(writeRecord(staging_));
        staging_.clear();
      }
    }
  }
  if (!staging_.empty()) {
    HUB_RETURN_IF_ERROR(writeRecord(staging_));
    staging_.clear();
  }
  drainOutput(ciphertext_out);
  return core::Status::ok();
}

core::Status TlsSession::receive(std::span<const uint8_t> ciphertext,
                                 std::vector<uint8_t>& plaintext_out,
                                 std::vector<uint8_t>& ciphertext_out) {
  ErrorQueueGuard guard;
  if (failed_) return core::failedPrecondition("TLS session already failed");
  // After close_notify the peer may send nothing more that we would act on.
  if (peer_closed_) return core::Status::ok();

  if (!handshake_complete_ && !first_byte_seen_ && !ciphertext.empty()) {
    first_byte_seen_ = true;
    saw_tls_record_ = ciphertext[0] == kHandshakeRecordType;
  }
  while (!ciphertext.empty()) {
    const int chunk = static_cast<int>(std::min<size_t>(ciphertext.size(), INT_MAX));
    const int n = BIO_write(impl_->in, ciphertext.data(), chunk);
    HUB_RELEASE_ASSERT(n == chunk, "memory BIO write short");
    ciphertext = ciphertext.subspan(static_cast<size_t>(n));
  }

  if (!handshake_complete_) {
    const int rc = SSL_do_handshake(impl_->ssl);
    if (rc != 1) {
      const int err = SSL_get_error(impl_->ssl, rc);
      if (err == SSL_ERROR_WANT_READ) {
        drainOutput(ciphertext_out);
        return core::Status::ok();
      }
      core::Status status =
          opensslError(core::StatusCode::kUnauthenticated, "TLS handshake failed");
      if (!saw_tls_record_) {
        // The usual cause by far, and OpenSSL's "wrong version number" does not say it.
        status = core::Status(status.code(),
                              std::string(status.message()) +
                                  " (the client did not start a TLS handshake; plain MQTT sent "
                                  "to the TLS port?)");
      }
      return fail(std::move(status), ciphertext_out);
    }
    handshake_complete_ = true;
    // The server's last flight (and TLS 1.3 session tickets) go out before any queued data.
    drainOutput(ciphertext_out);
    if (!pending_.empty()) {
      const std::span<const uint8_t> queued(pending_);
      core::Status status =
          encrypt(std::span<const std::span<const uint8_t>>(&queued, 1), ciphertext_out);
      if (!status.isOk()) return fail(std::move(status), ciphertext_out);
      // Queued plaintext is a one-off of the handshake; give its memory back.
      std::vector<uint8_t>().swap(pending_);
    }
  }

  // Read until OpenSSL wants more bytes: one call may carry many records, and a record may
  // have been completed by the bytes just fed.
  for (;;) {
    const size_t old = plaintext_out.size();
    plaintext_out.resize(old + kMaxRecordPlaintext);
    size_t read = 0;
    const int rc = SSL_read_ex(impl_->ssl, plaintext_out.data() + old, kMaxRecordPlaintext, &read);
    plaintext_out.resize(old + (rc == 1 ? read : 0));
    if (rc == 1) continue;
    const int err = SSL_get_error(impl_->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      break;
    }
    return fail(opensslError(core::StatusCode::kInvalidArgument, "TLS record error"),
                ciphertext_out);
  }
  // Replies produced while reading: key updates, alerts, our close_notify answer.
  drainOutput(ciphertext_out);
  return core::Status::ok();
}

core::Status TlsSession::send(std::span<const std::span<const uint8_t>> plaintext,
                              std::vector<uint8_t>& ciphertext_out) {
  ErrorQueueGuard guard;
  if (failed_) return core::failedPrecondition("TLS session already failed");
  if (shutdown_sent_) return core::failedPrecondition("TLS session is shut down");
  if (!handshake_complete_) {
    for (std::span<const uint8_t> data : plaintext) pending_.insert(pending_.end(), data.begin(), data.end());
    return core::Status::ok();
  }
  core::Status status = encrypt(plaintext, ciphertext_out);
  if (!status.isOk()) return fail(std::move(status), ciphertext_out);
  return status;
}

void TlsSession::shutdown(std::vector<uint8_t>& ciphertext_out) {
  ErrorQueueGuard guard;
  if (shutdown_sent_ || failed_) return;
  shutdown_sent_ = true;
  // Before the handshake completes there is no session to close: OpenSSL refuses
  // ("shutdown while in init") and the owner just closes the socket.
  if (!handshake_complete_) return;
  // 0 = close_notify sent, peer's not yet seen; 1 = both sent. Either way we are done: the
  // owner closes the socket after flushing and does not wait for the peer's reply.
  (void)SSL_shutdown(impl_->ssl);
  drainOutput(ciphertext_out);
}

std::string TlsSession::protocolVersion() const {
  if (!handshake_complete_) return std::string();
  return SSL_get_version(impl_->ssl);
}

std::string TlsSession::cipherName() const {
  if (!handshake_complete_) return std::string();
  const char* name = SSL_get_cipher_name(impl_->ssl);
  return name != nullptr ? std::string(name) : std::string();
}

}  // namespace edgehub::transports::tls
