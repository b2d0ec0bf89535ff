#pragma once
// Test support: run a child process with piped stdout/stderr, read its output with a deadline
// (never a sleep), send it signals, and always reap it (the destructor kills a still-running
// child, so a failing test leaves no process behind).
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace edgehub::testing {

class Subprocess {
 public:
  // Starts `argv[0]` with the given arguments; stdin is /dev/null.
  explicit Subprocess(const std::vector<std::string>& argv);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  bool started() const { return pid_ > 0; }
  // Reads stdout until a line containing `needle` arrives; returns that line, or nullopt on
  // EOF or when `timeout` passes (the deadline bounds a broken test, it decides nothing).
  std::optional<std::string> waitForStdoutLine(const std::string& needle,
                                               std::chrono::milliseconds timeout);
  void sendSignal(int signum);
  // Waits for exit; returns the exit code, 128+signal if killed, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // Everything read from stderr so far (drained on wait()).
  const std::string& stderrText() const { return stderr_; }
  const std::string& stdoutText() const { return stdout_; }

 private:
  void drain(int fd, std::string& into);
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string stdout_;
  std::string stderr_;
  size_t stdout_scanned_ = 0;
  std::optional<int> exit_code_;
};

}  // namespace edgehub::testing
