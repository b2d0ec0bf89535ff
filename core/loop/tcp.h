#pragma once
// TcpListener and TcpConnection: TCP over libuv streams (uv_tcp_t).
//
// Thread-safety: neither class is thread-safe; every method REQUIRES: on loop thread.
// Ownership: callers own listeners and connections (unique_ptr). Each must be destroyed before
// its Loop is closed. Destroying one closes it; libuv handle and write-request memory is freed
// later in libuv's callbacks, never while libuv may still touch it (style rule 14).
// Callbacks: every callback runs on the loop thread, never after the object is destroyed. The
// callbacks object must outlive the listener/connection that calls it. Destroying a connection
// from inside its own callback is not allowed (the caller's stack still uses it): hand it to
// Loop::deferredDelete() (TcpConnection is a DeferredDeletable).
//
// Hot-path notes (style rule 31):
//  - Reads land in the Loop's shared read buffer (alloc_cb hands it out), so no per-read
//    allocation; onData's bytes are valid only during the call.
//  - write() gathers several buffers into one writev via uv_try_write. Whatever the kernel does
//    not take is copied into the connection's pooled write request (one uv_write_t plus a
//    byte vector whose capacity is reused), so the caller's buffers are free when write()
//    returns. While that request is in flight, later writes append to a second pooled buffer
//    that is sent when the first completes: at most one uv_write_t per connection at a time.
//    TODO(perf): zero-copy fallback that holds MessageRefs instead of copying, once they exist.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/loop/loop.h"
#include "core/status.h"

struct uv_tcp_s;
struct uv_stream_s;
struct uv_write_s;
struct uv_connect_s;

namespace edgehub::core {

using ConstBytes = std::span<const uint8_t>;

// A numeric IP address and port, e.g. {"127.0.0.1", 8883} or {"::1", 8883}.
struct SocketAddress {
  std::string host;
  uint16_t port = 0;
};

// Parses "host:port" or "[v6]:port" with a numeric host (no DNS). Errors: kInvalidArgument.
Result<SocketAddress> parseSocketAddress(std::string_view text);
// "127.0.0.1:1883" or "[::1]:1883".
std::string formatSocketAddress(const SocketAddress& address);

class TcpConnection;
using TcpConnectionPtr = std::unique_ptr<TcpConnection>;

class TcpConnectionCallbacks {
 public:
  virtual ~TcpConnectionCallbacks() = default;
  // Only for connections from TcpConnection::connect(): the connect finished. On error the
  // connection is closed and onClosed() follows.
  virtual void onConnected(const Status& status) { status.permitUncheckedError(); }
  // Bytes received. Valid only during the call (they live in the loop's shared buffer).
  virtual void onData(ConstBytes data) = 0;
  // Every byte that write() had to buffer has been handed to the kernel, i.e. the connection's
  // user-space send buffer just became empty. Not called for writes that the kernel took whole
  // inside write(). Use it to resume producing after bufferedBytes() grew.
  virtual void onWriteDone() = 0;
  // The connection is closed, exactly once, from libuv's close callback (never re-entrantly
  // from inside a call on the connection). reason: OK for a local close() or a clean EOF,
  // otherwise the read/write/connect error. After this only the destructor may be called; it
  // may be called from inside onClosed (the connection touches nothing after the call).
  virtual void onClosed(const Status& reason) = 0;
};

class TcpConnection final : public DeferredDeletable {
 public:
  // Starts a non-blocking connect to a numeric address; the outcome arrives in
  // callbacks.onConnected(). Fails immediately for a malformed address.
  static Result<TcpConnectionPtr> connect(Loop& loop, const SocketAddress& address,
                                          TcpConnectionCallbacks& callbacks);
  // Takes over a connected stream socket (e.g. one released by releaseSocket() on another
  // loop). The connection starts without callbacks, like an accepted one. On error the fd is
  // closed.
  static Result<TcpConnectionPtr> adopt(Loop& loop, int fd);

  ~TcpConnection() override;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // Accepted connections start without callbacks: set them, then startReading().
  void setCallbacks(TcpConnectionCallbacks& callbacks) { callbacks_ = &callbacks; }
  Status startReading();
  // Stops delivering onData (backpressure: the kernel buffer fills and the peer slows down).
  void stopReading();

  // Sends the buffers in order as one gather write. The buffers may be released as soon as
  // write() returns. Errors: FAILED_PRECONDITION if closing or not yet connected; a socket
  // error closes the connection (onClosed follows) and is returned.
  Status write(std::span<const ConstBytes> buffers);
  Status write(ConstBytes buffer) { return write(std::span<const ConstBytes>(&buffer, 1)); }
  // Bytes accepted by write() but not yet handed to the kernel (for watermarks).
  std::size_t bufferedBytes() const;

  // Starts closing; onClosed(OK) follows from the close callback. Unsent buffered bytes are
  // dropped. Idempotent.
  void close();
  bool isClosing() const { return closing_; }
  // Hands the socket over to another owner (typically another loop's adopt()): returns a
  // duplicate of the socket's fd and closes this connection without calling any callback, so
  // the peer sees nothing. REQUIRES: nothing buffered (bufferedBytes() == 0). Bytes not yet
  // read stay in the kernel for the new owner. Errors: FAILED_PRECONDITION (closing, buffered
  // bytes), or the dup() error.
  Result<int> releaseSocket();
  bool isConnected() const { return connected_; }

  SocketAddress peerAddress() const;
  Status setNoDelay(bool enable);

 private:
  friend class TcpListener;
  struct WriteRequest;

  TcpConnection(Loop& loop, TcpConnectionCallbacks* callbacks);
  void closeWith(Status reason);
  void sendPending();
  void onWriteComplete(WriteRequest* request, int status) noexcept;
  static void onWrite(uv_write_s* req, int status) noexcept;

  Loop& loop_;
  TcpConnectionCallbacks* callbacks_;
  uv_tcp_s* handle_;                   // Null once close_cb ran (memory freed there).
  uv_connect_s* connect_req_ = nullptr;  // In-flight connect, freed in its callback.
  WriteRequest* in_flight_ = nullptr;  // The one uv_write_t libuv currently holds.
  WriteRequest* spare_ = nullptr;      // Pooled request, reused for the next fallback write.
  std::vector<uint8_t> pending_;       // Bytes written while in_flight_ was busy.
  Status close_reason_;
  bool closing_ = false;
  bool connected_ = false;
};

class TcpListenerCallbacks {
 public:
  virtual ~TcpListenerCallbacks() = default;
  // A new connection; the callee owns it from now on (set callbacks, startReading()).
  virtual void onAccept(TcpConnectionPtr connection) = 0;
  // accept() failed (e.g. EMFILE). The listener stays open and keeps listening.
  virtual void onAcceptError(const Status& status) = 0;
};

class TcpListener;
using TcpListenerPtr = std::unique_ptr<TcpListener>;

class TcpListener {
 public:
  // Binds a numeric address (no DNS: a blocking resolver must never run on a loop) and
  // listens. Port 0 picks a free port; localAddress() reports the one bound.
  static Result<TcpListenerPtr> create(Loop& loop, const SocketAddress& address,
                                       TcpListenerCallbacks& callbacks, int backlog = 511);
  ~TcpListener();  // Stops accepting; already accepted connections are unaffected.
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  const SocketAddress& localAddress() const { return local_address_; }

 private:
  TcpListener(Loop& loop, TcpListenerCallbacks& callbacks);
  void onConnection(int status) noexcept;

  Loop& loop_;
  TcpListenerCallbacks& callbacks_;
  uv_tcp_s* handle_;
  SocketAddress local_address_;
};

}  // namespace edgehub::core
