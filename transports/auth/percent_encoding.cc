#include "transports/auth/percent_encoding.h"

#include <cstddef>

namespace edgehub::transports::auth {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The value of the escape starting at text[i] (which is '%'), or -1 if it is not a valid one.
int escapeAt(std::string_view text, size_t i) {
  if (i + 2 >= text.size()) return -1;
  const int hi = hexValue(text[i + 1]);
  const int lo = hexValue(text[i + 2]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

}  // namespace

core::Result<std::string> percentDecodeStrict(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const int value = escapeAt(text, i);
    if (value < 0) {
      std::string reason = "bad percent escape at offset ";
      reason.append(std::to_string(i));
      return core::invalidArgument(std::move(reason));
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

std::string percentDecodeLenient(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const int value = text[i] == '%' ? escapeAt(text, i) : -1;
    if (value < 0) {
      out.push_back(text[i]);
      continue;
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

std::string percentEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  for (char c : bytes) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(c);
      continue;
    }
    const auto byte = static_cast<unsigned char>(c);
    out.push_back('%');
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0x0F]);
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(separator, start);
    if (at == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, at - start));
    start = at + 1;
  }
}

}  // namespace edgehub::transports::auth
