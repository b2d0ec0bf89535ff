#include "core/loop/tcp.h"

#include <uv.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/loop/uv_error.h"
#include "core/loop/uv_handle.h"

namespace edgehub::core {

namespace {

// Gather writes with up to this many buffers use a stack array of uv_buf_t; more falls back to
// a heap vector (cold: MQTT batches are coalesced long before they reach this count).
constexpr std::size_t kStackIovecs = 64;

Status parseAddress(const SocketAddress& address, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  int rc;
  if (address.host.find(':') != std::string::npos) {
    rc = uv_ip6_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in6*>(out));
  } else {
    rc = uv_ip4_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in*>(out));
  }
  if (rc != 0) {
    return invalidArgument("not a numeric IP address: '" + address.host + "'");
  }
  return Status::ok();
}

SocketAddress toSocketAddress(const sockaddr_storage& storage) {
  SocketAddress result;
  char name[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    uv_ip6_name(in6, name, sizeof(name));
    result.port = ntohs(in6->sin6_port);
  } else if (storage.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&storage);
    uv_ip4_name(in4, name, sizeof(name));
    result.port = ntohs(in4->sin_port);
  }
  result.host = name;
  return result;
}

uv_stream_t* asStream(uv_tcp_t* tcp) { return reinterpret_cast<uv_stream_t*>(tcp); }

}  // namespace

Result<SocketAddress> parseSocketAddress(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    std::string m = "'";
    m.append(text).append("' is not host:port (e.g. 127.0.0.1:1883)");
    return invalidArgument(std::move(m));
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    std::string m = "invalid port in '";
    m.append(text).append("'");
    return invalidArgument(std::move(m));
  }
  SocketAddress address{std::string(host), static_cast<uint16_t>(port)};
  sockaddr_storage storage;
  HUB_RETURN_IF_ERROR(parseAddress(address, &storage));
  return address;
}

std::string formatSocketAddress(const SocketAddress& a) {
  if (a.host.find(':') != std::string::npos) return "[" + a.host + "]:" + std::to_string(a.port);
  return a.host + ":" + std::to_string(a.port);
}

// One pooled write: the libuv request and the bytes it sends, a single allocation reused for
// the life of the connection. owner is nulled when the connection dies first, so the late
// (UV_ECANCELED) callback only frees it.
struct TcpConnection::WriteRequest {
  uv_write_t req;
  std::vector<uint8_t> bytes;
  TcpConnection* owner;
};

// ---- TcpConnection -----------------------------------------------------------------------

TcpConnection::TcpConnection(Loop& loop, TcpConnectionCallbacks* callbacks)
    : loop_(loop), callbacks_(callbacks), handle_(uvdetail::allocate<uv_tcp_t>(this)) {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpConnection created off the loop thread");
  uv_tcp_init(loop_.uvLoop(), handle_);  // Cannot fail without flags.
}

TcpConnection::~TcpConnection() {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpConnection destroyed off the loop thread");
  if (in_flight_ != nullptr) in_flight_->owner = nullptr;  // Its callback frees it.
  delete spare_;
  if (connect_req_ != nullptr) connect_req_->data = nullptr;  // Its callback frees it.
  if (handle_ != nullptr) {
    handle_->data = nullptr;
    auto* handle = reinterpret_cast<uv_handle_t*>(handle_);
    // If already closing, the pending onClose sees the null owner and only frees.
    if (!uv_is_closing(handle)) uv_close(handle, &uvdetail::freeOnClose);
  }
}

Result<TcpConnectionPtr> TcpConnection::connect(Loop& loop, const SocketAddress& address,
                                                TcpConnectionCallbacks& callbacks) {
  sockaddr_storage addr;
  HUB_RETURN_IF_ERROR(parseAddress(address, &addr));
  TcpConnectionPtr conn(new TcpConnection(loop, &callbacks));
  auto* req = uvdetail::allocate<uv_connect_t>(conn.get());
  conn->connect_req_ = req;
  const int rc = uv_tcp_connect(
      req, conn->handle_, reinterpret_cast<const sockaddr*>(&addr),
      [](uv_connect_t* r, int status) noexcept {
        auto* self = static_cast<TcpConnection*>(r->data);
        std::free(r);
        if (self == nullptr) return;  // The connection died first.
        self->connect_req_ = nullptr;
        if (status < 0) {
          if (self->closing_) return;  // Cancelled by our own close(); onClosed follows.
          Status error = fromUv(status).withContext("connect");
          self->closeWith(error);
          if (self->callbacks_ != nullptr) self->callbacks_->onConnected(error);
          return;
        }
        self->connected_ = true;
        if (self->callbacks_ != nullptr) self->callbacks_->onConnected(Status::ok());
      });
  if (rc != 0) {
    std::free(req);
    conn->connect_req_ = nullptr;
    return fromUv(rc).withContext("uv_tcp_connect");
  }
  return conn;
}

Result<TcpConnectionPtr> TcpConnection::adopt(Loop& loop, int fd) {
  HUB_ASSERT(loop.isThreadSafe(), "TcpConnection adopted off the loop thread");
  TcpConnectionPtr conn(new TcpConnection(loop, nullptr));
  const int rc = uv_tcp_open(conn->handle_, fd);
  if (rc != 0) {
    ::close(fd);
    return fromUv(rc).withContext("uv_tcp_open");
  }
  conn->connected_ = true;
  return conn;
}

Result<int> TcpConnection::releaseSocket() {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpConnection used off the loop thread");
  if (closing_ || handle_ == nullptr) return failedPrecondition("connection is closing");
  if (bufferedBytes() != 0) return failedPrecondition("connection has unsent bytes");
  uv_os_fd_t fd = -1;
  const int rc = uv_fileno(reinterpret_cast<uv_handle_t*>(handle_), &fd);
  if (rc != 0) return fromUv(rc).withContext("uv_fileno");
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return ioError(std::string("dup: ") + std::strerror(errno));
  uv_read_stop(asStream(handle_));
  callbacks_ = nullptr;  // The new owner speaks for the socket now; this side says nothing.
  closeWith(Status::ok());
  return copy;
}

Status TcpConnection::startReading() {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpConnection used off the loop thread");
  HUB_ASSERT(callbacks_ != nullptr, "startReading() before setCallbacks()");
  if (closing_ || handle_ == nullptr) return failedPrecondition("connection is closing");
  const int rc = uv_read_start(
      asStream(handle_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
        auto* self = static_cast<TcpConnection*>(h->data);
        if (self == nullptr) {
          *buf = uv_buf_init(nullptr, 0);  // Makes libuv report UV_ENOBUFS; we ignore it.
          return;
        }
        // The whole loop shares one buffer: data is consumed inside onData before any other
        // read on this loop can be allocated.
        std::span<char> rb = self->loop_.readBuffer();
        *buf = uv_buf_init(rb.data(), static_cast<unsigned int>(rb.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
        auto* self = static_cast<TcpConnection*>(s->data);
        if (self == nullptr) return;
        if (nread > 0) {
          self->callbacks_->onData(
              ConstBytes(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread)));
        } else if (nread == UV_EOF) {
          self->closeWith(Status::ok());
        } else if (nread < 0) {
          self->closeWith(fromUv(static_cast<int>(nread)).withContext("read"));
        }
        // nread == 0 is EAGAIN, not EOF (style anti-pattern 10): nothing to do.
      });
  return fromUv(rc);
}

void TcpConnection::stopReading() {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpConnection used off the loop thread");
  if (handle_ != nullptr && !closing_) uv_read_stop(asStream(handle_));
}

Status TcpConnection::write(std::span<const ConstBytes> buffers) {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpConnection used off the loop thread");
  if (closing_ || handle_ == nullptr) return failedPrecondition("write on a closing connection");
  if (!connected_) return failedPrecondition("write before the connection is established");

  if (in_flight_ != nullptr) {
    // Keep order: everything queues behind the request libuv holds.
    for (ConstBytes b : buffers) pending_.insert(pending_.end(), b.begin(), b.end());
    return Status::ok();
  }

  uv_buf_t stack_bufs[kStackIovecs];
  std::vector<uv_buf_t> heap_bufs;
  uv_buf_t* bufs = stack_bufs;
  if (buffers.size() > kStackIovecs) {
    heap_bufs.resize(buffers.size());
    bufs = heap_bufs.data();
  }
  std::size_t total = 0;
  unsigned int nbufs = 0;
  for (ConstBytes b : buffers) {
    if (b.empty()) continue;
    bufs[nbufs++] = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(b.data())),
                                static_cast<unsigned int>(b.size()));
    total += b.size();
  }
  if (total == 0) return Status::ok();

  // Fast path: one writev straight into the kernel, no request, no copy.
  const int rc = uv_try_write(asStream(handle_), bufs, nbufs);
  if (rc < 0 && rc != UV_EAGAIN) {
    Status error = fromUv(rc).withContext("write");
    closeWith(error);
    return error;
  }
  std::size_t written = rc > 0 ? static_cast<std::size_t>(rc) : 0;
  if (written == total) return Status::ok();

  // Slow path: the kernel buffer is full. Copy the unsent tail (pending_ is empty whenever no
  // request is in flight) and hand it to libuv through the pooled request.
  for (ConstBytes b : buffers) {
    if (written >= b.size()) {
      written -= b.size();
      continue;
    }
    pending_.insert(pending_.end(), b.begin() + static_cast<std::ptrdiff_t>(written), b.end());
    written = 0;
  }
  sendPending();
  return closing_ ? close_reason_ : Status::ok();
}

void TcpConnection::sendPending() {
  WriteRequest* request = spare_ != nullptr ? spare_ : new WriteRequest{};
  spare_ = nullptr;
  request->owner = this;
  request->req.data = request;
  request->bytes.clear();
  request->bytes.swap(pending_);  // pending_ inherits the request's old capacity.
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(request->bytes.data()),
                             static_cast<unsigned int>(request->bytes.size()));
  const int rc = uv_write(&request->req, asStream(handle_), &buf, 1, &TcpConnection::onWrite);
  if (rc != 0) {
    spare_ = request;
    closeWith(fromUv(rc).withContext("write"));
    return;
  }
  in_flight_ = request;
}

void TcpConnection::onWrite(uv_write_s* req, int status) noexcept {
  auto* request = static_cast<WriteRequest*>(req->data);
  if (request->owner == nullptr) {
    delete request;  // The connection is gone; this is the UV_ECANCELED tail of its close.
    return;
  }
  request->owner->onWriteComplete(request, status);
}

void TcpConnection::onWriteComplete(WriteRequest* request, int status) noexcept {
  in_flight_ = nullptr;
  request->bytes.clear();  // Keeps capacity for the next fallback write.
  delete spare_;           // At most one spare is worth keeping.
  spare_ = request;
  if (status < 0) {
    if (!closing_) closeWith(fromUv(status).withContext("write"));
    return;
  }
  if (closing_) return;
  if (!pending_.empty()) {
    sendPending();
    return;
  }
  if (callbacks_ != nullptr) callbacks_->onWriteDone();
}

std::size_t TcpConnection::bufferedBytes() const {
  return (in_flight_ != nullptr ? in_flight_->bytes.size() : 0) + pending_.size();
}

void TcpConnection::close() {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpConnection used off the loop thread");
  closeWith(Status::ok());
}

void TcpConnection::closeWith(Status reason) {
  if (closing_ || handle_ == nullptr) return;
  closing_ = true;
  connected_ = false;
  close_reason_ = std::move(reason);
  pending_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) noexcept {
    auto* self = static_cast<TcpConnection*>(h->data);
    std::free(h);
    if (self == nullptr) return;
    self->handle_ = nullptr;
    // Copy first: onClosed may destroy the connection, and nothing below touches it.
    Status reason_copy = self->close_reason_;
    if (self->callbacks_ != nullptr) self->callbacks_->onClosed(reason_copy);
  });
}

SocketAddress TcpConnection::peerAddress() const {
  sockaddr_storage storage{};
  int len = sizeof(storage);
  if (handle_ == nullptr ||
      uv_tcp_getpeername(handle_, reinterpret_cast<sockaddr*>(&storage), &len) != 0) {
    return {};
  }
  return toSocketAddress(storage);
}

Status TcpConnection::setNoDelay(bool enable) {
  if (handle_ == nullptr || closing_) return failedPrecondition("connection is closing");
  return fromUv(uv_tcp_nodelay(handle_, enable ? 1 : 0));
}

// ---- TcpListener -------------------------------------------------------------------------

TcpListener::TcpListener(Loop& loop, TcpListenerCallbacks& callbacks)
    : loop_(loop), callbacks_(callbacks), handle_(uvdetail::allocate<uv_tcp_t>(this)) {
  uv_tcp_init(loop_.uvLoop(), handle_);  // Cannot fail without flags.
}

TcpListener::~TcpListener() {
  HUB_ASSERT(loop_.isThreadSafe(), "TcpListener destroyed off the loop thread");
  uvdetail::closeAndFree(handle_);
}

Result<TcpListenerPtr> TcpListener::create(Loop& loop, const SocketAddress& address,
                                           TcpListenerCallbacks& callbacks, int backlog) {
  HUB_ASSERT(loop.isThreadSafe(), "TcpListener created off the loop thread");
  sockaddr_storage addr;
  HUB_RETURN_IF_ERROR(parseAddress(address, &addr));
  TcpListenerPtr listener(new TcpListener(loop, callbacks));
  int rc = uv_tcp_bind(listener->handle_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc != 0) return fromUv(rc).withContext("bind " + address.host);
  rc = uv_listen(asStream(listener->handle_), backlog, [](uv_stream_t* s, int status) noexcept {
    auto* self = static_cast<TcpListener*>(s->data);
    if (self != nullptr) self->onConnection(status);
  });
  // libuv defers some bind errors (EADDRINUSE) to listen().
  if (rc != 0) return fromUv(rc).withContext("listen " + address.host);
  sockaddr_storage bound{};
  int len = sizeof(bound);
  rc = uv_tcp_getsockname(listener->handle_, reinterpret_cast<sockaddr*>(&bound), &len);
  if (rc != 0) return fromUv(rc).withContext("getsockname");
  listener->local_address_ = toSocketAddress(bound);
  return listener;
}

void TcpListener::onConnection(int status) noexcept {
  if (status < 0) {
    callbacks_.onAcceptError(fromUv(status).withContext("accept"));
    return;
  }
  TcpConnectionPtr conn(new TcpConnection(loop_, nullptr));
  const int rc = uv_accept(asStream(handle_), asStream(conn->handle_));
  if (rc != 0) {
    callbacks_.onAcceptError(fromUv(rc).withContext("accept"));
    return;  // conn's destructor closes its handle.
  }
  conn->connected_ = true;
  callbacks_.onAccept(std::move(conn));
}

}  // namespace edgehub::core
