#pragma once
// Case-insensitive property lookup (routing-language.md §1): the property whose name matches
// exactly wins; otherwise the first case-insensitive match in message order. Inline because it
// is the innermost operation of property conditions and source matching.
//
// Thread-safety: pure function. Hot.
#include <cstring>
#include <span>
#include <string_view>

#include "routing/message_view.h"
#include "routing/unicode.h"

namespace edgehub::routing {

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
