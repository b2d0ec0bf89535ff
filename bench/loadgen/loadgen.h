#pragma once
// The engine of `edgehub bench`: an end-to-end MQTT load generator.
//
// N publisher clients publish through the target to M receiver clients; every message of
// every publisher reaches every receiver (fan-out), so a run expects N x K x M deliveries.
// Receivers check that each publisher's sequence numbers arrive exactly once and in order
// (SequenceChecker) and record send-to-receive latency (LatencyHistogram).
// Targets: a hub the load generator starts itself (default), an already running hub (--hub),
// a plain MQTT broker (--broker), and a mosquitto it starts for a same-run baseline
// (--compare-mosquitto). --idle measures a hub with N connected, silent modules.
//
// Why a raw client on our own Loop and codec (not libmosquitto): one write() on loopback costs
// ~5 us on the target machines, so a client doing a syscall per packet measures itself. Here
// every client batches: all packets a connection produces while handling one read (or one
// pump) go out in one gather write; QoS 1 publishers keep a window of in-flight PUBLISHes and
// refill it as PUBACKs arrive; receivers batch their PUBACKs per read. Per-message work is a
// memcpy of a prebuilt PUBLISH plus a few patched bytes; nothing allocates per message.
//
// Thread-safety: runLoadgen() is for one caller thread, which it blocks; it runs the clients
// on `threads` LoopThreads of its own and joins them before returning.
// Ownership: everything it starts (threads, child processes, the temp directory) is stopped,
// reaped and removed before it returns, on every path.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "core/loop/tcp.h"
#include "core/status.h"

namespace edgehub::bench {

struct LoadgenOptions {
  uint32_t publishers = 1;
  uint32_t receivers = 1;
  uint8_t qos = 1;
  uint32_t size = 100;            // payload bytes, >= kPayloadHeaderSize
  uint64_t messages = 200000;     // per publisher; ignored when duration_s > 0
  double duration_s = 0;          // > 0: publish for this long instead of `messages`
  uint64_t rate = 0;              // aggregate msgs/s over all publishers; 0 = unlimited
  uint32_t window = 1000;         // QoS 1 in-flight PUBLISHes per publisher (1..65535)
  uint32_t threads = 1;           // client loop threads
  uint64_t warmup_messages = 0;   // per publisher: first sequences left out of the latencies
  double timeout_s = 120;         // hard limit for one target's run
  uint32_t idle = 0;              // > 0: idle mode with this many modules (needs duration_s)

  // Target selection. Default: start the hub (edgehub_path, or this executable).
  std::optional<core::SocketAddress> broker;  // --broker
  std::optional<core::SocketAddress> hub;     // --hub (with identities_path)
  std::string identities_path;                // --identities for --hub
  std::optional<int> hub_pid;                 // --hub-pid: CPU/RSS of an external hub
  bool compare_mosquitto = false;             // mosquitto first, then the spawned hub
  std::string edgehub_path;                   // --edgehub; empty = /proc/self/exe
  std::string mosquitto_path;                 // empty = "mosquitto" from PATH
  uint32_t hub_io_threads = 0;                // --hub-io-threads; 0 = the hub's default
  std::string hub_durability = "memory";      // --hub-durability of the started hub

  // --backlog: the receivers stay offline while every message is published, so the hub queues
  // them all (store-and-forward), then they connect and drain the backlog. Hub targets only (a
  // plain broker keeps offline messages only with persistent sessions of its own). The report
  // adds the ingest rate over the first and the last tenth of the messages (a nearly empty
  // store against a nearly complete backlog) and the drain rate. --timeout applies per phase.
  bool backlog = false;
  // --backlog-restart: between the phases, stop the spawned hub (SIGTERM) and start it again on
  // the same data directory; the report adds the stop and the ready time.
  bool backlog_restart = false;
  // --upstream-drain (implies --backlog, issue 05): the spawned hub routes every message INTO
  // $upstream, with --upstream pointing at a port where nothing listens yet. Once every message
  // is queued, mosquitto starts on that port as the IoT Hub stand-in and one receiver subscribed
  // to `devices/#` there counts and checks what the hub's per-identity connections deliver. With
  // --compare-mosquitto, the same publishers' pub -> sub run through mosquitto alone comes first
  // (the ceiling: mosquitto's own ingest rate from as many publishers).
  bool upstream = false;
  // --upstream-tls (with --upstream-drain): the hub reaches the upstream over TLS (mqtts, a
  // development CA), as it always reaches IoT Hub.
  bool upstream_tls = false;

  bool keep_dir = false;  // leave the temp dir (logs, store) behind and say where
  bool progress = false;  // print a \r progress line on the progress stream
};

// The backlog measurements (--backlog).
struct BacklogReport {
  uint64_t queued = 0;               // messages queued for each receiver
  double ingest_seconds = 0;         // first publish to the last PUBACK
  double ingest_per_sec = 0;         // acknowledged PUBLISHes per second, whole ingest
  double ingest_first_per_sec = 0;   // over the first tenth (store nearly empty)
  double ingest_last_per_sec = 0;    // over the last tenth (backlog nearly complete)
  std::optional<double> ingest_cpu_seconds;
  std::optional<uint64_t> ingest_peak_rss_bytes;  // VmHWM of the hub after the ingest
  std::optional<double> stop_ms;   // --backlog-restart: SIGTERM to exit, with the backlog stored
  std::optional<double> ready_ms;  // --backlog-restart: start to listening, with the backlog
  double first_delivery_ms = 0;    // receivers start connecting to the first delivery
  double drain_seconds = 0;        // receivers start connecting to the last delivery
  double drain_per_sec = 0;        // deliveries per second over drain_seconds
  // Receivers start connecting to the last delivery of the publisher whose messages were all
  // through first, and of the one through last (0 when the check failed): how evenly the hub
  // shared the drain among identities and loops.
  double first_done_seconds = 0;
  double last_done_seconds = 0;
};

// Checks ranges and combinations; the message names the flag. kInvalidArgument.
core::Status validateOptions(const LoadgenOptions& options);

struct TargetReport {
  std::string target;  // "edgehub", "edgehub 127.0.0.1:1883", "mosquitto", "broker HOST:PORT"
  bool idle = false;
  std::string error;   // run-level failure (connect refused, lost connection, timeout, ...)
  uint64_t published = 0;  // PUBLISHes sent by all publishers
  uint64_t expected = 0;   // published x receivers
  uint64_t delivered = 0;  // PUBLISHes received by all receivers
  uint64_t missing = 0;    // expected deliveries never received
  double seconds = 0;      // first publish to last delivery (idle: the idle window)
  double msgs_per_sec = 0; // delivered / seconds
  uint64_t p50_ns = 0, p99_ns = 0, max_ns = 0;
  std::optional<double> cpu_seconds;  // of the target process over the measured interval
  // Over the same interval: the broker between hub and receivers (--upstream-drain), and this
  // process (publishers and receivers; a drain's receivers only).
  std::optional<double> relay_cpu_seconds;
  std::optional<double> clients_cpu_seconds;
  std::optional<uint64_t> peak_rss_bytes;  // VmHWM
  std::optional<uint64_t> rss_bytes;       // VmRSS at the end
  bool check_ok = false;
  uint64_t duplicates = 0, reordered = 0, unknown = 0;
  std::vector<std::string> problems;  // first few sequence problems, in words
  std::optional<BacklogReport> backlog;  // --backlog
  // A started hub with a store (--hub-durability sync|async): what RocksDB wrote over the whole
  // run (WAL, flushes, compactions) for the message bytes stored, from the hub's stop line.
  struct StoreWrites {
    uint64_t written = 0, wal = 0, flush = 0, compaction = 0, appended = 0;
    double amplification = 0;
  };
  std::optional<StoreWrites> store_writes;

  bool ok() const { return error.empty() && check_ok; }
};

struct LoadgenReport {
  std::vector<TargetReport> targets;
  bool ok() const;
};

// Runs the workload against every selected target in order. Returns kInvalidArgument for bad
// options; every run-time failure is reported inside the TargetReport instead, so the caller
// always gets a report to print. `progress` receives the progress line (if enabled).
core::Result<LoadgenReport> runLoadgen(const LoadgenOptions& options, std::ostream& progress);

// Whether something accepts TCP connections on 127.0.0.1:port (readiness of a started broker).
bool tcpConnects(uint16_t port);

// The human-readable table (one row per target, the check result, the hub/mosquitto ratio).
std::string formatReportText(const LoadgenOptions& options, const LoadgenReport& report);
// One JSON object: {"qos":..,"size":..,...,"targets":[{...}],"ok":true}.
std::string formatReportJson(const LoadgenOptions& options, const LoadgenReport& report);

// "HOST:PORT" with a numeric IPv4/IPv6 host ("[::1]:1883"). Errors: kInvalidArgument.
core::Result<core::SocketAddress> parseHostPort(const std::string& text);

}  // namespace edgehub::bench
