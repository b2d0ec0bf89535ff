#include "transports/mqtt/server/link.h"

#include <unistd.h>

namespace edgehub::transports::mqtt {

namespace {
std::string formatPeer(const core::SocketAddress& a) {
  if (a.host.empty()) return "unknown peer";
  if (a.host.find(':') != std::string::npos) return "[" + a.host + "]:" + std::to_string(a.port);
  return a.host + ":" + std::to_string(a.port);
}
}  // namespace

Link::Link(core::TcpConnectionPtr connection, std::unique_ptr<SecureChannel> channel)
    : connection_(std::move(connection)), channel_(std::move(channel)) {
  connection_->setCallbacks(*this);
  peer_ = formatPeer(connection_->peerAddress());
  // MQTT packets are small and latency matters (PUBACKs gate publishers): no Nagle delay.
  connection_->setNoDelay(true).permitUncheckedError();
}

Link::~Link() = default;

core::Status Link::startReading() {
  if (closing_) return core::failedPrecondition("link is closing");
  if (reading_) return core::Status::ok();
  HUB_RETURN_IF_ERROR(connection_->startReading());
  reading_ = true;
  return core::Status::ok();
}

void Link::stopReading() {
  if (!reading_) return;
  connection_->stopReading();
  reading_ = false;
}

core::Status Link::flush() {
  if (output_.empty() || closing_) return core::Status::ok();
  core::Status s;
  if (channel_ != nullptr) {
    cipher_out_.clear();
    s = channel_->send(output_, cipher_out_);
    output_.clear();
    if (!s.isOk()) {
      close();
      return s;
    }
    if (!cipher_out_.empty()) s = connection_->write(core::ConstBytes(cipher_out_));
  } else {
    s = connection_->write(core::ConstBytes(output_));
    output_.clear();
  }
  return s;
}

size_t Link::pendingBytes() const { return output_.size() + connection_->bufferedBytes(); }

void Link::close() {
  if (closing_) return;
  flush().permitUncheckedError();
  if (channel_ != nullptr && !connection_->isClosing()) {
    cipher_out_.clear();
    channel_->shutdown(cipher_out_);
    if (!cipher_out_.empty()) connection_->write(core::ConstBytes(cipher_out_)).permitUncheckedError();
  }
  closing_ = true;
  reading_ = false;
  // TcpConnection::close drops unsent bytes; a refusal (CONNACK 5) must still reach the
  // client, and it almost always went out in write()'s try_write already.
  connection_->close();
}

core::Result<Link::Released> Link::release() {
  if (!output_.empty()) return core::failedPrecondition("link has unflushed output");
  HUB_ASSIGN_OR_RETURN(int fd, connection_->releaseSocket());
  closing_ = true;
  reading_ = false;
  closed_notified_ = true;  // The socket lives on elsewhere: this side reports nothing.
  Released r;
  r.fd = fd;
  r.channel = std::move(channel_);
  return r;
}

core::Result<std::unique_ptr<Link>> Link::adopt(core::Loop& loop, Released released) {
  HUB_ASSIGN_OR_RETURN(core::TcpConnectionPtr conn, core::TcpConnection::adopt(loop, released.fd));
  return std::make_unique<Link>(std::move(conn), std::move(released.channel));
}

void Link::onData(core::ConstBytes data) {
  if (handler_ == nullptr || closing_) return;
  if (channel_ == nullptr) {
    handler_->onLinkData(data);
    return;
  }
  plain_in_.clear();
  cipher_out_.clear();
  core::Status s = channel_->receive(data, plain_in_, cipher_out_);
  if (!cipher_out_.empty()) connection_->write(core::ConstBytes(cipher_out_)).permitUncheckedError();
  if (!plain_in_.empty() && !closing_) handler_->onLinkData(plain_in_);
  if (!s.isOk() && !closed_notified_) {
    // Report the channel's reason (rather than the plain close that follows) before the socket
    // closes, so that whatever the handler records is in place when the peer sees the close.
    const bool was_closing = closing_;
    closing_ = true;
    reading_ = false;
    closed_notified_ = true;
    handler_->onLinkClosed(s);
    if (!was_closing) connection_->close();
    return;
  }
  // The handler may have released the link (hand-off to another loop), taking the channel.
  if (!closing_ && channel_ != nullptr && channel_->peerClosed()) close();
}

void Link::onWriteDone() {
  if (handler_ != nullptr && !closing_) handler_->onLinkWritable();
}

void Link::onClosed(const core::Status& reason) {
  closing_ = true;
  reading_ = false;
  if (closed_notified_ || handler_ == nullptr) return;
  closed_notified_ = true;
  handler_->onLinkClosed(reason);
}

}  // namespace edgehub::transports::mqtt
