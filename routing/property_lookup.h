#pragma once
// Case-insensitive property lookup (routing-language.md §1): the property whose name matches
// exactly wins; otherwise the first case-insensitive match in message order. Inline because it
// is the innermost operation of property conditions and source matching.
//
// Thread-safety: pure function. Hot.
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "routing/message_view.h"
#include "routing/unicode.h"

namespace edgehub::routing {

// Byte equality of n bytes. Names and values compared in routing are mostly short (property
// names, route literals, recorded body strings), where a call to memcmp costs more than the
// compare: 8 to 16 bytes are two (possibly overlapping) word compares, fewer a byte loop.
inline bool shortBytesEqual(const char* a, const char* b, size_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t x0, y0, x1, y1;
    std::memcpy(&x0, a, 8);
    std::memcpy(&y0, b, 8);
    std::memcpy(&x1, a + n - 8, 8);
    std::memcpy(&y1, b + n - 8, 8);
    return ((x0 ^ y0) | (x1 ^ y1)) == 0;
  }
  if (n < 8) {
    for (size_t i = 0; i < n; ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }
  return std::memcmp(a, b, n) == 0;
}

inline bool equalsIgnoreCaseAsciiFast(std::string_view a, std::string_view b) {
  // Callers guarantee equal sizes. Falls back to the Unicode comparison for non-ASCII bytes.
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    if ((x | y) >= 0x80) return equalsIgnoreCase(a, b);
    if ((x | 0x20) != (y | 0x20) || static_cast<unsigned char>((x | 0x20) - 'a') > 'z' - 'a') {
      return false;
    }
  }
  return true;
}

// Case-insensitive equality for any sizes, cheap when the sizes differ or the text is ASCII.
inline bool equalsIgnoreCaseFast(std::string_view a, std::string_view b) {
  if (a.size() == b.size()) return equalsIgnoreCaseAsciiFast(a, b);
  return !isAscii(a) && !isAscii(b) ? equalsIgnoreCase(a, b) : false;
}

// name_ascii: the name has only ASCII characters, so a property of another byte length cannot
// match it (simple case mapping of ASCII stays ASCII; the rare non-ASCII characters whose
// lower-case form is ASCII, e.g. KELVIN SIGN, are not treated as equal to ASCII letters).
inline const PropertyView* findProperty(std::span<const PropertyView> props, std::string_view name,
                                        bool name_ascii) {
  const PropertyView* folded = nullptr;
  for (const PropertyView& p : props) {
    if (p.name.size() == name.size()) {
      if (std::memcmp(p.name.data(), name.data(), name.size()) == 0) return &p;
      if (folded == nullptr && equalsIgnoreCaseAsciiFast(p.name, name)) folded = &p;
    } else if (!name_ascii && folded == nullptr && equalsIgnoreCase(p.name, name)) {
      folded = &p;  // non-ASCII names may change byte length under case mapping
    }
  }
  return folded;
}

}  // namespace edgehub::routing
