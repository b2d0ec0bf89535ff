#pragma once
// ChildProcess: a process the load generator starts (the hub under test, or mosquitto), with
// its stdout on a pipe (to wait for a readiness line) and its stderr in a file (so a chatty
// child never blocks on a full pipe, and its last lines can explain a failure).
// The destructor always stops (SIGTERM, then SIGKILL after a grace period) and reaps it, so
// no error path of the load generator leaves a process behind.
// Also: readProcessStats() for CPU seconds and RSS of a pid, from /proc.
//
// Thread-safety: none; owned and used by the load generator's main thread. Cold path.
// Ownership: owns the child and the pipe fd.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace edgehub::bench {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with stdin /dev/null, stdout on a pipe, stderr appended to
  // stderr_path. Errors: kIoError (pipe/fork/open failed). An exec failure shows as exit 127.
  static core::Result<std::unique_ptr<ChildProcess>> start(const std::vector<std::string>& argv,
                                                           const std::string& stderr_path);
  ~ChildProcess();  // stop()
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Reads stdout until a line starting with `prefix`; returns the rest of that line.
  // Errors: kUnavailable with the child's exit status and stderr tail if it exits or closes
  // stdout first, kDeadlineExceeded-like kUnavailable on timeout.
  core::Result<std::string> waitForLine(const std::string& prefix, std::chrono::milliseconds timeout);
  // Non-blocking: has it exited? (reaps it if so).
  bool exited();
  // SIGTERM, wait up to `grace`, then SIGKILL; always reaps. Returns the exit description.
  // Idempotent.
  std::string stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  // Waits up to `timeout` for the child to exit on its own (e.g. after a SIGTERM sent
  // earlier), then stop()s it. Returns the exit description.
  std::string waitForExit(std::chrono::milliseconds timeout);
  // "exited with code 2", "killed by signal 9", or "running".
  std::string describeExit() const;
  // The last lines of the stderr file (for error messages).
  std::string stderrTail(size_t max_bytes = 2000) const;

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string stderr_path_;
  std::string stdout_;
  std::optional<int> wait_status_;
};

struct ProcessStats {
  double cpu_seconds = 0;  // utime + stime
  uint64_t rss_bytes = 0;  // VmRSS
  uint64_t hwm_bytes = 0;  // VmHWM (peak RSS)
};
// Errors: kNotFound if the process does not exist (or /proc is unreadable).
core::Result<ProcessStats> readProcessStats(pid_t pid);

// The path of the running executable (/proc/self/exe). Errors: kIoError.
core::Result<std::string> currentExecutablePath();

}  // namespace edgehub::bench
