#include "routing/unicode.h"

#include <algorithm>

namespace edgehub::routing {

uint32_t decodeUtf8(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  auto cont = [&](size_t k) -> int {
    if (i + k >= s.size()) return -1;
    const auto b = static_cast<unsigned char>(s[i + k]);
    return (b & 0xC0) == 0x80 ? (b & 0x3F) : -1;
  };
  if (b0 >= 0xC2 && b0 < 0xE0) {
    const int c1 = cont(1);
    if (c1 >= 0) {
      i += 2;
      return ((b0 & 0x1Fu) << 6) | static_cast<uint32_t>(c1);
    }
  } else if (b0 >= 0xE0 && b0 < 0xF0) {
    const int c1 = cont(1);
    const int c2 = c1 >= 0 ? cont(2) : -1;
    if (c2 >= 0) {
      i += 3;
      return ((b0 & 0x0Fu) << 12) | (static_cast<uint32_t>(c1) << 6) | static_cast<uint32_t>(c2);
    }
  } else if (b0 >= 0xF0 && b0 < 0xF5) {
    const int c1 = cont(1);
    const int c2 = c1 >= 0 ? cont(2) : -1;
    const int c3 = c2 >= 0 ? cont(3) : -1;
    if (c3 >= 0) {
      i += 4;
      return ((b0 & 0x07u) << 18) | (static_cast<uint32_t>(c1) << 12) |
             (static_cast<uint32_t>(c2) << 6) | static_cast<uint32_t>(c3);
    }
  }
  ++i;
  return b0;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf16Length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++n;
      ++i;
      continue;
    }
    n += decodeUtf8(s, i) >= 0x10000 ? 2 : 1;
  }
  return n;
}

namespace {
// The first and second UTF-16 code units of cp (second is 0 for BMP code points).
inline void units(uint32_t cp, uint32_t& u1, uint32_t& u2) {
  if (cp >= 0x10000) {
    u1 = 0xD800 + ((cp - 0x10000) >> 10);
    u2 = 0xDC00 + ((cp - 0x10000) & 0x3FF);
  } else {
    u1 = cp;
    u2 = 0;
  }
}
}  // namespace

int compareUtf16(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t k = 0;
  while (k < n && a[k] == b[k]) ++k;
  if (k == a.size() || k == b.size()) {
    // One is a byte prefix of the other. Code-point boundaries coincide, so it is also a
    // code-unit prefix.
    return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
  }
  // Back up to the start of the code point containing the first difference.
  while (k > 0 && (static_cast<unsigned char>(a[k]) & 0xC0) == 0x80) --k;
  size_t ia = k;
  size_t ib = k;
  const uint32_t ca = decodeUtf8(a, ia);
  const uint32_t cb = decodeUtf8(b, ib);
  uint32_t a1, a2, b1, b2;
  units(ca, a1, a2);
  units(cb, b1, b2);
  if (a1 != b1) return a1 < b1 ? -1 : 1;
  if (a2 != b2) return a2 < b2 ? -1 : 1;
  return 0;  // unreachable for distinct code points
}

namespace {
uint32_t lookup(const unicode_detail::CaseMapping* begin, const unicode_detail::CaseMapping* end,
                uint32_t cp) {
  const auto* it = std::lower_bound(begin, end, cp, [](const unicode_detail::CaseMapping& m,
                                                       uint32_t v) { return m.from < v; });
  return (it != end && it->from == cp) ? it->to : cp;
}
}  // namespace

uint32_t simpleUpper(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  return lookup(unicode_detail::kUpperMapBegin, unicode_detail::kUpperMapEnd, cp);
}

uint32_t simpleLower(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return lookup(unicode_detail::kLowerMapBegin, unicode_detail::kLowerMapEnd, cp);
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() && j < b.size()) {
    const auto ca = static_cast<unsigned char>(a[i]);
    const auto cb = static_cast<unsigned char>(b[j]);
    if (ca < 0x80 && cb < 0x80) {
      if (asciiLower(static_cast<char>(ca)) != asciiLower(static_cast<char>(cb))) return false;
      ++i;
      ++j;
      continue;
    }
    if (simpleLower(decodeUtf8(a, i)) != simpleLower(decodeUtf8(b, j))) return false;
  }
  return i == a.size() && j == b.size();
}

void appendFolded(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(asciiLower(static_cast<char>(c)));
      ++i;
    } else {
      appendUtf8(out, simpleLower(decodeUtf8(s, i)));
    }
  }
}

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 < 0xE0) {
      len = 2;
      cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 < 0xF0) {
      len = 3;
      cp = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 < 0xF5) {
      len = 4;
      cp = b0 & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    i += len;
  }
  return true;
}

}  // namespace edgehub::routing
