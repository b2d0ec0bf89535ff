#pragma once
// BlockingClient: a small blocking MQTT 3.1.1 client over a plain socket, on our codec, for tools
// that talk to a running hub (`edgehub method invoke`) and for tests that drive the hub packet by
// packet (including deliberately broken packets). Every wait has a deadline; none decides an
// outcome by elapsed time.
//
// Thread-safety: none; one thread per client. Ownership: owns its socket (closed by the
// destructor). Cold: one send(2) per packet, one recv(2) per read.
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "transports/mqtt/decoder.h"
#include "transports/mqtt/encoder.h"

namespace edgehub::transports::mqtt {

struct ReceivedPacket {
  PacketType type = PacketType::kDisconnect;
  std::string topic;
  std::string payload;
  uint16_t packet_id = 0;
  uint8_t qos = 0;
  bool dup = false;
  uint8_t connack_code = 0xff;
  bool session_present = false;
  std::vector<uint8_t> suback_codes;
};

class BlockingClient {
 public:
  // Connects a TCP socket to 127.0.0.1:port (or "host:port"); nullptr on failure.
  static std::unique_ptr<BlockingClient> open(const std::string& address);
  ~BlockingClient();

  bool sendBytes(std::span<const uint8_t> bytes);
  bool send(const Packet& packet);
  // The next packet from the hub, or nullopt if none arrived before the deadline or the
  // connection closed (closed() tells which).
  std::optional<ReceivedPacket> next(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits until the hub closes the connection (true) or the deadline passes (false). Packets
  // that arrive meanwhile are kept for next().
  bool waitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool closed() const { return closed_; }

  // CONNECT and wait for the CONNACK; returns its code (0xff: no CONNACK, connection closed).
  uint8_t connect(const std::string& client_id, const std::optional<std::string>& username,
                  const std::optional<std::string>& password, bool clean_session = true,
                  uint16_t keep_alive = 60, bool* session_present = nullptr);
  // SUBSCRIBE one filter, wait for the SUBACK; returns its code (0xff on failure).
  uint8_t subscribe(const std::string& filter, uint8_t qos = 1, uint16_t packet_id = 1);
  // PUBLISH; QoS 1 waits for the PUBACK when wait_ack (returns false if it does not come).
  bool publish(const std::string& topic, const std::string& payload, uint8_t qos = 1, uint16_t packet_id = 1,
               bool wait_ack = true);
  bool puback(uint16_t packet_id);
  // Sends `n` QoS 1 PUBLISHes back to back without waiting for PUBACKs (the way a pipelining
  // client loads the hub): payloads are the decimal numbers first .. first+n-1, packet ids
  // i % 60000 + 1. False if the socket refused a write.
  bool publishPipelined(const std::string& topic, int first, int n);
  // Reads packets until `n` PUBACKs arrived (other packets are skipped); returns how many did
  // before the connection closed or a read waited longer than `timeout`.
  int awaitPubacks(int n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void disconnect();

 private:
  explicit BlockingClient(int fd);
  bool readSome(std::chrono::steady_clock::time_point deadline);

  struct Handler final : PacketHandler {
    core::Status onPacket(const Packet& packet) override;
    std::deque<ReceivedPacket> packets;
  };

  int fd_;
  Handler handler_;
  Decoder decoder_;
  bool closed_ = false;
};

}  // namespace edgehub::transports::mqtt
