#include "core/config/json_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

namespace edgehub::core::config_internal {
namespace {

// 1-based line and column (in code points) of the byte at `offset`.
std::string lineColumn(std::string_view text, size_t offset) {
  if (offset > text.size()) offset = text.size();
  size_t line = 1;
  size_t column = 1;
  for (size_t i = 0; i < offset; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {  // UTF-8 continuation bytes belong to the previous column
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// nlohmann's what() is "[json.exception.parse_error.101] parse error at line 1, column 2: <why>";
// keep only <why>, since we compute the position ourselves.
std::string parseErrorReason(std::string_view what) {
  const size_t column = what.find("column ");
  if (column != std::string_view::npos) {
    const size_t colon = what.find(": ", column);
    if (colon != std::string_view::npos) return std::string(what.substr(colon + 2));
  }
  const size_t bracket = what.find("] ");
  if (bracket != std::string_view::npos) return std::string(what.substr(bracket + 2));
  return std::string(what);
}

// Tracks the JSON path during parsing to find duplicate member names (see parseJson).
class DuplicateFinder {
 public:
  explicit DuplicateFinder(std::vector<std::string>* duplicates) : duplicates_(duplicates) {}

  bool onEvent(Json::parse_event_t event, const Json& parsed) {
    using Event = Json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start: {
        Frame frame;
        frame.is_array = event == Event::array_start;
        frame.path = nextChildPath();
        stack_.push_back(std::move(frame));
        break;
      }
      case Event::object_end:
      case Event::array_end:
        if (!stack_.empty()) stack_.pop_back();
        break;
      case Event::key: {
        if (stack_.empty() || !parsed.is_string()) break;
        Frame& top = stack_.back();
        top.pending_key = parsed.get<std::string>();
        if (!top.keys.insert(top.pending_key).second) {
          duplicates_->push_back(childPath(top.path, top.pending_key));
        }
        break;
      }
      case Event::value:
        nextChildPath();  // advances the index of an enclosing array
        break;
    }
    return true;  // keep everything; duplicates are reported, not dropped
  }

 private:
  struct Frame {
    bool is_array = false;
    std::string path;
    std::set<std::string> keys;
    size_t next_index = 0;
    std::string pending_key;
  };

  std::string nextChildPath() {
    if (stack_.empty()) return std::string();
    Frame& top = stack_.back();
    if (top.is_array) return top.path + "[" + std::to_string(top.next_index++) + "]";
    return childPath(top.path, top.pending_key);
  }

  std::vector<std::string>* duplicates_;
  std::vector<Frame> stack_;
};

}  // namespace

std::optional<size_t> findTooDeep(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::nullopt;
}

Result<Json> parseJson(std::string_view text, size_t max_bytes, std::string_view what,
                       std::vector<std::string>* duplicates) {
  if (text.size() > max_bytes) {
    return invalidArgument(std::string(what) + " is too large: " + std::to_string(text.size()) +
                           " bytes (limit " + std::to_string(max_bytes) + ")");
  }
  if (auto deep = findTooDeep(text, kMaxJsonDepth)) {
    return invalidArgument(lineColumn(text, *deep) + ": JSON nested deeper than " +
                           std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    DuplicateFinder finder(duplicates);
    return Json::parse(text.begin(), text.end(),
                       [&finder](int /*depth*/, Json::parse_event_t event,
                                 Json& parsed) { return finder.onEvent(event, parsed); });
  } catch (const Json::parse_error& e) {
    // e.byte is the 1-based count of bytes read when the error was found; point at that byte.
    const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    return invalidArgument(lineColumn(text, offset) + ": " + parseErrorReason(e.what()));
  } catch (const std::exception& e) {
    return invalidArgument(std::string("invalid JSON: ") + e.what());
  }
}

Result<std::string> readSmallFile(const std::string& path, size_t max_bytes, std::string_view what) {
  const std::string name = std::string(what) + " '" + path + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string message = "cannot open " + name + ": " + std::strerror(err);
    return err == ENOENT ? notFound(std::move(message)) : ioError(std::move(message));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ioError("cannot stat " + name + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalidArgument(name + " is not a regular file");
  }
  // Check the size before reading, so a huge file is never loaded into memory.
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return invalidArgument(name + " is too large: " + std::to_string(st.st_size) +
                           " bytes (limit " + std::to_string(max_bytes) + ")");
  }
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ioError("cannot read " + name + ": " + std::strerror(err));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > max_bytes) {  // the file grew after fstat
      ::close(fd);
      return invalidArgument(name + " is too large (limit " + std::to_string(max_bytes) +
                             " bytes)");
    }
  }
  ::close(fd);
  return data;
}

std::string describeJson(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return value.dump();
    case Json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      if (s.size() > 40) return "a string";
      return "string " + value.dump(-1, ' ', true, Json::error_handler_t::replace);
    }
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return "an unsupported JSON value";
  }
}

std::string childPath(std::string_view path, std::string_view key) {
  std::string out(path);
  if (!out.empty()) out += '.';
  if (key.empty()) {
    out += "\"\"";
  } else {
    out += key;
  }
  return out;
}

bool isBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

std::optional<int64_t> jsonInt64(const Json& value, bool* out_of_range) {
  *out_of_range = false;
  if (value.is_number_unsigned()) {
    const auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      *out_of_range = true;
      return std::nullopt;
    }
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

std::string joinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

}  // namespace edgehub::core::config_internal
