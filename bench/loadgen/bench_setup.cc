#include "bench/loadgen/bench_setup.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace edgehub::bench {

namespace {

// Module entries of $edgeAgent.modules; the hub only reads the names.
void appendModules(std::ostringstream& os, const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i) {
    os << (i ? ",\n" : "") << "          \"" << names[i]
       << "\": {\"version\": \"1.0\", \"type\": \"docker\", \"status\": \"running\", "
          "\"restartPolicy\": \"always\", \"settings\": {\"image\": \"bench\", \"createOptions\": \"{}\"}}";
  }
}

std::string manifestWith(const std::vector<std::string>& modules,
                         const std::vector<std::pair<std::string, std::string>>& routes) {
  std::ostringstream os;
  os << "{\n  \"modulesContent\": {\n    \"$edgeAgent\": {\n      \"properties.desired\": {\n"
        "        \"schemaVersion\": \"1.1\",\n"
        "        \"runtime\": {\"type\": \"docker\", \"settings\": {}},\n"
        "        \"systemModules\": {},\n"
        "        \"modules\": {\n";
  appendModules(os, modules);
  os << "\n        }\n      }\n    },\n    \"$edgeHub\": {\n      \"properties.desired\": {\n"
        "        \"schemaVersion\": \"1.2\",\n        \"routes\": {\n";
  for (size_t i = 0; i < routes.size(); ++i) {
    os << (i ? ",\n" : "") << "          \"" << routes[i].first << "\": \"" << routes[i].second << "\"";
  }
  os << "\n        },\n        \"storeAndForwardConfiguration\": {\"timeToLiveSecs\": 7200}\n"
        "      }\n    }\n  }\n}\n";
  return os.str();
}

// The JSON-escaped form of BrokeredEndpoint("/modules/M/inputs/in").
std::string brokeredTo(const std::string& module) {
  return "BrokeredEndpoint(\\\"/modules/" + module + "/inputs/in\\\")";
}

}  // namespace

std::string makeFanOutManifest(uint32_t publishers, uint32_t receivers) {
  std::vector<std::string> modules;
  for (uint32_t i = 0; i < publishers; ++i) modules.push_back("pub" + std::to_string(i));
  std::vector<std::pair<std::string, std::string>> routes;
  for (uint32_t j = 0; j < receivers; ++j) {
    std::string recv = "recv" + std::to_string(j);
    modules.push_back(recv);
    routes.emplace_back("to_" + recv, "FROM /messages/modules/* INTO " + brokeredTo(recv));
  }
  return manifestWith(modules, routes);
}

std::string makeUpstreamManifest(uint32_t publishers) {
  std::vector<std::string> modules;
  for (uint32_t i = 0; i < publishers; ++i) modules.push_back("pub" + std::to_string(i));
  return manifestWith(modules, {{"up", "FROM /messages/modules/* INTO $upstream"}});
}

std::string makeIdleManifest(uint32_t modules) {
  std::vector<std::string> names;
  for (uint32_t i = 0; i < modules; ++i) names.push_back("idle" + std::to_string(i));
  std::string to = modules > 1 ? "idle1" : "idle0";
  return manifestWith(names, {{"idle", "FROM /messages/modules/idle0/* INTO " + brokeredTo(to)}});
}

core::Result<core::IdentityConfig> makeBenchIdentities(const std::vector<std::string>& modules) {
  core::IdentityConfig config;
  config.hub_host_name = kBenchHubHostName;
  config.device_id = kBenchDeviceId;
  for (const std::string& m : modules) {
    HUB_ASSIGN_OR_RETURN(std::string key, core::generateKey());
    config.identities.push_back(
        core::IdentityEntry{core::Identity::module(kBenchDeviceId, m), std::move(key), ""});
  }
  return config;
}

std::string makeMosquittoConfig(uint16_t port, const std::string& persistence_dir, const MosquittoTls* tls) {
  std::ostringstream os;
  os << "# written by edgehub bench\n"
     << "listener " << port << " 127.0.0.1\n";
  if (tls != nullptr) {
    os << "certfile " << tls->cert_chain_path << "\n"
       << "keyfile " << tls->key_path << "\n"
       << "listener " << tls->plain_port << " 127.0.0.1\n";
  }
  os << "allow_anonymous true\n";
  if (persistence_dir.empty()) {
    os << "persistence false\n";
  } else {
    // Saved only when mosquitto exits: nothing on the message path changes. Started as root,
    // mosquitto would switch to its own user, which cannot write into our private directory.
    if (::geteuid() == 0) os << "user root\n";
    os << "persistence true\n"
       << "persistence_location " << persistence_dir << "/\n"
       << "autosave_interval 0\n";
  }
  os << "max_inflight_messages 0\n"
     << "max_queued_messages 0\n"
     << "set_tcp_nodelay true\n";
  return os.str();
}

core::Result<TempDir> TempDir::create() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/edgehub-bench-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return core::ioError("cannot create a directory like " + templ);
  return TempDir(templ);
}

TempDir::~TempDir() {
  if (path_.empty() || keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);  // best effort: a leftover temp dir is harmless
}

core::Status writeTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return core::ioError("cannot write " + path);
  return core::Status::ok();
}

}  // namespace edgehub::bench
