#include "transports/percent_encoding.h"

#include <cstddef>

namespace edgehub::transports {

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kHex[] = "0123456789ABCDEF";

bool isUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool segmentKeepsLiteral(unsigned char c) {
  if (isUnreserved(c)) return true;
  switch (c) {
    case '!': case '$': case '\'': case '(': case ')': case '*': case ',': case ';': case ':':
    case '@':
      return true;
    default:
      return false;
  }
}

template <typename Keep>
void appendEncoded(std::string& out, std::string_view text, Keep keep) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (keep(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
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

bool hasValidEscapes(std::string_view raw) {
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') continue;
    if (i + 2 >= raw.size() || hexValue(raw[i + 1]) < 0 || hexValue(raw[i + 2]) < 0) return false;
    i += 2;
  }
  return true;
}

bool appendDecoded(std::string& out, std::string_view raw) {
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      out.push_back(raw[i]);
      continue;
    }
    if (i + 2 >= raw.size()) return false;
    int hi = hexValue(raw[i + 1]);
    int lo = hexValue(raw[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool decodesTo(std::string_view raw, std::string_view expected) {
  size_t j = 0;
  for (size_t i = 0; i < raw.size(); ++i, ++j) {
    char c = raw[i];
    if (c == '%') {
      if (i + 2 >= raw.size()) return false;
      int hi = hexValue(raw[i + 1]);
      int lo = hexValue(raw[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (j >= expected.size() || expected[j] != c) return false;
  }
  return j == expected.size();
}

void appendBagEncoded(std::string& out, std::string_view text) {
  appendEncoded(out, text, isUnreserved);
}

void appendSegmentEncoded(std::string& out, std::string_view text) {
  appendEncoded(out, text, segmentKeepsLiteral);
}


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

std::string percentEncode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  appendBagEncoded(out, text);
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

}  // namespace edgehub::transports
