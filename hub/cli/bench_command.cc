#include "hub/cli/bench_command.h"

#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <ostream>

#include "bench/loadgen/loadgen.h"
#include "hub/cli/args.h"
#include "hub/cli/commands.h"

namespace edgehub::cli {

namespace {

int usage(std::ostream& err, const ArgParser& p, const core::Status& s) {
  err << "edgehub: " << s.message() << " (see '" << p.command() << " --help')\n";
  return kExitUsage;
}

// Seconds as a decimal number (e.g. "2.5"); the error names the flag.
core::Result<double> parseSeconds(std::string_view flag, const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end == nullptr || *end != '\0' || !(v > 0) || v > 1e7) {
    return core::invalidArgument("--" + std::string(flag) + ": '" + text + "' is not a positive number of seconds");
  }
  return v;
}

}  // namespace

int runBenchCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ArgParser p("edgehub bench",
              "Drives N publisher modules through a route to M receiver modules over MQTT, checks that "
              "every message arrived once and in order per publisher, and prints msgs/s (deliveries), "
              "p50/p99/max latency, and the target's CPU seconds and peak RSS. By default it starts "
              "the hub itself (this binary, or --edgehub) on a generated manifest.");
  p.flag("publishers", "N", "publisher modules", "1")
      .flag("receivers", "M", "receiver modules; every message goes to every receiver", "1")
      .flag("qos", "0|1", "QoS of the publishes", "1")
      .flag("size", "BYTES", "payload size, at least 24", "100")
      .flag("messages", "K", "messages per publisher", "200000")
      .flag("duration", "SECONDS", "publish for this long instead of --messages (idle: idle window)")
      .flag("rate", "MSGS_PER_SEC", "aggregate publish rate over all publishers; 0 = unlimited", "0")
      .flag("window", "W", "QoS 1 in-flight publishes per publisher (1-65535)", "1000")
      .flag("threads", "T", "client loop threads", "1")
      .flag("warmup-messages", "K", "first K sequences per publisher left out of the latencies", "0")
      .flag("timeout", "SECONDS", "abort a run that takes longer", "120")
      .flag("idle", "N", "connect N idle modules (subscribed, no traffic) for --duration; report CPU and RSS")
      .flag("broker", "HOST:PORT", "send the same traffic through a plain MQTT broker instead")
      .toggle("compare-mosquitto", "start mosquitto, run the workload on it, then on the hub; print both")
      .flag("hub", "HOST:PORT", "target an already running hub (routes must be configured; needs --identities)")
      .flag("identities", "FILE", "identity file of the hub given with --hub")
      .flag("hub-pid", "PID", "process id of the --hub hub, for its CPU and RSS")
      .flag("edgehub", "PATH", "edgehub binary to start", "this executable")
      .flag("mosquitto", "PATH", "mosquitto binary for --compare-mosquitto", "mosquitto from PATH")
      .flag("hub-io-threads", "N", "--io-threads of the started hub", "the hub's default")
      .flag("hub-durability", "MODE", "--durability of the started hub: memory, async or sync", "memory")
      .toggle("backlog", "receivers offline while all messages are published (queued by the hub), then they "
              "connect and drain: ingest rate first/last tenth, drain rate")
      .toggle("backlog-restart", "with --backlog: restart the started hub between ingest and drain (stop and ready time); with --upstream-drain, before the upstream comes back")
      .toggle("upstream-drain", "a backlog for $upstream: the hub queues every message for an upstream that is "
              "down, then mosquitto starts there and the drain through the per-identity connections is measured")
      .toggle("upstream-tls", "with --upstream-drain: the hub reaches mosquitto over TLS (mqtts), as it reaches IoT Hub")
      .toggle("json", "print one JSON object instead of the table")
      .toggle("progress", "show the progress line even when stderr is not a terminal")
      .toggle("keep-dir", "leave the temporary directory (hub log, store and RocksDB's LOG) behind");
  core::Status s = p.parse(args);
  if (!s.isOk()) return usage(err, p, s);
  if (p.helpRequested()) {
    out << p.helpText();
    return kExitOk;
  }

  bench::LoadgenOptions o;
  struct UnsignedFlag {
    const char* name;
    uint64_t min, max;
    std::function<void(uint64_t)> set;
  };
  const std::vector<UnsignedFlag> flags = {
      {"publishers", 1, 10000, [&](uint64_t v) { o.publishers = static_cast<uint32_t>(v); }},
      {"receivers", 1, 10000, [&](uint64_t v) { o.receivers = static_cast<uint32_t>(v); }},
      {"qos", 0, 1, [&](uint64_t v) { o.qos = static_cast<uint8_t>(v); }},
      {"size", 24, 256 * 1024, [&](uint64_t v) { o.size = static_cast<uint32_t>(v); }},
      {"messages", 1, 1'000'000'000'000, [&](uint64_t v) { o.messages = v; }},
      {"rate", 0, 1'000'000'000, [&](uint64_t v) { o.rate = v; }},
      {"window", 1, 65535, [&](uint64_t v) { o.window = static_cast<uint32_t>(v); }},
      {"threads", 1, 256, [&](uint64_t v) { o.threads = static_cast<uint32_t>(v); }},
      {"warmup-messages", 0, 1'000'000'000'000, [&](uint64_t v) { o.warmup_messages = v; }},
      {"idle", 1, 100000, [&](uint64_t v) { o.idle = static_cast<uint32_t>(v); }},
      {"hub-pid", 1, 4'194'304, [&](uint64_t v) { o.hub_pid = static_cast<int>(v); }},
      {"hub-io-threads", 1, 256, [&](uint64_t v) { o.hub_io_threads = static_cast<uint32_t>(v); }},
  };
  for (const UnsignedFlag& f : flags) {
    if (auto v = p.value(f.name)) {
      auto n = parseUnsignedFlag(f.name, *v, f.min, f.max);
      if (!n.isOk()) return usage(err, p, n.status());
      f.set(n.value());
    }
  }
  for (const char* name : {"duration", "timeout"}) {
    if (auto v = p.value(name)) {
      auto secs = parseSeconds(name, *v);
      if (!secs.isOk()) return usage(err, p, secs.status());
      (std::string_view(name) == "duration" ? o.duration_s : o.timeout_s) = secs.value();
    }
  }
  for (const char* name : {"broker", "hub"}) {
    if (auto v = p.value(name)) {
      auto a = bench::parseHostPort(*v);
      if (!a.isOk()) return usage(err, p, core::invalidArgument("--" + std::string(name) + ": " + std::string(a.status().message())));
      (std::string_view(name) == "broker" ? o.broker : o.hub) = a.value();
    }
  }
  o.hub_durability = p.valueOr("hub-durability", "memory");
  if (o.hub_durability != "memory" && o.hub_durability != "async" && o.hub_durability != "sync") {
    return usage(err, p, core::invalidArgument("--hub-durability must be memory, async or sync"));
  }
  o.identities_path = p.valueOr("identities", "");
  o.edgehub_path = p.valueOr("edgehub", "");
  o.mosquitto_path = p.valueOr("mosquitto", "");
  o.compare_mosquitto = p.has("compare-mosquitto");
  o.backlog = p.has("backlog");
  o.backlog_restart = p.has("backlog-restart");
  o.upstream = p.has("upstream-drain");
  if (o.upstream) o.backlog = true;
  o.upstream_tls = p.has("upstream-tls");
  o.progress = p.has("progress") || ::isatty(STDERR_FILENO) == 1;
  o.keep_dir = p.has("keep-dir");
  if (o.idle > 0 && (p.has("publishers") || p.has("receivers"))) {
    return usage(err, p, core::invalidArgument("--idle replaces --publishers/--receivers"));
  }
  if (core::Status v = bench::validateOptions(o); !v.isOk()) return usage(err, p, v);

  auto report = bench::runLoadgen(o, err);
  if (!report.isOk()) {
    err << "edgehub: " << report.status().message() << "\n";
    return kExitFailure;
  }
  out << (p.has("json") ? bench::formatReportJson(o, report.value()) : bench::formatReportText(o, report.value()));
  out.flush();
  if (!report.value().ok()) {
    for (const bench::TargetReport& t : report.value().targets) {
      if (!t.error.empty()) err << "edgehub: bench against " << t.target << " failed: " << t.error << "\n";
    }
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace edgehub::cli
