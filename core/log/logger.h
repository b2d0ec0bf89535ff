#pragma once
// Leveled logging: one line per event, a timestamp and a category on every line, text or JSON.
//
// The logger is process-wide on purpose (the one global we allow): every layer, including C
// callback trampolines, must be able to log without plumbing a reference through libuv and
// libmosquitto user data. Everything else (loops, stores, clocks) is injected.
//
// Thread-safety: configure() may be called from any thread at any time (level and format are
// atomics: an embedder or a CLI command in the same process may reconfigure while loops log);
// setSinkForTest() and setFixedTimeForTest() must happen before other threads log. enabled()
// and write() are safe from any thread. Each line is formatted in a thread-local buffer and
// emitted with a single write(2), so lines from different threads never interleave. Nothing is buffered in-process: a crash loses no log line.
//
// Hot path rule: nothing is logged per message at info level or above; per-message diagnostics
// are debug/trace and cost one branch when disabled (the level check precedes formatting).
#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::core {

enum class LogLevel : uint8_t { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };
enum class LogFormat : uint8_t { kText, kJson };

Result<LogLevel> parseLogLevel(std::string_view text);   // trace|debug|info|warn|error|off
Result<LogFormat> parseLogFormat(std::string_view text); // text|json
std::string_view logLevelName(LogLevel level);

class Logger {
 public:
  // The process-wide logger. Default: info, text, stderr.
  static Logger& instance();

  void configure(LogLevel level, LogFormat format);
  LogLevel level() const { return level_.load(std::memory_order_relaxed); }
  LogFormat format() const { return format_.load(std::memory_order_relaxed); }
  bool enabled(LogLevel level) const { return level >= level_.load(std::memory_order_relaxed); }

  // Formats and emits one line. `category` names the subsystem ("hub", "config", "mqtt", ...).
  void write(LogLevel level, std::string_view category, const char* fmt, ...) noexcept
      __attribute__((format(printf, 4, 5)));
  void vwrite(LogLevel level, std::string_view category, const char* fmt, va_list args) noexcept;

  // Tests: capture lines instead of writing them to stderr (nullptr restores stderr), and pin
  // the timestamp so output is reproducible.
  using Sink = std::function<void(std::string_view line)>;
  void setSinkForTest(Sink sink);
  void setFixedTimeForTest(int64_t unix_ms) { fixed_time_ms_ = unix_ms; }

 private:
  Logger() = default;
  std::atomic<LogLevel> level_{LogLevel::kInfo};
  std::atomic<LogFormat> format_{LogFormat::kText};
  Sink sink_;
  int64_t fixed_time_ms_ = -1;
};

// Appends `text` to `out` as the contents of a JSON string (without the quotes).
void appendJsonEscaped(std::string& out, std::string_view text);

}  // namespace edgehub::core

#define HUB_LOG(level, category, ...)                                          \
  do {                                                                         \
    auto& hub_logger_ = ::edgehub::core::Logger::instance();                   \
    if (hub_logger_.enabled(level)) hub_logger_.write(level, category, __VA_ARGS__); \
  } while (0)
#define HUB_LOG_TRACE(category, ...) HUB_LOG(::edgehub::core::LogLevel::kTrace, category, __VA_ARGS__)
#define HUB_LOG_DEBUG(category, ...) HUB_LOG(::edgehub::core::LogLevel::kDebug, category, __VA_ARGS__)
#define HUB_LOG_INFO(category, ...) HUB_LOG(::edgehub::core::LogLevel::kInfo, category, __VA_ARGS__)
#define HUB_LOG_WARN(category, ...) HUB_LOG(::edgehub::core::LogLevel::kWarn, category, __VA_ARGS__)
#define HUB_LOG_ERROR(category, ...) HUB_LOG(::edgehub::core::LogLevel::kError, category, __VA_ARGS__)
