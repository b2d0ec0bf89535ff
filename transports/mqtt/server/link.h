#pragma once
// Link: one client connection's byte stream as the MQTT layer sees it: a TcpConnection, with an
// optional SecureChannel (TLS) between the socket and the plaintext.
//
// Writes are gathered: write() appends to the link's output and flush() hands everything
// gathered since the last flush to the socket as one gather write (through the channel when
// there is one), so a session writes once per loop turn however many packets it produced.
//
// Hand-off: release() gives up the socket (dup'd fd) and the channel so that the connection can
// continue on another loop (Link::adopt there). Nothing written may be pending.
//
// Thread-safety: none; a Link lives on one loop. Ownership: owns its TcpConnection and channel;
// the handler must outlive the link. Callbacks never run after the Link is destroyed, and the
// Link may be destroyed from inside onLinkClosed only by handing its owner to deferredDelete.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/loop/tcp.h"
#include "core/status.h"

namespace edgehub::transports::mqtt {

// A transformation of the byte stream (TLS). Pure logic, no IO; may move between threads while
// not in use.
class SecureChannel {
 public:
  virtual ~SecureChannel() = default;
  // Ciphertext in; appends plaintext and any bytes to send back (handshake, alerts).
  virtual core::Status receive(std::span<const uint8_t> in, std::vector<uint8_t>& plaintext,
                               std::vector<uint8_t>& to_send) = 0;
  // Plaintext in; appends the ciphertext to send.
  virtual core::Status send(std::span<const uint8_t> plaintext, std::vector<uint8_t>& to_send) = 0;
  // Appends a close notification.
  virtual void shutdown(std::vector<uint8_t>& to_send) = 0;
  // True once the peer said it closes (TLS close_notify).
  virtual bool peerClosed() const = 0;
};

class LinkHandler {
 public:
  // Plaintext bytes from the peer; valid only during the call.
  virtual void onLinkData(std::span<const uint8_t> data) = 0;
  // Everything flushed so far reached the kernel (resume producing after backpressure).
  virtual void onLinkWritable() = 0;
  // The link closed (peer, error or local close()); exactly once.
  virtual void onLinkClosed(const core::Status& reason) = 0;

 protected:
  ~LinkHandler() = default;
};

class Link final : private core::TcpConnectionCallbacks {
 public:
  Link(core::TcpConnectionPtr connection, std::unique_ptr<SecureChannel> channel);
  ~Link() override;
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  void setHandler(LinkHandler& handler) { handler_ = &handler; }
  core::Status startReading();
  void stopReading();
  bool reading() const { return reading_; }

  // Output buffer of this turn: append encoded packets here, then flush().
  std::vector<uint8_t>& output() { return output_; }
  // Sends output() (encrypted when there is a channel) in one write. Errors close the link.
  core::Status flush();
  // Bytes handed to the socket but not yet to the kernel, plus unflushed output.
  size_t pendingBytes() const;
  // Flushes, sends a TLS close notification if any, and closes. Idempotent.
  void close();
  bool closing() const { return closing_; }

  struct Released {
    int fd = -1;
    std::unique_ptr<SecureChannel> channel;
  };
  // For the hand-off to another loop. REQUIRES: nothing pending. The link is closed afterwards
  // without a callback.
  core::Result<Released> release();
  // Re-creates a link on this loop from a released socket. On error the fd is closed.
  static core::Result<std::unique_ptr<Link>> adopt(core::Loop& loop, Released released);

  std::string peer() const { return peer_; }
  bool secure() const { return channel_ != nullptr; }

 private:
  // core::TcpConnectionCallbacks
  void onData(core::ConstBytes data) override;
  void onWriteDone() override;
  void onClosed(const core::Status& reason) override;

  core::TcpConnectionPtr connection_;
  std::unique_ptr<SecureChannel> channel_;
  LinkHandler* handler_ = nullptr;
  std::vector<uint8_t> output_;
  std::vector<uint8_t> cipher_out_;   // reused: ciphertext to send
  std::vector<uint8_t> plain_in_;     // reused: decrypted input
  std::string peer_;
  bool reading_ = false;
  bool closing_ = false;
  bool closed_notified_ = false;
};

}  // namespace edgehub::transports::mqtt
