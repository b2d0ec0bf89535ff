#include "transports/mqtt/blocking_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "core/loop/tcp.h"

namespace edgehub::transports::mqtt {

std::unique_ptr<BlockingClient> BlockingClient::open(const std::string& address) {
  auto parsed = core::parseSocketAddress(address);
  if (!parsed.isOk()) return nullptr;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(parsed.value().port);
  if (::inet_pton(AF_INET, parsed.value().host.c_str(), &sa.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return nullptr;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return std::unique_ptr<BlockingClient>(new BlockingClient(fd));
}

BlockingClient::BlockingClient(int fd)
    : fd_(fd), decoder_(DecoderOptions{Role::kClient, 1 << 24, 4096}, handler_) {}

BlockingClient::~BlockingClient() { ::close(fd_); }

bool BlockingClient::sendBytes(std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool BlockingClient::send(const Packet& packet) {
  ByteBuffer buf;
  if (!appendPacket(buf, packet).isOk()) return false;
  return sendBytes(buf);
}

core::Status BlockingClient::Handler::onPacket(const Packet& packet) {
  ReceivedPacket r;
  r.type = packetTypeOf(packet);
  if (const auto* p = std::get_if<Publish>(&packet)) {
    r.topic = std::string(p->topic);
    r.payload.assign(reinterpret_cast<const char*>(p->payload.data()), p->payload.size());
    r.packet_id = p->packet_id;
    r.qos = p->qos;
    r.dup = p->dup;
  } else if (const auto* c = std::get_if<Connack>(&packet)) {
    r.connack_code = static_cast<uint8_t>(c->code);
    r.session_present = c->session_present;
  } else if (const auto* s = std::get_if<Suback>(&packet)) {
    r.packet_id = s->packet_id;
    r.suback_codes.assign(s->return_codes.begin(), s->return_codes.end());
  } else if (const auto* a = std::get_if<Puback>(&packet)) {
    r.packet_id = a->packet_id;
  } else if (const auto* u = std::get_if<Unsuback>(&packet)) {
    r.packet_id = u->packet_id;
  }
  packets.push_back(std::move(r));
  return core::Status::ok();
}

bool BlockingClient::readSome(std::chrono::steady_clock::time_point deadline) {
  if (closed_) return false;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  pollfd p{fd_, POLLIN, 0};
  const int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
  if (rc <= 0) return false;
  uint8_t buf[65536];
  const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    closed_ = true;
    return false;
  }
  if (!decoder_.feed(std::span<const uint8_t>(buf, static_cast<size_t>(n))).isOk()) closed_ = true;
  return true;
}

std::optional<ReceivedPacket> BlockingClient::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (handler_.packets.empty()) {
    if (!readSome(deadline) && (closed_ || std::chrono::steady_clock::now() >= deadline)) break;
  }
  if (handler_.packets.empty()) return std::nullopt;
  ReceivedPacket r = std::move(handler_.packets.front());
  handler_.packets.pop_front();
  return r;
}

bool BlockingClient::waitClosed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!closed_ && std::chrono::steady_clock::now() < deadline) readSome(deadline);
  return closed_;
}

uint8_t BlockingClient::connect(const std::string& client_id, const std::optional<std::string>& username,
                                const std::optional<std::string>& password, bool clean_session,
                                uint16_t keep_alive, bool* session_present) {
  Connect c;
  c.protocol_name = "MQTT";
  c.client_id = client_id;
  c.clean_session = clean_session;
  c.keep_alive_seconds = keep_alive;
  if (username) c.username = *username;
  if (password) {
    c.password = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(password->data()), password->size());
  }
  if (!send(c)) return 0xff;
  auto r = next();
  if (!r || r->type != PacketType::kConnack) return 0xff;
  if (session_present != nullptr) *session_present = r->session_present;
  return r->connack_code;
}

uint8_t BlockingClient::subscribe(const std::string& filter, uint8_t qos, uint16_t packet_id) {
  SubscribeTopic t{filter, qos};
  ByteBuffer buf;
  if (!appendSubscribe(buf, packet_id, std::span<const SubscribeTopic>(&t, 1)).isOk()) return 0xff;
  if (!sendBytes(buf)) return 0xff;
  auto r = next();
  if (!r || r->type != PacketType::kSuback || r->suback_codes.size() != 1) return 0xff;
  return r->suback_codes[0];
}

bool BlockingClient::publish(const std::string& topic, const std::string& payload, uint8_t qos, uint16_t packet_id,
                             bool wait_ack) {
  Publish p;
  p.topic = topic;
  p.qos = qos;
  p.packet_id = qos > 0 ? packet_id : 0;
  p.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  if (!send(p)) return false;
  if (qos == 0 || !wait_ack) return true;
  auto r = next();
  return r && r->type == PacketType::kPuback && r->packet_id == packet_id;
}

bool BlockingClient::puback(uint16_t packet_id) {
  ByteBuffer buf;
  appendPuback(buf, packet_id);
  return sendBytes(buf);
}

bool BlockingClient::publishPipelined(const std::string& topic, int first, int n) {
  for (int i = 0; i < n; ++i) {
    if (!publish(topic, std::to_string(first + i), 1, static_cast<uint16_t>(i % 60000 + 1), false)) return false;
  }
  return true;
}

int BlockingClient::awaitPubacks(int n, std::chrono::milliseconds timeout) {
  int acks = 0;
  while (acks < n) {
    auto p = next(timeout);
    if (!p) break;
    if (p->type == PacketType::kPuback) ++acks;
  }
  return acks;
}

void BlockingClient::disconnect() {
  ByteBuffer buf;
  appendDisconnect(buf);
  sendBytes(buf);
  ::shutdown(fd_, SHUT_WR);
}

}  // namespace edgehub::transports::mqtt
