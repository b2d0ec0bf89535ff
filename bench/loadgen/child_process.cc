#include "bench/loadgen/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace edgehub::bench {

namespace {
std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }
}  // namespace

core::Result<std::unique_ptr<ChildProcess>> ChildProcess::start(const std::vector<std::string>& argv,
                                                                const std::string& stderr_path) {
  if (argv.empty()) return core::invalidArgument("no command to start");
  int err_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (err_fd < 0) return core::ioError(errnoText(("cannot open " + stderr_path).c_str()));
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(err_fd);
    return core::ioError(errnoText("pipe"));
  }
  // Built before fork(): the child may only call async-signal-safe functions.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(err_fd);
    ::close(out[0]);
    ::close(out[1]);
    return core::ioError(errnoText("fork"));
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err_fd, 2);
    // The load generator ignores SIGPIPE; the child should start with default dispositions.
    ::signal(SIGPIPE, SIG_DFL);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(err_fd);
  ::close(out[1]);
  auto self = std::unique_ptr<ChildProcess>(new ChildProcess());
  self->pid_ = pid;
  self->out_fd_ = out[0];
  self->stderr_path_ = stderr_path;
  ::fcntl(self->out_fd_, F_SETFL, O_NONBLOCK);
  return self;
}

ChildProcess::~ChildProcess() {
  stop();
  if (out_fd_ >= 0) ::close(out_fd_);
}

bool ChildProcess::exited() {
  if (wait_status_) return true;
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    wait_status_ = status;
    return true;
  }
  return false;
}

std::string ChildProcess::describeExit() const {
  if (!wait_status_) return "running";
  int s = *wait_status_;
  if (WIFEXITED(s)) return "exited with code " + std::to_string(WEXITSTATUS(s));
  if (WIFSIGNALED(s)) return "killed by signal " + std::to_string(WTERMSIG(s));
  return "stopped";
}

std::string ChildProcess::stderrTail(size_t max_bytes) const {
  std::ifstream in(stderr_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

core::Result<std::string> ChildProcess::waitForLine(const std::string& prefix,
                                                    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t scanned = 0;
  for (;;) {
    for (size_t nl; (nl = stdout_.find('\n', scanned)) != std::string::npos; scanned = nl + 1) {
      std::string line = stdout_.substr(scanned, nl - scanned);
      if (line.rfind(prefix, 0) == 0) {
        stdout_.erase(0, nl + 1);
        return line.substr(prefix.size());
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return core::unavailable("no '" + prefix + "' line within " + std::to_string(timeout.count()) + " ms");
    }
    pollfd pfd{out_fd_, POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (rc < 0 && errno != EINTR) return core::ioError(errnoText("poll"));
    bool eof = false;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(out_fd_, buf, sizeof buf);
      if (n > 0) {
        stdout_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) eof = true;
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    if (eof || exited()) {
      // Give an exiting child a moment to be reaped so the message can say how it ended.
      for (int i = 0; i < 50 && !exited(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::string tail = stderrTail();
      return core::unavailable("process " + describeExit() + " before printing '" + prefix + "'" +
                               (tail.empty() ? std::string() : ": " + tail));
    }
  }
}

std::string ChildProcess::waitForExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exited() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return stop();
}

std::string ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return "not started";
  if (!exited()) {
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (!exited() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!exited()) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      wait_status_ = status;
    }
  }
  return describeExit();
}

core::Result<ProcessStats> readProcessStats(pid_t pid) {
  ProcessStats stats;
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat_text;
  if (!stat_file || !std::getline(stat_file, stat_text)) {
    return core::notFound("no process " + std::to_string(pid));
  }
  // Fields after the command name, which is in parentheses and may contain spaces.
  size_t close = stat_text.rfind(')');
  if (close == std::string::npos) return core::corruption("unreadable /proc/PID/stat");
  std::istringstream fields(stat_text.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // Field 3 (state) is the first after ')'; utime and stime are fields 14 and 15.
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) stime = std::stoull(field);
  }
  long ticks = ::sysconf(_SC_CLK_TCK);
  stats.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
  std::ifstream status_file("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status_file, line)) {
    auto kb = [&line]() { return std::stoull(line.substr(line.find(':') + 1)) * 1024; };
    if (line.rfind("VmRSS:", 0) == 0) stats.rss_bytes = kb();
    if (line.rfind("VmHWM:", 0) == 0) stats.hwm_bytes = kb();
  }
  return stats;
}

core::Result<std::string> currentExecutablePath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return core::ioError(errnoText("readlink /proc/self/exe"));
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace edgehub::bench
