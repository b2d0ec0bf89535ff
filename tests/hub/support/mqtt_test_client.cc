#include "tests/hub/support/mqtt_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "core/base64.h"
#include "core/loop/tcp.h"
#include "transports/auth/sas_token.h"

namespace edgehub::testing {

namespace mqtt = transports::mqtt;

std::unique_ptr<MqttTestClient> MqttTestClient::open(const std::string& address) {
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
  return std::unique_ptr<MqttTestClient>(new MqttTestClient(fd));
}

MqttTestClient::MqttTestClient(int fd)
    : fd_(fd), decoder_(mqtt::DecoderOptions{mqtt::Role::kClient, 1 << 24, 4096}, handler_) {}

MqttTestClient::~MqttTestClient() { ::close(fd_); }

bool MqttTestClient::sendBytes(std::span<const uint8_t> bytes) {
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

bool MqttTestClient::send(const mqtt::Packet& packet) {
  mqtt::ByteBuffer buf;
  if (!mqtt::appendPacket(buf, packet).isOk()) return false;
  return sendBytes(buf);
}

core::Status MqttTestClient::Handler::onPacket(const mqtt::Packet& packet) {
  ReceivedPacket r;
  r.type = mqtt::packetTypeOf(packet);
  if (const auto* p = std::get_if<mqtt::Publish>(&packet)) {
    r.topic = std::string(p->topic);
    r.payload.assign(reinterpret_cast<const char*>(p->payload.data()), p->payload.size());
    r.packet_id = p->packet_id;
    r.qos = p->qos;
    r.dup = p->dup;
  } else if (const auto* c = std::get_if<mqtt::Connack>(&packet)) {
    r.connack_code = static_cast<uint8_t>(c->code);
    r.session_present = c->session_present;
  } else if (const auto* s = std::get_if<mqtt::Suback>(&packet)) {
    r.packet_id = s->packet_id;
    r.suback_codes.assign(s->return_codes.begin(), s->return_codes.end());
  } else if (const auto* a = std::get_if<mqtt::Puback>(&packet)) {
    r.packet_id = a->packet_id;
  } else if (const auto* u = std::get_if<mqtt::Unsuback>(&packet)) {
    r.packet_id = u->packet_id;
  }
  packets.push_back(std::move(r));
  return core::Status::ok();
}

bool MqttTestClient::readSome(std::chrono::steady_clock::time_point deadline) {
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

std::optional<ReceivedPacket> MqttTestClient::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (handler_.packets.empty()) {
    if (!readSome(deadline) && (closed_ || std::chrono::steady_clock::now() >= deadline)) break;
  }
  if (handler_.packets.empty()) return std::nullopt;
  ReceivedPacket r = std::move(handler_.packets.front());
  handler_.packets.pop_front();
  return r;
}

bool MqttTestClient::waitClosed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!closed_ && std::chrono::steady_clock::now() < deadline) readSome(deadline);
  return closed_;
}

uint8_t MqttTestClient::connect(const std::string& client_id, const std::optional<std::string>& username,
                                const std::optional<std::string>& password, bool clean_session,
                                uint16_t keep_alive, bool* session_present) {
  mqtt::Connect c;
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
  if (!r || r->type != mqtt::PacketType::kConnack) return 0xff;
  if (session_present != nullptr) *session_present = r->session_present;
  return r->connack_code;
}

uint8_t MqttTestClient::subscribe(const std::string& filter, uint8_t qos, uint16_t packet_id) {
  mqtt::SubscribeTopic t{filter, qos};
  mqtt::ByteBuffer buf;
  if (!mqtt::appendSubscribe(buf, packet_id, std::span<const mqtt::SubscribeTopic>(&t, 1)).isOk()) return 0xff;
  if (!sendBytes(buf)) return 0xff;
  auto r = next();
  if (!r || r->type != mqtt::PacketType::kSuback || r->suback_codes.size() != 1) return 0xff;
  return r->suback_codes[0];
}

bool MqttTestClient::publish(const std::string& topic, const std::string& payload, uint8_t qos, uint16_t packet_id,
                             bool wait_ack) {
  mqtt::Publish p;
  p.topic = topic;
  p.qos = qos;
  p.packet_id = qos > 0 ? packet_id : 0;
  p.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  if (!send(p)) return false;
  if (qos == 0 || !wait_ack) return true;
  auto r = next();
  return r && r->type == mqtt::PacketType::kPuback && r->packet_id == packet_id;
}

bool MqttTestClient::puback(uint16_t packet_id) {
  mqtt::ByteBuffer buf;
  mqtt::appendPuback(buf, packet_id);
  return sendBytes(buf);
}

bool MqttTestClient::publishPipelined(const std::string& topic, int first, int n) {
  for (int i = 0; i < n; ++i) {
    if (!publish(topic, std::to_string(first + i), 1, static_cast<uint16_t>(i % 60000 + 1), false)) return false;
  }
  return true;
}

int MqttTestClient::awaitPubacks(int n, std::chrono::milliseconds timeout) {
  int acks = 0;
  while (acks < n) {
    auto p = next(timeout);
    if (!p) break;
    if (p->type == mqtt::PacketType::kPuback) ++acks;
  }
  return acks;
}

void MqttTestClient::disconnect() {
  mqtt::ByteBuffer buf;
  mqtt::appendDisconnect(buf);
  sendBytes(buf);
  ::shutdown(fd_, SHUT_WR);
}

std::string moduleUsername(const core::IdentityConfig& config, const std::string& module_id) {
  return config.hub_host_name + "/" + config.device_id + "/" + module_id + "/?api-version=2021-04-12";
}

std::string moduleSasToken(const core::IdentityConfig& config, const std::string& module_id, int64_t lifetime_secs,
                           bool secondary) {
  const core::IdentityEntry* e = config.findModule(module_id);
  if (e == nullptr) return "";
  const std::string resource = config.hub_host_name + "%2Fdevices%2F" + config.device_id + "%2Fmodules%2F" + module_id;
  return transports::auth::makeSasToken(resource, secondary ? e->secondary_key : e->primary_key,
                                        static_cast<int64_t>(::time(nullptr)) + lifetime_secs);
}

core::IdentityConfig testIdentities(const std::vector<std::string>& modules, const std::string& device_id,
                                    const std::string& hub_host) {
  core::IdentityConfig c;
  c.hub_host_name = hub_host;
  c.device_id = device_id;
  char tag = 0;
  for (const std::string& m : modules) {
    // Distinct keys per module, so that one module's key never opens another.
    c.identities.push_back(core::IdentityEntry{core::Identity::module(device_id, m),
                                               core::base64Encode(std::string(32, static_cast<char>('A' + tag))),
                                               core::base64Encode(std::string(32, static_cast<char>('a' + tag)))});
    ++tag;
  }
  return c;
}

}  // namespace edgehub::testing
