#include "transports/iothub/percent.h"

namespace edgehub::transports::iothub {
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

}  // namespace edgehub::transports::iothub
