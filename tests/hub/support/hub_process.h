#pragma once
// Test support: the real `edgehub` binary as a child process on free 127.0.0.1 ports, with an
// identity file and manifest written by the test, and the addresses it prints parsed. The
// process is stopped with SIGTERM (and reaped) when the object dies.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/config/identities.h"
#include "tests/support/subprocess.h"

namespace edgehub::testing {

class HubProcess {
 public:
  // routes_json: the "routes" object of $edgeHub. Starts the hub with plain MQTT and MQTT over
  // TLS (development certificates), memory durability, two IO loops.
  HubProcess(const std::string& dir, const core::IdentityConfig& identities, const std::string& routes_json,
             std::vector<std::string> extra_args = {}, const std::string& durability = "memory");
  // The same with a whole manifest (e.g. with modules' desired properties).
  struct FullManifest {
    std::string text;
  };
  HubProcess(const std::string& dir, const core::IdentityConfig& identities, const FullManifest& manifest,
             std::vector<std::string> extra_args = {}, const std::string& durability = "memory");
  ~HubProcess();

  bool started() const { return !mqtt_address_.empty() && !mqtts_address_.empty(); }
  const std::string& mqttAddress() const { return mqtt_address_; }
  const std::string& mqttsAddress() const { return mqtts_address_; }
  uint16_t mqttsPort() const;
  const std::string& caPath() const { return ca_path_; }
  const std::string& dataDir() const { return data_dir_; }
  // Stops with SIGTERM; returns the exit code.
  int stop();
  // SIGKILL, as a power cut or an OOM kill would; the process is reaped.
  void kill();
  std::string stderrText() const { return process_ ? process_->stderrText() : last_stderr_; }

 private:
  std::unique_ptr<Subprocess> process_;
  std::string data_dir_;
  std::string mqtt_address_;
  std::string mqtts_address_;
  std::string ca_path_;
  std::string last_stderr_;
};

// The binary under test and the source tree.
std::string edgehubBinary();
// Writes `text` to `path`; false on failure.
bool writeTextFile(const std::string& path, const std::string& text);

}  // namespace edgehub::testing
