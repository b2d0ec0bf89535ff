#pragma once
// Test support for tests/transports/tls/: a temporary directory and an in-memory OpenSSL
// client (memory BIOs, no sockets) that talks to a TlsSession through byte vectors.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "transports/tls/tls_session.h"

namespace edgehub::transports::tls::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "edgehub-tls-XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::vector<uint8_t> bytesOf(std::string_view s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

// A TLS client over memory BIOs that verifies the server against `ca_path` with a hostname
// (DNS) or IP check. max_version 0 = OpenSSL's default maximum.
class TestClient {
 public:
  TestClient(const std::string& ca_path, const std::string& name, bool name_is_ip,
             int max_version = 0) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    // Let the client go as low as the test asks, so that the *server's* policy is what refuses.
    SSL_CTX_set_security_level(ctx_, 0);
    SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
    if (max_version != 0) SSL_CTX_set_max_proto_version(ctx_, max_version);
    SSL_CTX_load_verify_locations(ctx_, ca_path.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_connect_state(ssl_);
    if (name_is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, name.c_str());
      SSL_set1_host(ssl_, name.c_str());
    }
  }
  ~TestClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ERR_clear_error();
  }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Drives the handshake; returns SSL_get_error's code (SSL_ERROR_NONE once complete).
  int handshakeStep() {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl_);
    return rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
  }
  bool handshakeDone() const { return SSL_is_init_finished(ssl_) == 1; }
  long verifyResult() const { return SSL_get_verify_result(ssl_); }

  void feed(std::span<const uint8_t> bytes) {
    if (!bytes.empty()) BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
  }
  std::vector<uint8_t> takeOutput() {
    std::vector<uint8_t> out(BIO_ctrl_pending(out_));
    if (!out.empty()) BIO_read(out_, out.data(), static_cast<int>(out.size()));
    return out;
  }
  void write(std::span<const uint8_t> bytes) {
    size_t written = 0;
    SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written);
  }
  // Reads every decrypted byte available; sets *closed when close_notify was read.
  std::vector<uint8_t> readAll(bool* closed = nullptr, int* last_error = nullptr) {
    std::vector<uint8_t> out;
    uint8_t buffer[16384];
    for (;;) {
      size_t n = 0;
      const int rc = SSL_read_ex(ssl_, buffer, sizeof(buffer), &n);
      if (rc == 1) {
        out.insert(out.end(), buffer, buffer + n);
        continue;
      }
      const int err = SSL_get_error(ssl_, rc);
      if (closed != nullptr) *closed = err == SSL_ERROR_ZERO_RETURN;
      if (last_error != nullptr) *last_error = err;
      ERR_clear_error();
      return out;
    }
  }
  void shutdown() { SSL_shutdown(ssl_); }
  SSL* ssl() { return ssl_; }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // Owned by ssl_.
  BIO* out_ = nullptr;  // Owned by ssl_.
};

// Moves bytes both ways until neither side produces any. Returns the server's first error.
inline core::Status pumpHandshake(TestClient& client, TlsSession& server,
                                  std::vector<uint8_t>& server_plain) {
  for (int round = 0; round < 20; ++round) {
    client.handshakeStep();
    std::vector<uint8_t> to_server = client.takeOutput();
    if (to_server.empty()) return core::Status::ok();
    std::vector<uint8_t> to_client;
    core::Status status = server.receive(to_server, server_plain, to_client);
    client.feed(to_client);
    if (!status.isOk()) {
      client.handshakeStep();
      return status;
    }
  }
  return core::internalError("handshake did not converge");
}

}  // namespace edgehub::transports::tls::testing
