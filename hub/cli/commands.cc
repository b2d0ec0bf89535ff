#include "hub/cli/commands.h"

#include <malloc.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/config/identities.h"
#include "core/config/manifest.h"
#include "core/log/logger.h"
#include "core/message/message.h"
#include "core/loop/loop.h"
#include "core/loop/signal.h"
#include "hub/cli/args.h"
#include "hub/cli/bench_command.h"
#include "hub/hub.h"
#include "routing/tools/route_check.h"
#include "routing/tools/route_test_runner.h"
#include "store/tools/store_tools.h"
#include "transports/mqtt/blocking_client.h"
#include "transports/mqtt/server/tls_channel.h"
#include "transports/upstream/upstream_identity.h"

namespace edgehub::cli {

namespace {

// The standalone hub's process-wide allocator settings (an embedding runtime makes its own,
// docs/embedding.md). glibc keeps freed memory in one arena per thread (up to 8 per core) and
// returns the top of a heap only above a dynamic threshold, so the IO loops, the store thread
// and RocksDB's flush and compaction threads each kept their own high-water mark: a backlog
// drain peaked at 82 MB RSS with glibc's defaults and 66 MB with these (docs/benchmarks.md).
// Two arenas keep the IO loops off a single lock. (Also lowering M_MMAP_THRESHOLD cost a fifth
// of the steady-state throughput in mmap/munmap churn for the same memory.)
void limitMallocRetention() {
  ::mallopt(M_ARENA_MAX, 2);
  ::mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

constexpr const char* kTopHelp =
    "Usage: edgehub COMMAND [flags]\n"
    "\n"
    "edgehub routes messages between the modules of an IoT edge device and the cloud.\n"
    "\n"
    "Commands:\n"
    "  run                           run the hub on a deployment manifest\n"
    "  route test FILE               evaluate route-language cases (JSON Lines)\n"
    "  route check MANIFEST          validate and lint the routes of a manifest\n"
    "  identity connection-string M  print the EdgeHubConnectionString of module M\n"
    "  certs ca-path                 print the development CA certificate's path\n"
    "  store stats | store peek EP   inspect the message store of a stopped hub\n"
    "  twin show MODULE              print a module twin from the store of a stopped hub\n"
    "  method invoke MODULE METHOD   call a direct method of a module through a running hub\n"
    "  bench                         end-to-end MQTT load test of the hub (or a broker)\n"
    "  version                       print the version\n"
    "\n"
    "Run 'edgehub COMMAND --help' for the flags of a command.\n";

void addLogFlags(ArgParser& p) {
  p.flag("log-level", "LEVEL", "trace, debug, info, warn, error or off", "info")
      .flag("log-format", "FORMAT", "text or json", "text");
}

// Applies --log-level/--log-format; a bad value is a usage error.
core::Status applyLogFlags(const ArgParser& p) {
  HUB_ASSIGN_OR_RETURN(core::LogLevel level, core::parseLogLevel(p.valueOr("log-level", "info")));
  HUB_ASSIGN_OR_RETURN(core::LogFormat format, core::parseLogFormat(p.valueOr("log-format", "text")));
  core::Logger::instance().configure(level, format);
  return core::Status::ok();
}

int usageError(std::ostream& err, const ArgParser& p, const core::Status& s) {
  err << "edgehub: " << s.message() << " (see '" << p.command() << " --help')\n";
  return kExitUsage;
}

// Parses flags; returns -1 to continue, or the exit code to return (help or usage error).
int parseOrExit(ArgParser& p, const std::vector<std::string>& args, std::ostream& out,
                std::ostream& err) {
  core::Status s = p.parse(args);
  if (!s.isOk()) return usageError(err, p, s);
  if (p.helpRequested()) {
    out << p.helpText();
    return kExitOk;
  }
  s = applyLogFlags(p);
  if (!s.isOk()) return usageError(err, p, s);
  return -1;
}

// Catches SIGINT and SIGTERM on a loop of the main thread. Created before the hub starts, so a
// signal that arrives while the hub starts (or right after it prints its addresses) is never
// handled by the default action, which would kill the process without a clean stop.
class ShutdownSignals {
 public:
  static core::Result<std::unique_ptr<ShutdownSignals>> create() {
    auto self = std::unique_ptr<ShutdownSignals>(new ShutdownSignals());
    // Nothing is posted to this loop (signals arrive through libuv's own pipe): a small queue.
    core::Loop::Options options;
    options.post_queue_capacity = 16;
    HUB_ASSIGN_OR_RETURN(self->loop_, core::Loop::create(options));
    core::Loop* loop = self->loop_.get();
    int* received = &self->received_;
    auto onSignal = [loop, received](int signum) {
      *received = signum;
      loop->requestStop();
    };
    HUB_ASSIGN_OR_RETURN(self->sigint_, core::Signal::create(*loop, SIGINT, onSignal));
    HUB_ASSIGN_OR_RETURN(self->sigterm_, core::Signal::create(*loop, SIGTERM, onSignal));
    return self;
  }

  // Blocks until SIGINT or SIGTERM, then closes the loop.
  core::Status wait() {
    loop_->run();
    HUB_LOG_INFO("hub", "received %s, shutting down", received_ == SIGINT ? "SIGINT" : "SIGTERM");
    sigint_.reset();
    sigterm_.reset();
    return loop_->close();
  }

 private:
  ShutdownSignals() = default;
  int received_ = 0;
  // Members are destroyed in reverse order: the signal handles before their loop.
  core::LoopPtr loop_;
  core::SignalPtr sigint_;
  core::SignalPtr sigterm_;
};

int cmdRun(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ArgParser p("edgehub run", "Runs the hub on a deployment manifest until SIGINT or SIGTERM.");
  p.flag("manifest", "FILE", "deployment manifest or bare $edgeHub desired properties (required)")
      .flag("data", "DIR", "data directory (identities, store)", ".edgehub")
      .flag("identities", "FILE", "identity file with module and leaf-device keys",
            "generate keys and keep them in the data directory")
      .flag("io-threads", "N", "number of IO loops", "one per core")
      .flag("mqtt-listen", "HOST:PORT", "plain MQTT listener; port 0 picks a free port; 'off' disables",
            "127.0.0.1:1883")
      .flag("mqtts-listen", "HOST:PORT", "MQTT over TLS listener (the SDKs' port); 'off' disables",
            "0.0.0.0:8883")
      .flag("tls-cert", "FILE", "server certificate chain (PEM)", "a development certificate in DIR/certs")
      .flag("tls-key", "FILE", "server private key (PEM)", "the development certificate's key")
      .flag("tls-names", "NAMES", "comma-separated extra host names/IPs for the development certificate")
      .flag("durability", "MODE", "sync (fsync before PUBACK), async (survives a crash) or memory (nothing persists)",
            "sync")
      .flag("max-store-bytes", "N", "stored message bytes; 0 = the manifest's storeLimits or unlimited", "0")
      .flag("min-free-disk", "BYTES", "the store counts as full below this free disk space", "67108864")
      .flag("store-full", "POLICY", "reject (disconnect publishers until there is room) or drop-oldest", "reject")
      .flag("store-cache-bytes", "N", "RocksDB block cache size", "8388608")
      .toggle("repair", "move a damaged store aside and start empty instead of refusing to start")
      .flag("max-message-bytes", "N", "largest routed message (body + properties)", "262144")
      .flag("delivery-window", "N", "QoS 1 messages in flight per module session", "64")
      .flag("connect-timeout", "SECONDS", "time a client has to send CONNECT", "60")
      .flag("max-connections", "N", "connected clients; more get CONNACK 3", "1000")
      .flag("upstream", "URL", "IoT Hub (or an MQTT broker speaking its dialect): mqtt://HOST:PORT or mqtts://HOST:PORT",
            "none: $upstream messages stay in the store")
      .flag("upstream-ca", "FILE", "mqtts: PEM file of the CAs to trust for the upstream", "the system's trust store")
      .flag("upstream-max-connections", "N", "open upstream connections (one per sending identity)", "100");
  addLogFlags(p);
  if (int rc = parseOrExit(p, args, out, err); rc >= 0) return rc;

  HubOptions options;
  auto manifest_path = p.value("manifest");
  if (!manifest_path) return usageError(err, p, core::invalidArgument("missing --manifest FILE"));
  options.data_dir = p.valueOr("data", ".edgehub");
  if (auto v = p.value("io-threads")) {
    auto n = parseUnsignedFlag("io-threads", *v, 1, 256);
    if (!n.isOk()) return usageError(err, p, n.status());
    options.io_threads = static_cast<unsigned>(n.value());
  }
  options.mqtt_listen = p.valueOr("mqtt-listen", "127.0.0.1:1883");
  if (options.mqtt_listen == "off") options.mqtt_listen.clear();
  options.mqtts_listen = p.valueOr("mqtts-listen", "0.0.0.0:8883");
  if (options.mqtts_listen == "off") options.mqtts_listen.clear();
  options.tls_cert = p.valueOr("tls-cert", "");
  options.tls_key = p.valueOr("tls-key", "");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return usageError(err, p, core::invalidArgument("--tls-cert and --tls-key go together"));
  }
  if (auto names = p.value("tls-names")) {
    size_t start = 0;
    while (start <= names->size()) {
      size_t comma = names->find(',', start);
      if (comma == std::string::npos) comma = names->size();
      if (comma > start) options.tls_names.push_back(names->substr(start, comma - start));
      start = comma + 1;
    }
  }
  options.durability = p.valueOr("durability", "sync");
  options.upstream = p.valueOr("upstream", "");
  options.upstream_ca = p.valueOr("upstream-ca", "");
  options.store_full_policy = p.valueOr("store-full", "reject");
  options.repair_store = p.has("repair");
  for (auto [flag, target] : {std::pair<const char*, uint64_t*>{"max-store-bytes", &options.max_store_bytes},
                              {"min-free-disk", &options.min_free_disk_bytes},
                              {"store-cache-bytes", &options.store_cache_bytes}}) {
    if (auto v = p.value(flag)) {
      auto n = parseUnsignedFlag(flag, *v, 0, UINT64_MAX);
      if (!n.isOk()) return usageError(err, p, n.status());
      *target = n.value();
    }
  }
  struct NumericFlag {
    const char* name;
    uint64_t min, max;
    uint32_t* target;
    uint32_t scale;
  };
  const NumericFlag numeric[] = {
      {"max-message-bytes", 1, core::kMaxMessageBytes, &options.max_message_bytes, 1},
      {"delivery-window", 1, 65535, &options.delivery_window, 1},
      {"connect-timeout", 1, 3600, &options.connect_timeout_ms, 1000},
      {"max-connections", 1, 1'000'000, &options.max_connections, 1},
      {"upstream-max-connections", 1, 1'000'000, &options.upstream_max_connections, 1},
  };
  for (const NumericFlag& f : numeric) {
    if (auto v = p.value(f.name)) {
      auto n = parseUnsignedFlag(f.name, *v, f.min, f.max);
      if (!n.isOk()) return usageError(err, p, n.status());
      *f.target = static_cast<uint32_t>(n.value() * f.scale);
    }
  }

  auto manifest = core::loadManifestFile(*manifest_path);
  if (!manifest.isOk()) {
    err << "edgehub: " << manifest.status().message() << "\n";
    return kExitFailure;
  }
  options.manifest = std::move(manifest).value();
  if (auto file = p.value("identities")) {
    auto identities = core::loadIdentityFile(*file);
    if (!identities.isOk()) {
      err << "edgehub: " << identities.status().message() << "\n";
      return kExitFailure;
    }
    options.identities = std::move(identities).value();
  }

  limitMallocRetention();
  auto signals = ShutdownSignals::create();
  if (!signals.isOk()) {
    err << "edgehub: cannot install signal handlers: " << signals.status().message() << "\n";
    return kExitFailure;
  }
  auto hub = Hub::create(std::move(options));
  if (!hub.isOk()) {
    err << "edgehub: " << hub.status().message() << "\n";
    return kExitFailure;
  }
  if (core::Status s = hub.value()->start(); !s.isOk()) {
    err << "edgehub: " << s.message() << "\n";
    return kExitFailure;
  }
  if (!hub.value()->mqttAddress().empty()) {
    out << "edgehub: listening for MQTT on " << hub.value()->mqttAddress() << "\n";
  }
  if (!hub.value()->mqttsAddress().empty()) {
    out << "edgehub: listening for MQTT over TLS on " << hub.value()->mqttsAddress() << "\n";
  }
  if (!hub.value()->tlsCaPath().empty()) {
    out << "edgehub: development CA certificate: " << hub.value()->tlsCaPath() << "\n";
  }
  out << std::flush;
  core::Status s = signals.value()->wait();
  hub.value()->stop();
  const uint64_t appended = hub.value()->counter("store_appended_bytes");
  if (appended > 0 || hub.value()->counter("store_wal_bytes") > 0) {
    // What the store wrote for what it stored (issue 04's write amplification); `edgehub bench`
    // reads this line.
    const uint64_t wal = hub.value()->counter("store_wal_bytes");
    const uint64_t flush = hub.value()->counter("store_flush_bytes");
    const uint64_t compaction = hub.value()->counter("store_compaction_bytes");
    char line[256];
    std::snprintf(line, sizeof line,
                  "edgehub: stopped; store wrote %llu bytes (wal %llu, flush %llu, compaction %llu) for %llu "
                  "message bytes: write amplification %.2f\n",
                  static_cast<unsigned long long>(wal + flush + compaction), static_cast<unsigned long long>(wal),
                  static_cast<unsigned long long>(flush), static_cast<unsigned long long>(compaction),
                  static_cast<unsigned long long>(appended),
                  appended == 0 ? 0.0 : static_cast<double>(wal + flush + compaction) / static_cast<double>(appended));
    out << line << std::flush;
  }
  if (!s.isOk()) {
    err << "edgehub: " << s.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

int cmdIdentity(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << "Usage: edgehub identity connection-string MODULE [--data DIR] [--gateway-host HOST]\n";
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] != "connection-string") {
    err << "edgehub: unknown command 'identity " << args[0] << "' (see 'edgehub identity --help')\n";
    return kExitUsage;
  }
  ArgParser p("edgehub identity connection-string",
              "Prints the EdgeHubConnectionString a module uses to connect to this hub.", "MODULE", 1, 1);
  p.flag("data", "DIR", "data directory of the hub", ".edgehub")
      .flag("identities", "FILE", "identity file, if the hub runs with --identities")
      .flag("gateway-host", "HOST", "host name modules use to reach the hub", "the device's host name");
  addLogFlags(p);
  if (int rc = parseOrExit(p, {args.begin() + 1, args.end()}, out, err); rc >= 0) return rc;
  auto config = core::loadIdentityFile(
      p.value("identities").value_or(p.valueOr("data", ".edgehub") + "/" +
                                     std::string(core::kIdentitiesFileName)));
  if (!config.isOk()) {
    err << "edgehub: " << config.status().message() << "\n";
    return kExitFailure;
  }
  const std::string& module = p.positionals()[0];
  if (config.value().findModule(module) == nullptr) {
    err << "edgehub: no module identity '" << module << "' (modules come from the manifest's "
        << "$edgeAgent.modules or the --identities file)\n";
    return kExitFailure;
  }
  std::string gateway = p.valueOr("gateway-host", "");
  if (gateway.empty()) {
    char host[256] = {};
    gateway = ::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "localhost";
  }
  std::string cs = core::edgeHubConnectionString(config.value(), module, gateway);
  out << cs << "\n";
  return kExitOk;
}

int cmdCerts(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << "Usage: edgehub certs ca-path [--data DIR]\n";
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] != "ca-path") {
    err << "edgehub: unknown command 'certs " << args[0] << "' (see 'edgehub certs --help')\n";
    return kExitUsage;
  }
  ArgParser p("edgehub certs ca-path",
              "Prints the path of the development CA certificate the hub made (modules trust it "
              "through EdgeModuleCACertificateFile).");
  p.flag("data", "DIR", "data directory of the hub", ".edgehub");
  addLogFlags(p);
  if (int rc = parseOrExit(p, {args.begin() + 1, args.end()}, out, err); rc >= 0) return rc;
  const std::string path = transports::mqtt::devTlsCaPath(p.valueOr("data", ".edgehub"));
  if (::access(path.c_str(), R_OK) != 0) {
    err << "edgehub: no development CA at " << path
        << " (the hub creates it at its first start with TLS and without --tls-cert)\n";
    return kExitFailure;
  }
  out << path << "\n";
  return kExitOk;
}

int cmdStore(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << "Usage: edgehub store stats [--data DIR] | edgehub store peek ENDPOINT [--data DIR] [-n N]\n";
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] != "stats" && args[0] != "peek") {
    err << "edgehub: unknown command 'store " << args[0] << "' (see 'edgehub store --help')\n";
    return kExitUsage;
  }
  const bool peek = args[0] == "peek";
  ArgParser p(peek ? "edgehub store peek" : "edgehub store stats",
              peek ? "Prints the messages queued for ENDPOINT (e.g. '$upstream'), highest priority first."
                   : "Prints count, bytes and oldest age per endpoint and priority of the store.",
              peek ? "ENDPOINT" : "", peek ? 1 : 0, peek ? 1 : 0);
  p.flag("data", "DIR", "data directory of the hub (the store is DIR/store)", ".edgehub");
  if (peek) p.flag("n", "N", "at most N messages", "10");
  addLogFlags(p);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (auto& a : rest) a = a == "-n" ? "--n" : a;  // ArgParser knows only long flags
  if (int rc = parseOrExit(p, rest, out, err); rc >= 0) return rc;
  const std::string data = p.valueOr("data", ".edgehub");
  if (!peek) return store::runStoreStats(data, out, err);
  auto n = parseUnsignedFlag("n", p.valueOr("n", "10"), 1, 1'000'000);
  if (!n.isOk()) return usageError(err, p, n.status());
  return store::runStorePeek(data, p.positionals()[0], n.value(), out, err);
}

int cmdTwin(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << "Usage: edgehub twin show MODULE [--data DIR] [--identities FILE]\n";
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] != "show") {
    err << "edgehub: unknown command 'twin " << args[0] << "' (see 'edgehub twin --help')\n";
    return kExitUsage;
  }
  ArgParser p("edgehub twin show",
              "Prints a module's twin (desired and reported properties with versions) from the store of a "
              "stopped hub. MODULE is a module id of the edge device, or DEVICE for a leaf device.",
              "MODULE", 1, 1);
  p.flag("data", "DIR", "data directory of the hub (the store is DIR/store)", ".edgehub")
      .flag("identities", "FILE", "identity file (for the edge device's id)", "DIR/identities.json");
  addLogFlags(p);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (int rc = parseOrExit(p, rest, out, err); rc >= 0) return rc;
  const std::string data = p.valueOr("data", ".edgehub");
  auto ids = core::loadIdentityFile(p.valueOr("identities", data + "/" + std::string(core::kIdentitiesFileName)));
  if (!ids.isOk()) {
    err << "edgehub: " << ids.status().message() << "\n";
    return kExitFailure;
  }
  const std::string& name = p.positionals()[0];
  std::string client_id = ids.value().device_id + "/" + name;
  if (ids.value().findModule(name) == nullptr && ids.value().findByClientId(name) != nullptr) client_id = name;
  return store::runTwinShow(data, client_id, out, err);
}

// Calls a direct method of a connected module through a running hub: connects to its plain MQTT
// listener as the hub's own identity ($edgeHub, key from the identity file), publishes the call on
// $edgehub/methods/invoke/{module}/{method}/?$rid=1&$timeout={s} and waits for the answer on
// $edgehub/methods/res/{status}/?$rid=1 (the hub answers 404 at once for a module that is not
// connected, 504 when it does not answer in time).
int cmdMethod(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << "Usage: edgehub method invoke MODULE METHOD [--payload JSON] [--timeout S] [--hub HOST:PORT] [--data DIR]\n";
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] != "invoke") {
    err << "edgehub: unknown command 'method " << args[0] << "' (see 'edgehub method --help')\n";
    return kExitUsage;
  }
  ArgParser p("edgehub method invoke",
              "Calls METHOD of connected module MODULE through a running hub and prints the module's answer as "
              "{\"status\": N, \"payload\": ...}. Exit 0 for a 2xx status.",
              "MODULE METHOD", 2, 2);
  p.flag("payload", "JSON", "the method's payload", "null")
      .flag("timeout", "SECONDS", "how long the module has to answer (1-3600)", "30")
      .flag("hub", "HOST:PORT", "the hub's plain MQTT listener", "127.0.0.1:1883")
      .flag("data", "DIR", "data directory of the hub (its identity file)", ".edgehub")
      .flag("identities", "FILE", "identity file with the $edgeHub key", "DIR/identities.json");
  addLogFlags(p);
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (int rc = parseOrExit(p, rest, out, err); rc >= 0) return rc;
  for (const std::string& name : p.positionals()) {
    // Each is one topic level of the call: no level separators, wildcards or query characters.
    if (name.find_first_of("/+#?&") != std::string::npos) {
      return usageError(err, p, core::invalidArgument("'" + name + "' may not contain / + # ? or &"));
    }
  }
  const std::string payload = p.valueOr("payload", "null");
  constexpr size_t kMaxMethodPayload = 128 * 1024;  // dialect section 8
  if (payload.size() > kMaxMethodPayload || !nlohmann::json::accept(payload)) {
    return usageError(err, p, core::invalidArgument("--payload must be JSON of at most 128 KiB"));
  }
  auto timeout = parseUnsignedFlag("timeout", p.valueOr("timeout", "30"), 1, 3600);
  if (!timeout.isOk()) return usageError(err, p, timeout.status());
  const std::string data = p.valueOr("data", ".edgehub");
  const std::string ids_path = p.valueOr("identities", data + "/" + std::string(core::kIdentitiesFileName));
  auto ids = core::loadIdentityFile(ids_path);
  if (!ids.isOk()) {
    err << "edgehub: " << ids.status().message() << "\n";
    return kExitFailure;
  }
  const core::IdentityEntry* operator_id = ids.value().findModule(core::kEdgeHubModuleId);
  if (operator_id == nullptr) {
    err << "edgehub: " << ids_path << " has no $edgeHub identity (a hub without --identities generates one)\n";
    return kExitFailure;
  }
  namespace up = transports::upstream;
  const std::string hub_address = p.valueOr("hub", "127.0.0.1:1883");
  auto client = transports::mqtt::BlockingClient::open(hub_address);
  if (!client) {
    err << "edgehub: cannot connect to the hub at " << hub_address << "\n";
    return kExitFailure;
  }
  const int64_t expiry = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count() + 3600;
  const std::string password = up::makeUpstreamPassword(
      ids.value().hub_host_name, up::UpstreamCredentials{operator_id->identity, operator_id->primary_key}, expiry);
  const uint8_t code = client->connect(operator_id->identity.clientId(),
                                       up::upstreamUsername(ids.value().hub_host_name, operator_id->identity), password);
  if (code != 0) {
    err << "edgehub: the hub refused the $edgeHub identity (CONNACK " << int(code) << ")\n";
    return kExitFailure;
  }
  if (client->subscribe("$edgehub/methods/res/#", 0) != 0) {
    err << "edgehub: the hub refused the method result subscription\n";
    return kExitFailure;
  }
  std::string topic = "$edgehub/methods/invoke/";
  topic.append(p.positionals()[0]).append("/").append(p.positionals()[1]).append("/?$rid=1&$timeout=");
  topic.append(std::to_string(timeout.value()));
  if (!client->publish(topic, payload, 0)) {
    err << "edgehub: the hub closed the connection\n";
    return kExitFailure;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout.value() + 10);
  constexpr std::string_view kResult = "$edgehub/methods/res/";
  while (std::chrono::steady_clock::now() < deadline) {
    auto packet = client->next(std::chrono::seconds(1));
    if (!packet) {
      if (client->closed()) break;
      continue;
    }
    if (packet->type != transports::mqtt::PacketType::kPublish || packet->topic.rfind(kResult, 0) != 0) continue;
    const int status = std::atoi(packet->topic.c_str() + kResult.size());
    const std::string& body = packet->payload;
    out << "{\"status\": " << status << ", \"payload\": " << (nlohmann::json::accept(body) ? body : nlohmann::json(body).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << "}\n";
    client->disconnect();
    return status >= 200 && status < 300 ? kExitOk : kExitFailure;
  }
  err << "edgehub: no answer from the hub\n";
  return kExitFailure;
}

int cmdRoute(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  constexpr const char* kRouteHelp =
      "Usage: edgehub route test FILE | edgehub route check MANIFEST [--message FILE]\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << kRouteHelp;
    return args.empty() ? kExitUsage : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "test") {
    ArgParser p("edgehub route test",
                "Evaluates route-language cases (JSON Lines, the conformance format) and prints one "
                "JSON line per case and a summary. FILE '-' reads standard input. Exit 0 when every "
                "case with an expectation met it.",
                "FILE", 1, 1);
    addLogFlags(p);
    if (int rc = parseOrExit(p, rest, out, err); rc >= 0) return rc;
    const std::string& file = p.positionals()[0];
    if (file == "-") return routing::runRouteTestCases(std::cin, out);
    std::ifstream in(file);
    if (!in) {
      err << "edgehub: cannot open '" << file << "'\n";
      return kExitFailure;
    }
    return routing::runRouteTestCases(in, out);
  }
  if (args[0] == "check") {
    ArgParser p("edgehub route check",
                "Validates every route of a manifest, prints errors and lint warnings, and with "
                "--message explains which routes match that message.",
                "MANIFEST", 1, 1);
    p.flag("message", "FILE", "a message as JSON ({\"properties\":…, \"systemProperties\":…, \"body\":…})");
    addLogFlags(p);
    if (int rc = parseOrExit(p, rest, out, err); rc >= 0) return rc;
    auto manifest = core::loadManifestFile(p.positionals()[0]);
    if (!manifest.isOk()) {
      out << manifest.status().message() << "\n";
      return kExitFailure;
    }
    std::string message;
    if (auto file = p.value("message")) {
      std::ifstream in(*file);
      if (!in) {
        err << "edgehub: cannot open '" << *file << "'\n";
        return kExitFailure;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      message = ss.str();
    }
    return routing::runRouteCheck(manifest.value(), p.has("message") ? &message : nullptr, out);
  }
  err << "edgehub: unknown command 'route " << args[0] << "' (see 'edgehub route --help')\n";
  return kExitUsage;
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kTopHelp;
    return kExitUsage;
  }
  const std::string& cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    out << kTopHelp;
    return kExitOk;
  }
  if (cmd == "version" || cmd == "--version") {
    out << "edgehub 0.1.0\n";
    return kExitOk;
  }
  if (cmd == "run") return cmdRun(rest, out, err);
  if (cmd == "route") return cmdRoute(rest, out, err);
  if (cmd == "identity") return cmdIdentity(rest, out, err);
  if (cmd == "certs") return cmdCerts(rest, out, err);
  if (cmd == "store") return cmdStore(rest, out, err);
  if (cmd == "twin") return cmdTwin(rest, out, err);
  if (cmd == "method") return cmdMethod(rest, out, err);
  if (cmd == "bench") return runBenchCommand(rest, out, err);
  err << "edgehub: unknown command '" << cmd << "' (see 'edgehub --help')\n";
  return kExitUsage;
}

int runMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return runCli(args, std::cout, std::cerr);
}

}  // namespace edgehub::cli
