#pragma once
// TlsSession: the server side of one TLS connection as pure logic over memory BIOs. The owner
// (the MQTT connection on its IO loop) moves bytes between the socket and this object; the
// session never touches a socket, a loop or a clock, so tests drive it byte by byte.
//
//   socket bytes --receive()--> plaintext_out (to the MQTT decoder)
//                           \-> ciphertext_out (handshake records, alerts: to the socket)
//   MQTT packets --send()----> ciphertext_out (to the socket)
//
// Output vectors are appended to, never cleared, so a caller can keep one write buffer per
// connection and reuse its capacity. After a non-OK Status, failed() is true, ciphertext_out
// may hold an alert that should still be written, and the connection should be closed once it
// is flushed (wantsClose()).
//
// Thread-safety: none; a session belongs to one connection on one loop thread. Every call
// leaves the calling thread's OpenSSL error queue empty, so errors never leak between the
// connections of a thread.
// Ownership: holds a shared_ptr to its TlsServerContext; owns its SSL object and buffers.
// Hot/warm: receive() and send() are hot; at steady state they do not allocate (buffers are
// reused, OpenSSL's record buffers are kept).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "transports/tls/tls_context.h"

namespace edgehub::transports::tls {

class TlsSession {
 public:
  // The largest TLS record payload; send() coalesces small buffers up to this size.
  static constexpr size_t kMaxRecordPlaintext = 16384;

  explicit TlsSession(TlsServerContextSharedPtr context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Feeds bytes read from the socket (any fragmentation, any number of records). Appends the
  // decrypted application bytes to plaintext_out and whatever must go to the peer to
  // ciphertext_out. Completing the handshake here also flushes plaintext queued by send().
  // Errors: kUnauthenticated "TLS handshake failed: <reason>" (no common protocol, bad
  // ClientHello, not TLS at all), kInvalidArgument "TLS record error: <reason>" after the
  // handshake, kFailedPrecondition when called after a failure. Bytes that arrive after the
  // peer's close_notify are ignored.
  core::Status receive(std::span<const uint8_t> ciphertext, std::vector<uint8_t>& plaintext_out,
                       std::vector<uint8_t>& ciphertext_out);

  // Encrypts the concatenation of `plaintext` (e.g. an MQTT header and its payload) into as
  // few records as possible: small buffers are coalesced in a reused staging buffer up to
  // kMaxRecordPlaintext, large ones are written directly. Before the handshake completes the
  // bytes are queued and sent by the receive() that completes it. Error after shutdown() or a
  // failure: kFailedPrecondition.
  core::Status send(std::span<const std::span<const uint8_t>> plaintext,
                    std::vector<uint8_t>& ciphertext_out);

  // Appends a close_notify alert (once; nothing before the handshake completes or after a
  // failure). Afterwards send() fails and wantsClose() is true.
  void shutdown(std::vector<uint8_t>& ciphertext_out);

  bool handshakeComplete() const { return handshake_complete_; }
  // The peer sent close_notify: no more application data will come.
  bool peerClosed() const { return peer_closed_; }
  // receive() returned an error; the session is unusable.
  bool failed() const { return failed_; }
  // The connection should be closed once ciphertext already produced has been written.
  bool wantsClose() const { return failed_ || peer_closed_ || shutdown_sent_; }
  // Plaintext queued by send() before the handshake completed (for backpressure decisions).
  size_t pendingPlaintextBytes() const { return pending_.size(); }
  // "TLSv1.3", "TLSv1.2"; empty before the handshake completes.
  std::string protocolVersion() const;
  // The negotiated cipher suite (e.g. "TLS_AES_128_GCM_SHA256"); empty before the handshake.
  std::string cipherName() const;

 private:
  struct Impl;

  core::Status fail(core::Status status, std::vector<uint8_t>& ciphertext_out);
  core::Status encrypt(std::span<const std::span<const uint8_t>> plaintext,
                       std::vector<uint8_t>& ciphertext_out);
  core::Status writeRecord(std::span<const uint8_t> bytes);
  void drainOutput(std::vector<uint8_t>& ciphertext_out);

  TlsServerContextSharedPtr context_;  // Declared first: the SSL object must die before it.
  std::unique_ptr<Impl> impl_;
  std::vector<uint8_t> staging_;  // Coalescing buffer, capacity kMaxRecordPlaintext.
  std::vector<uint8_t> pending_;  // Plaintext sent before the handshake completed.
  bool handshake_complete_ = false;
  bool peer_closed_ = false;
  bool failed_ = false;
  bool shutdown_sent_ = false;
  bool first_byte_seen_ = false;
  bool saw_tls_record_ = true;  // The first byte from the peer started a handshake record.
};

}  // namespace edgehub::transports::tls
