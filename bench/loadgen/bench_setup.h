#pragma once
// What the load generator writes before it starts a hub or a broker: the deployment manifest
// (modules and routes of the benchmark topology), the identity file (a generated key per
// module), a mosquitto config, and the temporary directory that holds them.
//
// Thread-safety: pure functions and a value type; cold path.
// Ownership: TempDir owns its directory and removes it (recursively) on destruction.
#include <cstdint>
#include <string>
#include <vector>

#include "core/config/identities.h"
#include "core/status.h"

namespace edgehub::bench {

inline constexpr const char* kBenchDeviceId = "bench-device";
inline constexpr const char* kBenchHubHostName = "localhost";

// Manifest for N publishers pub0.. and M receivers recv0.., with one route per receiver:
//   "to_recvJ": "FROM /messages/modules/* INTO BrokeredEndpoint(\"/modules/recvJ/inputs/in\")"
std::string makeFanOutManifest(uint32_t publishers, uint32_t receivers);
// Manifest for N publishers pub0.. and one route "up": "FROM /messages/modules/* INTO $upstream".
std::string makeUpstreamManifest(uint32_t publishers);
// Manifest for N idle modules idle0.. and one route among them (idle0 -> idle1, or idle0 ->
// idle0 for a single module), so that every module's input subscription is meaningful.
std::string makeIdleManifest(uint32_t modules);
// An identity config of device kBenchDeviceId on host kBenchHubHostName with a generated
// primary key for each module. Errors: kIoError (no randomness).
core::Result<core::IdentityConfig> makeBenchIdentities(const std::vector<std::string>& modules);
// With MosquittoTls, the listener on `port` speaks TLS with this certificate, and a second,
// plain listener on plain_port serves the bench's own clients (the receivers).
struct MosquittoTls {
  std::string cert_chain_path;
  std::string key_path;
  uint16_t plain_port = 0;
};
// mosquitto.conf for a plain listener on 127.0.0.1:port with unlimited in-flight and queues.
// With a persistence_dir, sessions (subscriptions, queued messages) are saved there when
// mosquitto exits and restored when it starts again.
std::string makeMosquittoConfig(uint16_t port, const std::string& persistence_dir = "",
                                const MosquittoTls* tls = nullptr);

class TempDir {
 public:
  // Creates $TMPDIR/edgehub-bench-XXXXXX. Errors: kIoError.
  static core::Result<TempDir> create();
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)), keep_(other.keep_) { other.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }
  // Leaves the directory (hub log, RocksDB LOG, store) in place for a post-mortem.
  void keep() { keep_ = true; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool keep_ = false;
};

// Writes text to path (truncating). Errors: kIoError.
core::Status writeTextFile(const std::string& path, const std::string& text);

}  // namespace edgehub::bench
