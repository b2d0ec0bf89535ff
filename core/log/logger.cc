#include "core/log/logger.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace edgehub::core {

Result<LogLevel> parseLogLevel(std::string_view text) {
  if (text == "trace") return LogLevel::kTrace;
  if (text == "debug") return LogLevel::kDebug;
  if (text == "info") return LogLevel::kInfo;
  if (text == "warn" || text == "warning") return LogLevel::kWarn;
  if (text == "error") return LogLevel::kError;
  if (text == "off") return LogLevel::kOff;
  return invalidArgument("invalid log level '" + std::string(text) +
                         "' (expected trace, debug, info, warn, error or off)");
}

Result<LogFormat> parseLogFormat(std::string_view text) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return invalidArgument("invalid log format '" + std::string(text) + "' (expected text or json)");
}

std::string_view logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

Logger& Logger::instance() {
  // Constructed on first use, never destroyed: threads may log during static destruction.
  static Logger* logger = new Logger();
  return *logger;
}

void Logger::configure(LogLevel level, LogFormat format) {
  level_.store(level, std::memory_order_relaxed);
  format_.store(format, std::memory_order_relaxed);
}

void Logger::setSinkForTest(Sink sink) { sink_ = std::move(sink); }

void appendJsonEscaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

namespace {
// "2026-12-01T21:36:23.123Z" (UTC, millisecond precision).
void appendTimestamp(std::string& out, int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm_utc.tm_year + 1900,
                        tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min,
                        tm_utc.tm_sec, static_cast<int>(unix_ms % 1000));
  out.append(buf, static_cast<size_t>(n));
}

void writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // Nowhere left to report a failing log write.
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}
}  // namespace

void Logger::write(LogLevel level, std::string_view category, const char* fmt, ...) noexcept {
  va_list args;
  va_start(args, fmt);
  vwrite(level, category, fmt, args);
  va_end(args);
}

void Logger::vwrite(LogLevel level, std::string_view category, const char* fmt,
                    va_list args) noexcept {
  // Per-thread buffers: formatting allocates only until they reach their working size.
  thread_local std::string message;
  thread_local std::string line;
  va_list copy;
  va_copy(copy, args);
  char small[512];
  int n = std::vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  if (n < 0) n = 0;
  if (static_cast<size_t>(n) < sizeof small) {
    message.assign(small, static_cast<size_t>(n));
  } else {
    message.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(message.data(), message.size(), fmt, args);
    message.resize(static_cast<size_t>(n));
  }

  int64_t now_ms = fixed_time_ms_ >= 0
                       ? fixed_time_ms_
                       : std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  line.clear();
  if (format() == LogFormat::kJson) {
    line += "{\"ts\":\"";
    appendTimestamp(line, now_ms);
    line += "\",\"level\":\"";
    line += logLevelName(level);
    line += "\",\"cat\":\"";
    appendJsonEscaped(line, category);
    line += "\",\"msg\":\"";
    appendJsonEscaped(line, message);
    line += "\"}\n";
  } else {
    appendTimestamp(line, now_ms);
    line += ' ';
    std::string_view name = logLevelName(level);
    line += name;
    line.append(6 - name.size(), ' ');
    line += '[';
    line += category;
    line += "] ";
    // One event, one line: embedded newlines would split it.
    for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;
    line += '\n';
  }
  if (sink_) {
    sink_(std::string_view(line).substr(0, line.size() - 1));
  } else {
    writeAll(STDERR_FILENO, line.data(), line.size());
  }
}

}  // namespace edgehub::core
