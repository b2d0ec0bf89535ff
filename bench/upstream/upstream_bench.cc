// Upstream client throughput against a real local mosquitto (Debian /usr/sbin/mosquitto).
//   build/bench/upstream_bench
// BM_UpstreamPoolDrain/N: 10 module identities, one UpstreamPool on one loop (one libmosquitto
//   client per identity, QoS 1, window 64), drain N messages of 100 bytes in total; reports
//   msg/s (items_per_second) from start of the fill to the last PUBACK (connects included).
// BM_MosquittoPubBaseline/N: the same N messages of 100 bytes from 10 real `mosquitto_pub -l -q 1`
//   processes (libmosquitto's own client loop, reading lines from a file), started together;
//   reports msg/s from spawn to the last exit. It is mosquitto's ingest rate with its own
//   clients, in the same run and against the same broker configuration, as a yardstick.
// Both start a fresh anonymous broker on a free 127.0.0.1 port (not timed) and stop it after.
// Hot/cold: this measures the hot path of UpstreamConnection (publish + PUBACK dispatch).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/base64.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "core/time_source.h"
#include "transports/upstream/upstream_pool.h"

extern char** environ;

namespace edgehub::transports::upstream {
namespace {

constexpr int kIdentities = 10;
constexpr size_t kPayloadBytes = 100;

uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

bool accepts(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

pid_t spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  return pid;
}

int reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A temp dir with an anonymous mosquitto; killed and reaped by the destructor.
class Broker {
 public:
  Broker() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "edgehub-upbench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return;
    dir_ = tmpl;
    for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
      port_ = freePort();
      {
        std::ofstream conf(dir_ + "/mosquitto.conf");
        conf << "listener " << port_ << " 127.0.0.1\nallow_anonymous true\npersistence false\n"
             << "log_dest file " << dir_ << "/mosquitto.log\nlog_type error\n";
        if (::geteuid() == 0) conf << "user root\n";
      }
      pid_ = spawn({"/usr/sbin/mosquitto", "-c", dir_ + "/mosquitto.conf"});
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (pid_ > 0 && !accepts(port_)) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_ || std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
  ~Broker() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      reap(pid_);
    }
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  bool ok() const { return pid_ > 0; }
  uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

core::Identity identity(int i) {
  std::string module = "m";
  module += std::to_string(i);
  return core::Identity::module("bench", module);
}

// The engine's side: N/10 messages per identity, all the same 100-byte payload.
class DrainSource final : public UpstreamSource {
 public:
  explicit DrainSource(uint64_t per_identity) : per_identity_(per_identity), payload_(kPayloadBytes, 'x') {
    for (int i = 0; i < kIdentities; ++i) {
      topics_.emplace_back();
      appendTelemetryTopic(topics_.back(), identity(i), std::string_view("%24.ct=application%2Fjson"));
    }
  }
  bool done() const { return acked_ == per_identity_ * kIdentities; }
  uint64_t notAcked() const { return not_acked_; }

  // UpstreamSource
  core::Result<UpstreamCredentials> credentials(const core::Identity& id) override {
    return UpstreamCredentials{id, core::base64Encode("0123456789abcdef0123456789abcdef")};
  }
  bool fill(const core::Identity& id, UpstreamWriter& writer, uint32_t max) override {
    const int i = std::stoi(id.moduleId().substr(1));
    uint64_t& next = next_[i];
    for (uint32_t n = 0; n < max && next < per_identity_; ++n) {
      const auto* p = reinterpret_cast<const uint8_t*>(payload_.data());
      if (!writer.publish(topics_[i], std::span<const uint8_t>(p, payload_.size()), next).isOk()) break;
      ++next;
    }
    return next < per_identity_;
  }
  void onPublishDone(const core::Identity&, uint64_t, const core::Status& status) override {
    if (status.isOk()) {
      ++acked_;
    } else {
      ++not_acked_;  // Not expected against a local broker; counted, not re-sent here.
    }
  }

 private:
  uint64_t per_identity_;
  std::string payload_;
  std::vector<std::string> topics_;
  uint64_t next_[kIdentities] = {};
  uint64_t acked_ = 0;
  uint64_t not_acked_ = 0;
};

void BM_UpstreamPoolDrain(benchmark::State& state) {
  const uint64_t total = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    Broker broker;
    if (!broker.ok()) {
      state.SkipWithError("mosquitto did not start");
      return;
    }
    auto loop = core::Loop::create().value();
    core::RealTimeSource time;
    DrainSource source(total / kIdentities);
    PoolOptions o;
    o.connection.endpoint = {UpstreamScheme::kMqtt, "127.0.0.1", broker.port()};
    o.connection.hub_host_name = "benchhub.azure-devices.net";
    o.connection.max_in_flight = 64;
    o.max_fill_per_turn = 4096;
    o.fill_quantum = 64;
    auto pool = UpstreamPool::create(*loop, time, o, source).value();
    state.ResumeTiming();

    for (int i = 0; i < kIdentities; ++i) pool->notifyPending(identity(i));
    {
      core::Timer wake(*loop, [] {});
      wake.enable(std::chrono::milliseconds(50), std::chrono::milliseconds(50));
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (!source.done() && std::chrono::steady_clock::now() < deadline) loop->runOnce();
    }

    state.PauseTiming();
    if (!source.done()) state.SkipWithError("not every message was acknowledged in 120 s");
    state.counters["connects"] = static_cast<double>(pool->counters().connects);
    state.counters["not_acked"] = static_cast<double>(source.notAcked());
    pool->shutdown();
    pool.reset();
    for (int i = 0; i < 3; ++i) loop->runNoWait();
    (void)loop->close();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * total));
}
BENCHMARK(BM_UpstreamPoolDrain)->Arg(200'000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MosquittoPubBaseline(benchmark::State& state) {
  const uint64_t total = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    Broker broker;
    if (!broker.ok()) {
      state.SkipWithError("mosquitto did not start");
      return;
    }
    const std::string lines = broker.dir() + "/lines.txt";
    {
      std::ofstream out(lines);
      const std::string line(kPayloadBytes, 'x');
      for (uint64_t i = 0; i < total / kIdentities; ++i) out << line << '\n';
    }
    state.ResumeTiming();
    std::vector<pid_t> pids;
    for (int i = 0; i < kIdentities; ++i) {
      std::string topic;
      appendTelemetryTopic(topic, identity(i), std::string_view("%24.ct=application%2Fjson"));
      // GCC 12 warns (-Wrestrict, a false positive) on a long operator+ chain; append instead.
      std::string cmd = "exec /usr/bin/mosquitto_pub -h 127.0.0.1 -p ";
      cmd += std::to_string(broker.port());
      cmd += " -q 1 -i ";
      cmd += identity(i).clientId();
      cmd += " -t '";
      cmd += topic;
      cmd += "' -l < ";
      cmd += lines;
      pids.push_back(spawn({"/bin/sh", "-c", cmd}));
    }
    int failures = 0;
    for (pid_t pid : pids) failures += (pid < 0 || reap(pid) != 0) ? 1 : 0;
    state.PauseTiming();
    if (failures != 0) state.SkipWithError("a mosquitto_pub failed");
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * total));
}
BENCHMARK(BM_MosquittoPubBaseline)->Arg(200'000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace edgehub::transports::upstream
