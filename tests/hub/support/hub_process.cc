#include "tests/hub/support/hub_process.h"

#include <signal.h>

#include <fstream>

namespace edgehub::testing {

using namespace std::chrono_literals;

std::string edgehubBinary() { return std::string(HUB_BINARY_DIR) + "/edgehub"; }

bool writeTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

namespace {
std::string afterPrefix(const std::optional<std::string>& line, const std::string& prefix) {
  if (!line) return "";
  const size_t at = line->find(prefix);
  if (at == std::string::npos) return "";
  std::string rest = line->substr(at + prefix.size());
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.pop_back();
  return rest;
}
}  // namespace

HubProcess::HubProcess(const std::string& dir, const core::IdentityConfig& identities, const std::string& routes_json,
                       std::vector<std::string> extra_args, const std::string& durability)
    : HubProcess(dir, identities,
                 FullManifest{R"({"schemaVersion": "1.1", "routes": )" + routes_json +
                              R"(, "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})"},
                 std::move(extra_args), durability) {}

HubProcess::HubProcess(const std::string& dir, const core::IdentityConfig& identities, const FullManifest& manifest_json,
                       std::vector<std::string> extra_args, const std::string& durability)
    : data_dir_(dir + "/data") {
  const std::string manifest = dir + "/manifest.json";
  const std::string ids = dir + "/identities.json";
  if (!writeTextFile(manifest, manifest_json.text)) return;
  if (!core::writeIdentityFile(ids, identities).isOk()) return;
  std::vector<std::string> argv = {edgehubBinary(), "run", "--manifest", manifest, "--identities", ids, "--data",
                                   data_dir_, "--mqtt-listen", "127.0.0.1:0", "--mqtts-listen", "127.0.0.1:0",
                                   "--io-threads", "2", "--durability", durability};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<Subprocess>(argv);
  mqtt_address_ = afterPrefix(process_->waitForStdoutLine("listening for MQTT on ", 30s), "listening for MQTT on ");
  mqtts_address_ = afterPrefix(process_->waitForStdoutLine("listening for MQTT over TLS on ", 30s),
                               "listening for MQTT over TLS on ");
  ca_path_ = afterPrefix(process_->waitForStdoutLine("development CA certificate: ", 30s),
                         "development CA certificate: ");
}

HubProcess::~HubProcess() { stop(); }

uint16_t HubProcess::mqttsPort() const {
  return static_cast<uint16_t>(std::stoi(mqtts_address_.substr(mqtts_address_.rfind(':') + 1)));
}

void HubProcess::kill() {
  if (!process_) return;
  process_->sendSignal(SIGKILL);
  process_->wait(30s);
  last_stderr_ = process_->stderrText();
  process_.reset();
}

int HubProcess::stop() {
  if (!process_) return -1;
  process_->sendSignal(SIGTERM);
  auto code = process_->wait(30s);
  int rc = code.value_or(-1);
  if (!code) {
    process_->sendSignal(SIGKILL);
    process_->wait(10s);
  }
  last_stderr_ = process_->stderrText();
  process_.reset();
  return rc;
}

}  // namespace edgehub::testing
