#pragma once
// Text helpers for the route language: UTF-8 decoding, UTF-16 code-unit semantics over UTF-8
// storage, simple Unicode case mapping and case-insensitive comparison.
//
// The engine stores text as UTF-8 (WTF-8 for unpaired surrogates written as \u escapes, i.e. a
// lone surrogate is kept as its 3-byte generalised UTF-8 form) while the language defines
// lengths, positions and ordering on UTF-16 code units (routing-language.md §1). These helpers
// give the UTF-16 answers without converting whole strings.
//
// Thread-safety: pure functions over immutable tables; safe from any thread.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace edgehub::routing {

namespace unicode_detail {
struct CaseMapping {
  uint32_t from;
  uint32_t to;
};
extern const CaseMapping* const kUpperMapBegin;
extern const CaseMapping* const kUpperMapEnd;
extern const CaseMapping* const kLowerMapBegin;
extern const CaseMapping* const kLowerMapEnd;
}  // namespace unicode_detail

inline bool isAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

inline char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Decodes one code point at s[i] and advances i. Accepts generalised UTF-8 (encoded surrogates);
// an invalid byte decodes as itself (U+0080..U+00FF range is never produced for valid input, so
// this only matters for garbage, which must merely not crash).
uint32_t decodeUtf8(std::string_view s, size_t& i);

// Appends the (generalised) UTF-8 encoding of cp.
void appendUtf8(std::string& out, uint32_t cp);

// Number of UTF-16 code units of s.
size_t utf16Length(std::string_view s);

// Ordinal comparison of the UTF-16 code-unit sequences of a and b: <0, 0, >0.
int compareUtf16(std::string_view a, std::string_view b);

uint32_t simpleUpper(uint32_t cp);
uint32_t simpleLower(uint32_t cp);

// Case-insensitive equality (simple case folding approximated by simple lower-casing).
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// Appends the simple lower-case form of s (used to build case-insensitive keys).
void appendFolded(std::string& out, std::string_view s);

// True when s is well-formed UTF-8 in the strict sense (no surrogates, no overlongs).
bool isValidUtf8(std::string_view s);

}  // namespace edgehub::routing
