#include "routing/body_scan.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
// The string-stop pre-pass (x86-64 only: SSE2 is its baseline, AVX2 is chosen at run time).
#if defined(__x86_64__) && defined(__SSE2__)
#define HUB_STOP_PREPASS 1
#include <immintrin.h>
#endif

#include "routing/property_lookup.h"
#include "routing/unicode.h"

namespace edgehub::routing {

// ---- decoding --------------------------------------------------------------------------------

bool decodeUtf16le(std::span<const uint8_t> in, std::string& out) {
  if (in.size() % 2 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 2) {
    uint32_t u = static_cast<uint32_t>(in[i]) | (static_cast<uint32_t>(in[i + 1]) << 8);
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (i + 3 >= in.size()) return false;
      const uint32_t lo = static_cast<uint32_t>(in[i + 2]) | (static_cast<uint32_t>(in[i + 3]) << 8);
      if (lo < 0xDC00 || lo > 0xDFFF) return false;
      u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
      i += 2;
    } else if (u >= 0xDC00 && u <= 0xDFFF) {
      return false;
    }
    appendUtf8(out, u);
  }
  return true;
}

bool decodeUtf32le(std::span<const uint8_t> in, std::string& out) {
  if (in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    const uint32_t u = static_cast<uint32_t>(in[i]) | (static_cast<uint32_t>(in[i + 1]) << 8) |
                       (static_cast<uint32_t>(in[i + 2]) << 16) |
                       (static_cast<uint32_t>(in[i + 3]) << 24);
    if (u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF)) return false;
    appendUtf8(out, u);
  }
  return true;
}

// ---- BodyPlan --------------------------------------------------------------------------------

BodyPlan::BodyPlan() : nodes_(1) {}

namespace {

inline uint64_t load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// A seed for the name tables' multiplicative hash: odd (a bijection on 64-bit words), with
// well-mixed high bits (splitmix64's finaliser of the try number).
inline uint64_t seedMultiplier(uint64_t k) {
  uint64_t z = (k + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (z ^ (z >> 31)) | 1;
}

}  // namespace

__attribute__((always_inline)) inline BodyPlan::NameWords BodyPlan::nameWords(std::string_view name,
                                                                             size_t readable) {
  const char* const s = name.data();
  const size_t n = name.size();
  NameWords w;
  if (n >= 8) {
    w.head = load64(s);
    if (n > 8) w.tail = load64(s + n - 8);
  } else if (readable >= 8) {
    // One load and a mask instead of a byte loop; the bytes past the name are in the buffer.
    // The mask is computed (n < 8, so the shift is defined) rather than loaded from a table: it
    // is on the serial path from the name's end to its slot.
    w.head = load64(s) & ((uint64_t{1} << (8 * n)) - 1);
  } else {
    for (size_t k = 0; k < n; ++k) {
      w.head |= static_cast<uint64_t>(static_cast<unsigned char>(s[k])) << (8 * k);
    }
  }
  return w;
}

void BodyPlan::rebuildNames(uint32_t node) {
  size_t count = 0;
  for (uint32_t c = nodes_[node].first_child; c != kNone; c = nodes_[c].next_sibling) {
    if (nodes_[c].index < 0) ++count;
  }
  size_t size = 4;
  unsigned bits = 2;
  while (size < 4 * count) {
    size *= 2;
    ++bits;
  }
  // Try a few multipliers and keep the one that leaves the fewest names out of their home slot
  // (usually none for a small table). Cold: runs when a table grows or an insert collides; the
  // search is skipped for large tables, where collisions are unavoidable anyway.
  const int tries = count <= 64 ? 32 : 1;
  std::vector<NameSlot> best;
  uint64_t best_mul = 0;
  size_t best_displaced = SIZE_MAX;
  std::vector<NameSlot> table;
  for (int t = 0; t < tries && best_displaced != 0; ++t) {
    const uint64_t mul = seedMultiplier(static_cast<uint64_t>(t));
    table.assign(size, NameSlot{});
    size_t displaced = 0;
    for (uint32_t c = nodes_[node].first_child; c != kNone; c = nodes_[c].next_sibling) {
      if (nodes_[c].index >= 0) continue;
      const std::string& name = nodes_[c].name;
      const NameWords w = nameWords(name, name.size());
      size_t i = homeSlot(w, mul, 64 - bits);
      while (table[i].id != kNone) {
        i = (i + 1) & (size - 1);
        ++displaced;
      }
      table[i] = NameSlot{w, name.data(), static_cast<uint32_t>(name.size()), c,
                          nodes_[c].first_child != kNone};
    }
    if (displaced < best_displaced) {
      best_displaced = displaced;
      best_mul = mul;
      best.swap(table);
    }
  }
  Node& n = nodes_[node];
  n.names = std::move(best);
  n.name_count = static_cast<uint32_t>(count);
  n.mul = best_mul;
  n.shift = static_cast<uint8_t>(64 - bits);
}

__attribute__((always_inline)) inline BodyPlan::Found BodyPlan::lookupName(
    const NameSlot* table, size_t mask, uint64_t mul, unsigned shift, std::string_view name,
    size_t readable) {
  const NameWords w = nameWords(name, readable);
  const size_t n = name.size();
  for (size_t i = homeSlot(w, mul, shift);; i = (i + 1) & mask) {
    const NameSlot& slot = table[i];
    // The match first (most lookups of a wanted object hit): an empty slot (length and words
    // zero) can only match the empty name, and then returns its id, kNone, which is right.
    if (slot.len == n && slot.words.head == w.head && slot.words.tail == w.tail &&
        (n <= 16 || std::memcmp(slot.name + 8, name.data() + 8, n - 16) == 0)) {
      return Found{slot.id, slot.parent};
    }
    if (slot.id == kNone) return Found{kNone, false};
  }
}

uint32_t BodyPlan::findName(uint32_t node, std::string_view name, size_t readable) const {
  const Node& n = nodes_[node];
  if (n.names.empty()) return kNone;
  return lookupName(n.names.data(), n.names.size() - 1, n.mul, n.shift, name, readable).id;
}

void BodyPlan::markParent(uint32_t node) {
  const uint32_t up = nodes_[node].parent;
  if (up == kNone) return;  // the root is in no table
  for (NameSlot& slot : nodes_[up].names) {
    if (slot.id == node) slot.parent = true;
  }
}

uint32_t BodyPlan::findIndex(uint32_t node, int64_t index) const {
  for (uint32_t c = nodes_[node].first_child; c != kNone; c = nodes_[c].next_sibling) {
    if (nodes_[c].index == index) return c;
  }
  return kNone;
}

uint32_t BodyPlan::add(std::span<const PathStep> steps) {
  uint32_t node = 0;
  for (const PathStep& step : steps) {
    const uint32_t found =
        step.index >= 0 ? findIndex(node, step.index) : findName(node, step.name, step.name.size());
    if (found != kNone) {
      node = found;
      continue;
    }
    const auto id = static_cast<uint32_t>(nodes_.size());
    Node n;
    n.name = step.name;
    n.index = step.index;
    n.next_sibling = nodes_[node].first_child;
    n.parent = node;
    const Node* const before = nodes_.data();
    nodes_.push_back(std::move(n));
    if (nodes_.data() != before) {
      // The vector moved the names (short ones live inside the strings): refresh the pointers.
      // Geometric growth keeps this O(n log n) over a whole plan.
      for (Node& m : nodes_) {
        for (NameSlot& slot : m.names) {
          if (slot.id != kNone) slot.name = nodes_[slot.id].name.data();
        }
      }
    }
    Node& parent = nodes_[node];
    const bool was_leaf = parent.first_child == kNone;
    parent.first_child = id;
    if (was_leaf) markParent(node);
    if (step.index >= 0) {
      parent.index_children = true;
    } else {
      parent.name_children = true;
      const std::string& name = nodes_[id].name;
      const NameWords w = nameWords(name, name.size());
      const size_t home = parent.names.empty() ? 0 : homeSlot(w, parent.mul, parent.shift);
      if (4 * (parent.name_count + 1) > parent.names.size() ||
          (parent.names[home].id != kNone && parent.name_count < 64)) {
        // Grown past a quarter full (the table doubles: amortised O(1) per name), or a collision
        // in a small table: re-seed the whole table (cold; bounded by rebuildNames' tries).
        rebuildNames(node);
      } else {
        size_t i = home;
        while (parent.names[i].id != kNone) i = (i + 1) & (parent.names.size() - 1);
        parent.names[i] = NameSlot{w, name.data(), static_cast<uint32_t>(name.size()), id, false};
        ++parent.name_count;
      }
    }
    node = id;
  }
  return node;
}

// ---- BodyScanner -----------------------------------------------------------------------------

namespace {

inline bool isDigit(char c) { return static_cast<unsigned char>(c - '0') <= 9; }

inline int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  const char l = static_cast<char>(c | 0x20);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}

// Four hex digits at p (the caller checked that they are in range); -1 if not hex.
inline int32_t hex4(const char* p) {
  int32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const int d = hexDigit(p[i]);
    if (d < 0) return -1;
    v = (v << 4) | d;
  }
  return v;
}

inline size_t encodeUtf8(char* out, uint32_t cp) {
  if (cp < 0x80) {
    out[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<char>(0xC0 | (cp >> 6));
    out[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (cp >> 12));
    out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (cp >> 18));
  out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

Value objectValue() {
  Value v;
  v.kind = ValueKind::kObject;
  return v;
}

// A JSON number's value: never NaN (a decimal converts to a finite value or ±Infinity), so
// without Value::fromNumber's NaN test, which waited on the conversion's division.
Value parsedNumber(double d) {
  Value v;
  v.kind = ValueKind::kNumber;
  v.number = d;
  return v;
}

Value arrayValue() {
  Value v;
  v.kind = ValueKind::kArray;
  return v;
}

}  // namespace

// ---- lexical helpers (free functions over a local cursor) ------------------------------------

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHigh = 0x8080808080808080ull;

// Inside the top-level object, the parse steps need no end checks before reading a byte: scan()
// admits only texts whose last non-whitespace byte is the top-level object's '}' and parses the
// text up to it (end_ is one past it), so after any byte other than a '}' has been consumed the
// cursor is before end_, and a whitespace run from there ends at that '}' at the latest. Only a
// nested object's '}' can be that byte; the object and array loops check for the end after each
// value, which is where that shows.
inline const char* skipWsInside(const char* p) {
  // Compact JSON has none: one compare settles the common case (every JSON whitespace
  // character is <= ' ').
  if (static_cast<unsigned char>(*p) > ' ') return p;
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') ++p;
  return p;
}

inline const char* skipWs(const char* p, const char* end) {
  // Compact JSON has none: one compare settles the common case (every JSON whitespace
  // character is <= ' ').
  if (p == end || static_cast<unsigned char>(*p) > ' ') return p;
  while (p != end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
  return p;
}

// The first byte at or after p that ends a plain run of string content: '"', '\\', a control
// character (< 0x20) or a non-ASCII byte (>= 0x80, validated separately); end when none.
__attribute__((always_inline)) inline const char* findStringStop(const char* p, const char* end) {
#if defined(__SSE2__)
  // 16 bytes per step. A signed compare against ' ' flags both the control characters and the
  // bytes >= 0x80 (negative as signed), so three compares cover every stop.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i slash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(' ');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                                     _mm_cmplt_epi8(v, space));
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  // Eight bytes at a time. The lowest flagged byte is always a real stop (a borrow only flags
  // bytes above a real one), so the run ends exactly there.
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    const uint64_t quote_bytes = w ^ (kOnes * '"');
    const uint64_t slash_bytes = w ^ (kOnes * '\\');
    const uint64_t hit = ((w - kOnes * 0x20) | (quote_bytes - kOnes) | (slash_bytes - kOnes) | w) & kHigh;
    if (hit != 0) return p + (__builtin_ctzll(hit) >> 3);
    p += 8;
  }
  while (p != end) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
    ++p;
  }
  return p;
}

// How parseString finds the next stop. ByteStops compares from p on (findStringStop);
// PrepassStops looks it up in bitmaps computed for the whole text before parsing (below).
// Both are built from the scanner's state by each object and array step (one register or none;
// passing them down as arguments cost spills in the recursive steps).
struct ByteStops {
  static constexpr bool kStopsBeforeEnd = false;
  ByteStops(const char* /*begin*/, const uint64_t* /*words*/) {}
  const char* next(const char* p, const char* end) const { return findStringStop(p, end); }
};

struct PrepassStops {
  // parseWithStops also marks the text's final '}' (a string reaching it is unterminated), so a
  // search from inside the text never passes it.
  static constexpr bool kStopsBeforeEnd = true;
  PrepassStops(const char* text, const uint64_t* stop_words) : begin(text), words(stop_words) {}
  const char* begin;
  const uint64_t* words;  // bit i of words[k]: byte 64k+i is a stop (all bits set past the end)
  __attribute__((always_inline)) const char* next(const char* p, const char* /*end*/) const {
    size_t offset = static_cast<size_t>(p - begin);
    size_t k = offset / 64;
    uint64_t bits = words[k] >> (offset % 64);
    if (bits == 0) {
      // A string running past its block (uncommon for names and telemetry values); it ends at
      // the marked final '}' at the latest.
      do {
        bits = words[++k];
      } while (bits == 0);
      offset = 64 * k;
    }
    return begin + offset + static_cast<size_t>(__builtin_ctzll(bits));
  }
};

#if defined(HUB_STOP_PREPASS)

// The stops of the 64 bytes at p as a bitmap: the same byte classes as findStringStop (a signed
// compare against ' ' flags both the control characters and the bytes >= 0x80).
__attribute__((always_inline)) inline uint64_t stopBitsSse2(const char* p) {
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i slash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(' ');
  uint64_t bits = 0;
  for (int i = 0; i < 4; ++i) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                                     _mm_cmplt_epi8(v, space));
    bits |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(hit))) << (16 * i);
  }
  return bits;
}

__attribute__((target("avx2"), always_inline)) inline uint64_t stopBitsAvx2(const char* p) {
  const __m256i quote = _mm256_set1_epi8('"');
  const __m256i slash = _mm256_set1_epi8('\\');
  const __m256i space = _mm256_set1_epi8(' ');
  uint64_t bits = 0;
  for (int i = 0; i < 2; ++i) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i));
    const __m256i hit =
        _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, slash)),
                        _mm256_cmpgt_epi8(space, v));
    bits |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(hit))) << (32 * i);
  }
  return bits;
}

// markStops* fill words[0 .. length/64 + 1] for PrepassStops: whole blocks first, then the
// last partial one, read as the 64-byte window ending at the text's end so that no byte past the
// end is read (a text shorter than one block is read from a copy padded with quotes). Bits past
// the end are set, and so is the whole word after the last.
inline const char* tailWindow(const char* text, size_t length, char* padded) {
  if (length >= 64) return text + length - 64;
  std::memcpy(padded, text, length);
  std::memset(padded + length, '"', 64 - length);
  return padded;
}

inline void storeTail(size_t length, uint64_t window_bits, uint64_t* words) {
  const size_t full = length / 64;
  const size_t rest = length % 64;
  if (rest == 0) {
    words[full] = ~uint64_t{0};
    return;
  }
  if (length >= 64) window_bits >>= 64 - rest;
  words[full] = window_bits | (~uint64_t{0} << rest);
  words[full + 1] = ~uint64_t{0};
}

void markStopsSse2(const char* text, size_t length, uint64_t* words) {
  const size_t full = length / 64;
  for (size_t k = 0; k < full; ++k) words[k] = stopBitsSse2(text + 64 * k);
  char padded[64];
  const uint64_t tail = length % 64 != 0 ? stopBitsSse2(tailWindow(text, length, padded)) : 0;
  storeTail(length, tail, words);
}

__attribute__((target("avx2"))) void markStopsAvx2(const char* text, size_t length,
                                                   uint64_t* words) {
  const size_t full = length / 64;
  for (size_t k = 0; k < full; ++k) words[k] = stopBitsAvx2(text + 64 * k);
  char padded[64];
  const uint64_t tail = length % 64 != 0 ? stopBitsAvx2(tailWindow(text, length, padded)) : 0;
  storeTail(length, tail, words);
}

bool cpuHasAvx2() {
  // Decided once per process (thread-safe static initialisation).
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}

#endif  // HUB_STOP_PREPASS

// p is at a byte >= 0x80. Accepts exactly the well-formed UTF-8 sequences (Unicode table 3-7);
// returns the position after the sequence or nullptr.
const char* validUtf8Sequence(const char* p, const char* end) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  const size_t left = static_cast<size_t>(end - p);
  const unsigned c = u[0];
  auto cont = [](unsigned char b) { return (b & 0xC0) == 0x80; };
  if (c < 0xC2) return nullptr;
  if (c < 0xE0) {
    if (left < 2 || !cont(u[1])) return nullptr;
    return p + 2;
  }
  if (c < 0xF0) {
    if (left < 3) return nullptr;
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned hi = c == 0xED ? 0x9F : 0xBF;
    if (u[1] < lo || u[1] > hi || !cont(u[2])) return nullptr;
    return p + 3;
  }
  if (c < 0xF5) {
    if (left < 4) return nullptr;
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;
    if (u[1] < lo || u[1] > hi || !cont(u[2]) || !cont(u[3])) return nullptr;
    return p + 4;
  }
  return nullptr;
}

// p is at a backslash. Validates one escape (a \u high surrogate must be followed by a \u low
// surrogate); returns the position after it or nullptr.
const char* validEscape(const char* p, const char* end) {
  ++p;
  if (p == end) return nullptr;
  switch (*p) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't': return p + 1;
    case 'u': {
      if (end - p < 5) return nullptr;
      const int32_t u = hex4(p + 1);
      if (u < 0) return nullptr;
      p += 5;
      if (u >= 0xDC00 && u <= 0xDFFF) return nullptr;  // unpaired low surrogate
      if (u >= 0xD800 && u <= 0xDBFF) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return nullptr;
        const int32_t lo = hex4(p + 2);
        if (lo < 0xDC00 || lo > 0xDFFF) return nullptr;
        p += 6;
      }
      return p;
    }
    default: return nullptr;
  }
}

// p is at the opening quote. Validates the whole string (escapes, surrogate pairs, UTF-8, no
// control characters) and returns the position after the closing quote, or nullptr; *raw is the
// text between the quotes and *escaped tells whether it holds a backslash.
template <class Stops>
__attribute__((always_inline)) inline const char* parseString(const char* p, const char* end,
                                                              Stops stops, std::string_view* raw,
                                                              bool* escaped) {
  const char* const start = ++p;
  for (;;) {
    p = stops.next(p, end);
    if (!Stops::kStopsBeforeEnd && p == end) return nullptr;
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"') {
      *raw = std::string_view(start, static_cast<size_t>(p - start));
      return p + 1;
    }
    if (c < 0x20) return nullptr;
    if (c >= 0x80) {
      p = validUtf8Sequence(p, end);
    } else if (c == '\\') {
      *escaped = true;
      p = validEscape(p, end);
    } else {
      return nullptr;  // the pre-pass's stop at the text's final '}': an unterminated string
    }
    if (p == nullptr) return nullptr;
  }
}

// The digit loops below need no end check: scan() admits only texts whose last non-whitespace
// byte is '}', so every digit run of the text ends before its end.
inline const char* skipDigits(const char* p) {
  while (isDigit(*p)) ++p;
  return p;
}

// Skips a digit run, accumulating its decimal value into *acc in the same pass (a second pass
// over the digits cost more than the multiply-add here). Only the first 19 digits are
// meaningful; the caller discards the value beyond 15 significant digits, so wrap-around is
// harmless.
inline const char* scanDigits(const char* p, uint64_t* acc) {
  uint64_t a = *acc;
  for (;; ++p) {
    const auto d = static_cast<unsigned char>(*p - '0');
    if (d > 9) break;
    a = a * 10 + d;
  }
  *acc = a;
  return p;
}

}  // namespace

bool BodyScanner::load(const MessageView& message, const BodyPlan& plan) {
  plan_ = &plan;
  // Both preconditions' properties in one pass, each by findProperty's rule (the first exact
  // name wins, else the first case-insensitive match): two scans of the list cost twice this.
  const PropertyView* ct = nullptr;
  const PropertyView* ct_folded = nullptr;
  const PropertyView* ce = nullptr;
  const PropertyView* ce_folded = nullptr;
  for (const PropertyView& p : message.system_properties) {
    if (p.name.size() == 11) {
      if (std::memcmp(p.name.data(), "contentType", 11) == 0) {
        if (ct == nullptr) ct = &p;
      } else if (ct_folded == nullptr && equalsIgnoreCaseAsciiFast(p.name, "contentType")) {
        ct_folded = &p;
      }
    } else if (p.name.size() == 15) {
      if (std::memcmp(p.name.data(), "contentEncoding", 15) == 0) {
        if (ce == nullptr) ce = &p;
      } else if (ce_folded == nullptr && equalsIgnoreCaseAsciiFast(p.name, "contentEncoding")) {
        ce_folded = &p;
      }
    }
  }
  if (ct == nullptr) ct = ct_folded;
  if (ce == nullptr) ce = ce_folded;
  if (ct == nullptr || ct->is_null) return false;
  // The exact spelling first: one fixed-size compare instead of a case-folding byte loop.
  if (!(ct->value.size() == 16 && std::memcmp(ct->value.data(), "application/json", 16) == 0) &&
      !equalsIgnoreCaseFast(ct->value, "application/json")) {
    return false;
  }
  if (ce == nullptr || ce->is_null) return false;
  const char* begin = reinterpret_cast<const char*>(message.body.data());
  size_t length = message.body.size();
  if (!equalsIgnoreCaseFast(ce->value, "utf-8")) {
    const bool utf16 = equalsIgnoreCaseFast(ce->value, "utf-16");
    if (!utf16 && !equalsIgnoreCaseFast(ce->value, "utf-32")) return false;
    decoded_.clear();
    if (!(utf16 ? decodeUtf16le(message.body, decoded_) : decodeUtf32le(message.body, decoded_))) {
      return false;
    }
    begin = decoded_.data();
    length = decoded_.size();
  }
  // Unescaping never lengthens a string, so the text length bounds all unescaped output and the
  // buffer never reallocates during the scan (values keep pointing into it).
  if (unescaped_.size() < length) unescaped_.resize(length);
  unescaped_used_ = 0;
  if (values_.size() != plan.nodes_.size()) {
    values_.assign(plan.nodes_.size(), Value::missing());
  } else {
    // Only the kind: a missing value's other fields are never read (value.h), and this loop is
    // a third of the full 24-byte fill, once per message for every slot of the plan.
    for (Value& v : values_) v.kind = ValueKind::kMissing;
  }
  if (length == 0) return false;
  return scan(begin, begin + length);
}

bool BodyScanner::scan(const char* begin, const char* end) {
  const char* p = skipWs(begin, end);
  if (p == end || *p != '{') return false;
  // A valid text ends with the top-level object's '}' and whitespace. Rejecting any other text
  // here, before parsing, lets the number parser scan digit runs without end checks (none can
  // run to the end of the text); the result is the same since such a text is invalid anyway.
  const char* last = end - 1;
  while (last != p && (*last == ' ' || *last == '\n' || *last == '\r' || *last == '\t')) --last;
  if (last == p || *last != '}') return false;
  // The parse steps see the text up to that '}' only: what follows is whitespace (checked
  // above), and no token can extend into it, so the result is the same; with this end, only a
  // nested object closing at that '}' can bring a step to the end (skipWsInside).
  end_ = last + 1;
  p = parseWithStops(p, begin, last, end_);
  if (p == nullptr) return false;
  return p == end_;
}

bool BodyScanner::stopPrepassAvailable(ScanPath path) {
#if defined(HUB_STOP_PREPASS)
  switch (path) {
    case ScanPath::kAuto:
    case ScanPath::kPrepassSse2: return true;
    case ScanPath::kPrepassAvx2: return cpuHasAvx2();
    case ScanPath::kBytes: return false;
  }
#endif
  (void)path;
  return false;
}

// Parses the top-level object at p, with the string-stop pre-pass when the text fits its
// buffer and the target has one, else with the byte scanner's string search.
const char* BodyScanner::parseWithStops(const char* p, const char* begin, const char* last,
                                        const char* end) {
#if defined(HUB_STOP_PREPASS)
  const auto length = static_cast<size_t>(end - begin);
  if (path_ != ScanPath::kBytes && length <= kPrepassMaxBody) {
    if (stops_.empty()) stops_.resize(kPrepassMaxBody / 64 + 2);  // once per scanner
    bool avx2 = path_ == ScanPath::kPrepassAvx2 || path_ == ScanPath::kAuto;
    avx2 = avx2 && cpuHasAvx2();
    if (avx2) {
      markStopsAvx2(begin, length, stops_.data());
    } else {
      markStopsSse2(begin, length, stops_.data());
    }
    const auto final_brace = static_cast<size_t>(last - begin);
    stops_[final_brace / 64] |= uint64_t{1} << (final_brace % 64);
    text_begin_ = begin;
    return parseObject<PrepassStops>(p, 0, 1);
  }
#else
  (void)begin;
  (void)last;
  (void)end;
#endif
  return parseObject<ByteStops>(p, 0, 1);
}

void BodyScanner::clearBelow(uint32_t node) {
  for (uint32_t c = plan_->nodes_[node].first_child; c != BodyPlan::kNone;
       c = plan_->nodes_[c].next_sibling) {
    if (values_[c].kind == ValueKind::kMissing) continue;  // nothing recorded under it either
    values_[c] = Value::missing();
    clearBelow(c);
  }
}

void BodyScanner::recordString(std::string_view raw, bool escaped, uint32_t node) {
  if (escaped) {
    raw = unescape(raw, unescaped_.data() + unescaped_used_);
    unescaped_used_ += raw.size();
  }
  values_[node] = Value::fromString(raw);
}

template <class Stops>
__attribute__((always_inline)) inline const char* BodyScanner::parseValue(const char* p,
                                                                          uint32_t node, int depth,
                                                                          Stops stops) {
  const char* const end = end_;
  // Strings and numbers, most telemetry values, before the jump table (an indirect jump costs
  // more than these compares).
  if (*p == '"') {
    std::string_view raw;
    bool escaped = false;
    p = parseString(p, end, stops, &raw, &escaped);
    if (p != nullptr && node != BodyPlan::kNone) recordString(raw, escaped, node);
    return p;
  }
  if (isDigit(*p) || *p == '-') return parseNumber(p, node);
  switch (*p) {
    case '{':
      p = parseObject<Stops>(p, node, depth + 1);
      if (p != nullptr && node != BodyPlan::kNone) values_[node] = objectValue();
      return p;
    case '[':
      p = parseArray<Stops>(p, node, depth + 1);
      if (p != nullptr && node != BodyPlan::kNone) values_[node] = arrayValue();
      return p;
    case 't':
      if (end - p < 4 || std::memcmp(p, "true", 4) != 0) return nullptr;
      if (node != BodyPlan::kNone) values_[node] = Value::fromBool(true);
      return p + 4;
    case 'f':
      if (end - p < 5 || std::memcmp(p, "false", 5) != 0) return nullptr;
      if (node != BodyPlan::kNone) values_[node] = Value::fromBool(false);
      return p + 5;
    case 'n':
      if (end - p < 4 || std::memcmp(p, "null", 4) != 0) return nullptr;
      if (node != BodyPlan::kNone) values_[node] = Value::null();
      return p + 4;
    default: return parseNumber(p, node);
  }
}

// RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
// The token is validated first (pointer walks only); only a wanted number is then converted.
// The Clinger fast path: at most 15 significant digits and a power of ten up to 1e22 are exact
// doubles, so one division rounds correctly. Everything else goes through from_chars
// (correctly rounded).
__attribute__((always_inline)) inline const char* BodyScanner::parseNumber(const char* p,
                                                                           uint32_t node) {
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const char* const start = p;
  const bool negative = *p == '-';
  if (negative) ++p;
  const char* const int_begin = p;
  uint64_t mantissa = 0;
  if (*p == '0') {
    ++p;
  } else if (isDigit(*p)) {
    p = scanDigits(p, &mantissa);
  } else {
    return nullptr;
  }
  const char* const int_end = p;
  const char* frac_begin = p;
  const char* frac_end = p;
  if (*p == '.') {
    frac_begin = ++p;
    p = scanDigits(p, &mantissa);
    if (p == frac_begin) return nullptr;
    frac_end = p;
  }
  bool has_exponent = false;
  if ((*p | 0x20) == 'e') {  // 'e' or 'E' (no other byte maps to 'e' under | 0x20)
    has_exponent = true;
    ++p;
    if (*p == '+' || *p == '-') ++p;
    const char* const d = p;
    p = skipDigits(p);
    if (p == d) return nullptr;
  }
  if (node == BodyPlan::kNone) return p;
  const bool integer = !has_exponent && frac_end == frac_begin;
  const auto frac_len = static_cast<size_t>(frac_end - frac_begin);
  // The fast path needs at most 15 significant digits. Every digit of the token, leading zeros
  // included, is a cheaper bound that admits nearly every telemetry number; only a longer token
  // counts exactly: all of a non-zero integer part, else the fraction from its first non-zero
  // digit (and then the power of ten must still be exact: frac_len <= 22).
  bool fast = false;
  if (!has_exponent) {
    const auto digit_chars = static_cast<size_t>(int_end - int_begin) + frac_len;
    if (digit_chars <= 15) {
      fast = true;
    } else if (*int_begin == '0' && frac_len <= 22) {
      const char* z = frac_begin;
      while (z != frac_end && *z == '0') ++z;
      fast = frac_end - z <= 15;
    }
  }
  double value = 0;
  if (fast) {
    value = static_cast<double>(mantissa);
    if (frac_len != 0) value /= kPow10[frac_len];
    // simdjson reads an integer token as int64, so "-0" is +0 there (and in BodyDocument);
    // "-0.0" keeps its sign.
    if (negative && (mantissa != 0 || frac_len != 0)) value = -value;
    values_[node] = parsedNumber(value);
    return p;
  }
  const auto r = std::from_chars(start, p, value, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range) {
    // Cold: overflow (±Infinity) or underflow (a denormal or zero); strtod rounds both right.
    const std::string copy(start, p);
    value = std::strtod(copy.c_str(), nullptr);
  }
  if (integer && value == 0) value = 0;  // "-0" is +0, as above
  values_[node] = parsedNumber(value);
  return p;
}

template <class Stops>
const char* BodyScanner::parseObject(const char* p, uint32_t node, int depth) {
  if (depth >= kMaxBodyDepth) return nullptr;
  const Stops stops(text_begin_, stops_.data());
  const char* const end = end_;
  // values_ never reallocates during a scan; through the member, its data pointer was reloaded
  // after every value store.
  const Value* const values = values_.data();
  p = skipWsInside(p + 1);  // after '{'
  if (*p == '}') return p + 1;
  // The name table of a wanted object, loaded once: re-reading it through plan_ for every member
  // cost loads the compiler could not hoist (value stores might alias the plan, as it sees it).
  const BodyPlan::NameSlot* names = nullptr;
  size_t mask = 0;
  uint64_t mul = 0;
  unsigned shift = 0;
  if (node != BodyPlan::kNone && plan_->nodes_[node].name_children) {
    const BodyPlan::Node& n = plan_->nodes_[node];
    names = n.names.data();
    mask = n.names.size() - 1;
    mul = n.mul;
    shift = n.shift;
  }
  for (;;) {
    if (*p != '"') return nullptr;
    std::string_view name;
    bool escaped = false;
    p = parseString(p, end, stops, &name, &escaped);
    if (p == nullptr) return nullptr;
    BodyPlan::Found found{BodyPlan::kNone, false};
    if (names != nullptr) {
      if (escaped) {
        if (key_.size() < name.size()) key_.resize(name.size());
        name = unescape(name, key_.data());
        found = BodyPlan::lookupName(names, mask, mul, shift, name, key_.size());
      } else {
        found = BodyPlan::lookupName(names, mask, mul, shift, name,
                                     static_cast<size_t>(end - name.data()));
      }
    }
    const uint32_t child = found.id;
    // Compact JSON puts ':' right after the name: test for it before any whitespace skipping.
    if (*p != ':') {
      p = skipWsInside(p);
      if (*p != ':') return nullptr;
    }
    p = skipWsInside(p + 1);
    // A repeated name: this occurrence replaces the earlier one entirely (last wins, §11.1).
    // Only a wanted child with wanted children of its own can have recorded below it.
    if (found.parent && values[child].kind != ValueKind::kMissing) clearBelow(child);
    p = parseValue(p, child, depth, stops);
    if (p == nullptr || p == end) return nullptr;
    if (*p != ',' && *p != '}') p = skipWsInside(p);
    if (*p == ',') {
      p = skipWsInside(p + 1);
      continue;
    }
    if (*p == '}') return p + 1;
    return nullptr;
  }
}

template <class Stops>
const char* BodyScanner::parseArray(const char* p, uint32_t node, int depth) {
  if (depth >= kMaxBodyDepth) return nullptr;
  const Stops stops(text_begin_, stops_.data());
  const char* const end = end_;
  p = skipWsInside(p + 1);  // after '['
  if (*p == ']') return p + 1;
  const bool wanted = node != BodyPlan::kNone && plan_->nodes_[node].index_children;
  for (int64_t i = 0;; ++i) {
    const uint32_t child = wanted ? plan_->findIndex(node, i) : BodyPlan::kNone;
    p = parseValue(p, child, depth, stops);
    if (p == nullptr || p == end) return nullptr;
    if (*p != ',' && *p != ']') p = skipWsInside(p);
    if (*p == ',') {
      p = skipWsInside(p + 1);
      continue;
    }
    if (*p == ']') return p + 1;
    return nullptr;
  }
}

// `raw` was validated by parseString. Writes at most raw.size() bytes at `out`.
std::string_view BodyScanner::unescape(std::string_view raw, char* out) {
  char* o = out;
  const char* q = raw.data();
  const char* const e = q + raw.size();
  while (q != e) {
    if (*q != '\\') {
      *o++ = *q++;
      continue;
    }
    ++q;
    const char k = *q++;
    switch (k) {
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'n': *o++ = '\n'; break;
      case 'r': *o++ = '\r'; break;
      case 't': *o++ = '\t'; break;
      case 'u': {
        auto cp = static_cast<uint32_t>(hex4(q));
        q += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          const auto lo = static_cast<uint32_t>(hex4(q + 2));
          q += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        o += encodeUtf8(o, cp);
        break;
      }
      default: *o++ = k; break;  // '"', '\\', '/'
    }
  }
  return std::string_view(out, static_cast<size_t>(o - out));
}

}  // namespace edgehub::routing
