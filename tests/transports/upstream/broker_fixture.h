#pragma once
// Test support for the upstream tests: a real Debian mosquitto broker on a free 127.0.0.1 port
// (persistence off, a temp config dir, one password_file user and ACL per identity, an
// observer user that may read everything), plus a loop runner that waits on conditions with
// deadlines (never a sleep that decides anything).
//
// Every process started here is killed and reaped by its owner's destructor.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "tests/support/subprocess.h"

namespace edgehub::testing::upstream {

inline constexpr const char* kMosquitto = "/usr/sbin/mosquitto";
inline constexpr const char* kMosquittoPasswd = "/usr/bin/mosquitto_passwd";
inline constexpr const char* kMosquittoSub = "/usr/bin/mosquitto_sub";

inline bool haveMosquitto() {
  return ::access(kMosquitto, X_OK) == 0 && ::access(kMosquittoPasswd, X_OK) == 0 &&
         ::access(kMosquittoSub, X_OK) == 0;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "edgehub-upstream-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline uint16_t pickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool acceptsOnLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Runs a tool to completion (mosquitto_passwd); returns its exit code or -1.
inline int runTool(const std::vector<std::string>& argv) {
  Subprocess p(argv);
  if (!p.started()) return -1;
  auto rc = p.wait(std::chrono::seconds(20));
  return rc ? *rc : -1;
}

struct BrokerUser {
  std::string username;
  std::string password;
  std::vector<std::string> acl;  // mosquitto ACL lines, e.g. "topic write devices/d/modules/m/messages/events/#"
};

struct TlsFiles {
  std::string cert_chain;
  std::string key;
  std::string version = "tlsv1.2";  // mosquitto's listener tls_version
};

class MosquittoBroker {
 public:
  // Writes the config, password and ACL files; start() launches the broker.
  MosquittoBroker(const std::string& dir, const std::vector<BrokerUser>& users, std::optional<TlsFiles> tls = {})
      : dir_(dir), tls_(std::move(tls)) {
    port_ = pickFreePort();
    const std::string passwd = dir_ + "/passwd";
    bool first = true;
    for (const BrokerUser& u : users) {
      std::vector<std::string> argv = {kMosquittoPasswd, "-b"};
      if (first) argv.insert(argv.begin() + 1, "-c");
      argv.push_back(passwd);
      argv.push_back(u.username);
      argv.push_back(u.password);
      if (runTool(argv) != 0) setup_error_ = "mosquitto_passwd failed for " + u.username;
      first = false;
    }
    std::ofstream acl(dir_ + "/acl");
    for (const BrokerUser& u : users) {
      acl << "user " << u.username << "\n";
      for (const std::string& line : u.acl) acl << line << "\n";
      acl << "\n";
    }
    writeConfig();
  }
  ~MosquittoBroker() { stop(); }

  const std::string& setupError() const { return setup_error_; }
  // Keeps sessions and queued QoS 1 messages across a stop() / start() (saved at SIGTERM), so an
  // observer with a persistent session misses nothing while the broker is down. Before start().
  void enablePersistence() {
    persistent_ = true;
    writeConfig();
  }
  uint16_t port() const { return port_; }
  std::string logPath() const { return dir_ + "/mosquitto.log"; }

  // Starts mosquitto and waits until it accepts TCP connections. On a port collision (the
  // free port was taken meanwhile) it retries on a fresh port, unless `same_port`.
  bool start(bool same_port = false) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      process_ = std::make_unique<Subprocess>(std::vector<std::string>{kMosquitto, "-c", dir_ + "/mosquitto.conf"});
      if (!process_->started()) return false;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (std::chrono::steady_clock::now() < deadline) {
        if (acceptsOnLoopback(port_)) return true;
        if (process_->wait(std::chrono::milliseconds(5))) break;  // exited (port taken?)
      }
      last_error_ = "mosquitto did not accept on port " + std::to_string(port_) + ": " + process_->stderrText() +
                    process_->stdoutText() + logTail();
      process_.reset();
      if (same_port) {
        // The port may still be held by a socket of the previous broker for a moment.
        continue;
      }
      port_ = pickFreePort();
      writeConfig();
    }
    return false;
  }
  // SIGKILL (a crash or a dropped link) and reap.
  void kill() {
    if (!process_) return;
    process_->sendSignal(SIGKILL);
    (void)process_->wait(std::chrono::seconds(10));
    process_.reset();
  }
  // SIGTERM and reap.
  void stop() {
    if (!process_) return;
    process_->sendSignal(SIGTERM);
    if (!process_->wait(std::chrono::seconds(10))) process_->sendSignal(SIGKILL);
    process_.reset();
  }
  // Re-reads password and ACL files (SIGHUP).
  void reload() {
    if (process_) process_->sendSignal(SIGHUP);
  }
  bool running() const { return process_ != nullptr; }
  const std::string& lastError() const { return last_error_; }

  std::string logTail() const {
    std::ifstream in(logPath());
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > 3000 ? all.substr(all.size() - 3000) : all;
  }

 private:
  void writeConfig() {
    std::ofstream conf(dir_ + "/mosquitto.conf");
    conf << "allow_anonymous false\n"
         << (persistent_ ? "persistence true\npersistence_location " + dir_ + "/\n" : std::string("persistence false\n"))
         << "password_file " << dir_ << "/passwd\n"
         << "acl_file " << dir_ << "/acl\n"
         << "log_dest file " << dir_ << "/mosquitto.log\n"
         << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
         << "max_queued_messages 200000\n";
    // Run as root, mosquitto would switch to the 'mosquitto' user, which cannot read our 0700
    // temp dir; stay as the invoking user instead.
    if (::geteuid() == 0) conf << "user root\n";
    // Loopback only. With TLS a second listener on 127.0.0.2 (also loopback, but not named in
    // the development certificate) lets a test check host name verification.
    const char* addresses[] = {"127.0.0.1", "127.0.0.2"};
    for (int i = 0; i < (tls_ ? 2 : 1); ++i) {
      conf << "listener " << port_ << " " << addresses[i] << "\n";
      if (tls_) {
        conf << "certfile " << tls_->cert_chain << "\n"
             << "keyfile " << tls_->key << "\n"
             << "tls_version " << tls_->version << "\n";
      }
    }
  }

  std::string dir_;
  std::optional<TlsFiles> tls_;
  bool persistent_ = false;
  uint16_t port_ = 0;
  std::string setup_error_;
  std::string last_error_;
  std::unique_ptr<Subprocess> process_;
};

// Drives a Loop until a condition holds or a deadline passes. A 5 ms repeating timer keeps
// runOnce() from blocking indefinitely when the loop has nothing else to do.
class LoopRunner {
 public:
  explicit LoopRunner(core::Loop& loop) : loop_(loop), wake_(loop, [] {}) {
    wake_.enable(std::chrono::milliseconds(5), std::chrono::milliseconds(5));
  }
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      loop_.runOnce();
    }
    return true;
  }
  // Runs the loop for a fixed time (only for "nothing must happen" checks, never for progress).
  void runFor(std::chrono::milliseconds d) {
    (void)runUntil([] { return false; }, d);
  }

 private:
  core::Loop& loop_;
  core::Timer wake_;
};

}  // namespace edgehub::testing::upstream
