#include "routing/body_scan.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

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

// Byte equality of two names of equal length. Names of 8 to 16 bytes compare as two (possibly
// overlapping) 8-byte words; that is most member names, and cheaper than a byte loop or a call.
inline bool namesEqual(const char* a, std::string_view b) {
  const size_t n = b.size();
  if (n >= 8 && n <= 16) {
    uint64_t x0, y0, x1, y1;
    std::memcpy(&x0, a, 8);
    std::memcpy(&y0, b.data(), 8);
    std::memcpy(&x1, a + n - 8, 8);
    std::memcpy(&y1, b.data() + n - 8, 8);
    return ((x0 ^ y0) | (x1 ^ y1)) == 0;
  }
  if (n < 8) {
    for (size_t k = 0; k < n; ++k) {
      if (a[k] != b[k]) return false;
    }
    return true;
  }
  return std::memcmp(a, b.data(), n) == 0;
}

}  // namespace

// Length and three sampled bytes: O(1) and branch-light whatever the name length (hashing every
// byte cost more than the compares it saves). Collisions are settled by a full compare.
uint64_t BodyPlan::signature(std::string_view name) {
  const size_t n = name.size();
  if (n == 0) return 0;
  const auto* s = reinterpret_cast<const unsigned char*>(name.data());
  const uint64_t k = static_cast<uint64_t>(n) | (static_cast<uint64_t>(s[0]) << 32) |
                     (static_cast<uint64_t>(s[n / 2]) << 40) | (static_cast<uint64_t>(s[n - 1]) << 48);
  const uint64_t h = k * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 31);
}

void BodyPlan::rebuildNames(uint32_t node) {
  size_t count = 0;
  for (uint32_t c = nodes_[node].first_child; c != kNone; c = nodes_[c].next_sibling) {
    if (nodes_[c].index < 0) ++count;
  }
  size_t size = 4;
  while (size < 2 * count) size *= 2;
  std::vector<NameSlot> table(size);
  for (uint32_t c = nodes_[node].first_child; c != kNone; c = nodes_[c].next_sibling) {
    if (nodes_[c].index >= 0) continue;
    const uint64_t sig = signature(nodes_[c].name);
    size_t i = sig & (size - 1);
    while (table[i].id != kNone) i = (i + 1) & (size - 1);
    table[i] = NameSlot{sig, nodes_[c].name.data(), static_cast<uint32_t>(nodes_[c].name.size()), c};
  }
  nodes_[node].names = std::move(table);
  nodes_[node].name_count = static_cast<uint32_t>(count);
}

__attribute__((always_inline)) inline uint32_t BodyPlan::findName(uint32_t node,
                                                                  std::string_view name) const {
  const std::vector<NameSlot>& table = nodes_[node].names;
  if (table.empty()) return kNone;
  const uint64_t sig = signature(name);
  const size_t mask = table.size() - 1;
  for (size_t i = sig & mask; table[i].id != kNone; i = (i + 1) & mask) {
    const NameSlot& slot = table[i];
    if (slot.sig != sig || slot.len != name.size()) continue;
    if (namesEqual(slot.name, name)) return slot.id;
  }
  return kNone;
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
    const uint32_t found = step.index >= 0 ? findIndex(node, step.index) : findName(node, step.name);
    if (found != kNone) {
      node = found;
      continue;
    }
    const auto id = static_cast<uint32_t>(nodes_.size());
    Node n;
    n.name = step.name;
    n.index = step.index;
    n.next_sibling = nodes_[node].first_child;
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
    parent.first_child = id;
    if (step.index >= 0) {
      parent.index_children = true;
    } else if (2 * (parent.name_count + 1) > parent.names.size()) {
      parent.name_children = true;
      rebuildNames(node);  // doubles the table: amortised O(1) per name
    } else {
      const uint64_t sig = signature(nodes_[id].name);
      const size_t mask = parent.names.size() - 1;
      size_t i = sig & mask;
      while (parent.names[i].id != kNone) i = (i + 1) & mask;
      parent.names[i] = NameSlot{sig, nodes_[id].name.data(), static_cast<uint32_t>(nodes_[id].name.size()), id};
      ++parent.name_count;
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

Value arrayValue() {
  Value v;
  v.kind = ValueKind::kArray;
  return v;
}

}  // namespace

bool BodyScanner::load(const MessageView& message, const BodyPlan& plan) {
  plan_ = &plan;
  const PropertyView* ct = findProperty(message.system_properties, "contentType", true);
  if (ct == nullptr || ct->is_null || !equalsIgnoreCaseFast(ct->value, "application/json")) return false;
  const PropertyView* ce = findProperty(message.system_properties, "contentEncoding", true);
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
  values_.assign(plan.nodes_.size(), Value::missing());
  if (length == 0) return false;
  return scan(begin, begin + length);
}

bool BodyScanner::scan(const char* begin, const char* end) {
  p_ = begin;
  end_ = end;
  skipWhitespace();
  if (p_ == end_ || *p_ != '{') return false;
  if (!parseObject(0, 1)) return false;
  skipWhitespace();
  return p_ == end_;
}

void BodyScanner::clearBelow(uint32_t node) {
  for (uint32_t c = plan_->nodes_[node].first_child; c != BodyPlan::kNone;
       c = plan_->nodes_[c].next_sibling) {
    if (values_[c].kind == ValueKind::kMissing) continue;  // nothing recorded under it either
    values_[c] = Value::missing();
    clearBelow(c);
  }
}

bool BodyScanner::parseValue(uint32_t node, int depth) {
  if (p_ == end_) return false;
  switch (*p_) {
    case '{':
      if (!parseObject(node, depth + 1)) return false;
      if (node != BodyPlan::kNone) values_[node] = objectValue();
      return true;
    case '[':
      if (!parseArray(node, depth + 1)) return false;
      if (node != BodyPlan::kNone) values_[node] = arrayValue();
      return true;
    case '"': {
      std::string_view raw;
      bool escaped = false;
      if (!parseString(&raw, &escaped)) return false;
      if (node != BodyPlan::kNone) {
        if (escaped) {
          raw = unescape(raw, unescaped_.data() + unescaped_used_);
          unescaped_used_ += raw.size();
        }
        values_[node] = Value::fromString(raw);
      }
      return true;
    }
    case 't':
      if (end_ - p_ < 4 || std::memcmp(p_, "true", 4) != 0) return false;
      p_ += 4;
      if (node != BodyPlan::kNone) values_[node] = Value::fromBool(true);
      return true;
    case 'f':
      if (end_ - p_ < 5 || std::memcmp(p_, "false", 5) != 0) return false;
      p_ += 5;
      if (node != BodyPlan::kNone) values_[node] = Value::fromBool(false);
      return true;
    case 'n':
      if (end_ - p_ < 4 || std::memcmp(p_, "null", 4) != 0) return false;
      p_ += 4;
      if (node != BodyPlan::kNone) values_[node] = Value::null();
      return true;
    default: break;
  }
  return parseNumber(node);
}

// RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
// One pass validates the token and, when it is wanted, gathers the Clinger fast path's inputs:
// at most 15 significant digits and a power of ten up to 1e22 are exact doubles, so one
// division rounds correctly. Everything else goes through from_chars (correctly rounded).
bool BodyScanner::parseNumber(uint32_t node) {
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  // Local cursor: the member p_ would be reloaded and stored around every byte.
  const char* const start = p_;
  const char* p = p_;
  const char* const end = end_;
  const bool negative = *p == '-';
  if (negative) ++p;
  if (p == end) return false;
  uint64_t mantissa = 0;
  int digits = 0;  // significant digits gathered in mantissa
  int exponent = 0;
  if (*p == '0') {
    ++p;
  } else if (isDigit(*p)) {
    for (; p != end && isDigit(*p); ++p) {
      mantissa = mantissa * 10 + static_cast<uint64_t>(*p - '0');
      ++digits;
    }
  } else {
    return false;
  }
  bool integer = true;
  if (p != end && *p == '.') {
    integer = false;
    const char* d = ++p;
    for (; p != end && isDigit(*p); ++p) {
      mantissa = mantissa * 10 + static_cast<uint64_t>(*p - '0');
      if (mantissa != 0) ++digits;
      --exponent;
    }
    if (p == d) return false;
  }
  bool fast = digits <= 15 && exponent >= -22;
  if (p != end && (*p == 'e' || *p == 'E')) {
    integer = false;
    fast = false;
    ++p;
    if (p != end && (*p == '+' || *p == '-')) ++p;
    const char* d = p;
    while (p != end && isDigit(*p)) ++p;
    if (p == d) return false;
  }
  p_ = p;
  if (node == BodyPlan::kNone) return true;
  double value = 0;
  if (fast) {
    value = static_cast<double>(mantissa);
    if (exponent < 0) value /= kPow10[-exponent];
    if (negative) value = -value;
  } else {
    const auto r = std::from_chars(start, p_, value, std::chars_format::general);
    if (r.ec == std::errc::result_out_of_range) {
      // Cold: overflow (±Infinity) or underflow (a denormal or zero); strtod rounds both right.
      const std::string copy(start, p_);
      value = std::strtod(copy.c_str(), nullptr);
    }
  }
  // simdjson reads an integer token as int64, so "-0" is +0 there (and in BodyDocument).
  if (integer && value == 0) value = 0;
  values_[node] = Value::fromNumber(value);
  return true;
}

bool BodyScanner::parseObject(uint32_t node, int depth) {
  if (depth >= kMaxBodyDepth) return false;
  ++p_;  // '{'
  skipWhitespace();
  if (p_ != end_ && *p_ == '}') {
    ++p_;
    return true;
  }
  const bool wanted = node != BodyPlan::kNone && plan_->nodes_[node].name_children;
  for (;;) {
    if (p_ == end_ || *p_ != '"') return false;
    std::string_view name;
    bool escaped = false;
    if (!parseString(&name, &escaped)) return false;
    uint32_t child = BodyPlan::kNone;
    if (wanted) {
      if (escaped) {
        if (key_.size() < name.size()) key_.resize(name.size());
        name = unescape(name, key_.data());
      }
      child = plan_->findName(node, name);
    }
    skipWhitespace();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    skipWhitespace();
    // A repeated name: this occurrence replaces the earlier one entirely (last wins, §11.1).
    if (child != BodyPlan::kNone && values_[child].kind != ValueKind::kMissing) clearBelow(child);
    if (!parseValue(child, depth)) return false;
    skipWhitespace();
    if (p_ == end_) return false;
    if (*p_ == ',') {
      ++p_;
      skipWhitespace();
      continue;
    }
    if (*p_ == '}') {
      ++p_;
      return true;
    }
    return false;
  }
}

bool BodyScanner::parseArray(uint32_t node, int depth) {
  if (depth >= kMaxBodyDepth) return false;
  ++p_;  // '['
  skipWhitespace();
  if (p_ != end_ && *p_ == ']') {
    ++p_;
    return true;
  }
  const bool wanted = node != BodyPlan::kNone && plan_->nodes_[node].index_children;
  for (int64_t i = 0;; ++i) {
    const uint32_t child = wanted ? plan_->findIndex(node, i) : BodyPlan::kNone;
    if (!parseValue(child, depth)) return false;
    skipWhitespace();
    if (p_ == end_) return false;
    if (*p_ == ',') {
      ++p_;
      skipWhitespace();
      continue;
    }
    if (*p_ == ']') {
      ++p_;
      return true;
    }
    return false;
  }
}

// p_ is at the opening quote. Validates the whole string (escapes, surrogate pairs, UTF-8, no
// control characters) and leaves p_ after the closing quote; *raw is the text between quotes.
__attribute__((always_inline)) inline bool BodyScanner::parseString(std::string_view* raw,
                                                                    bool* escaped) {
  ++p_;
  const char* start = p_;
  for (;;) {
    // ASCII run without quote, backslash or control characters, eight bytes at a time. The
    // lowest flagged byte is always a real stop (a borrow only flags bytes above a real one), so
    // the run ends exactly there.
    const char* p = p_;
    const char* const end = end_;
    for (;;) {
      if (end - p >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        constexpr uint64_t kOnes = 0x0101010101010101ull;
        constexpr uint64_t kHigh = 0x8080808080808080ull;
        const uint64_t quote = w ^ (kOnes * '"');
        const uint64_t slash = w ^ (kOnes * '\\');
        // A byte is flagged when it is < 0x20, '"', '\\' or >= 0x80.
        const uint64_t hit = ((w - kOnes * 0x20) | (quote - kOnes) | (slash - kOnes) | w) & kHigh;
        if (hit == 0) {
          p += 8;
          continue;
        }
        p += __builtin_ctzll(hit) >> 3;
        break;
      }
      while (p != end) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++p;
      }
      break;
    }
    p_ = p;
    if (p_ == end_) return false;
    const auto c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      *raw = std::string_view(start, static_cast<size_t>(p_ - start));
      ++p_;
      return true;
    }
    if (c < 0x20) return false;
    if (c >= 0x80) {
      if (!validUtf8Sequence()) return false;
      continue;
    }
    // Backslash.
    *escaped = true;
    ++p_;
    if (p_ == end_) return false;
    switch (*p_) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't': ++p_; break;
      case 'u': {
        if (end_ - p_ < 5) return false;
        const int32_t u = hex4(p_ + 1);
        if (u < 0) return false;
        p_ += 5;
        if (u >= 0xDC00 && u <= 0xDFFF) return false;  // unpaired low surrogate
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') return false;
          const int32_t lo = hex4(p_ + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) return false;
          p_ += 6;
        }
        break;
      }
      default: return false;
    }
  }
}

// p_ is at a byte >= 0x80. Accepts exactly the well-formed UTF-8 sequences (Unicode table 3-7).
bool BodyScanner::validUtf8Sequence() {
  const auto* u = reinterpret_cast<const unsigned char*>(p_);
  const size_t left = static_cast<size_t>(end_ - p_);
  const unsigned c = u[0];
  auto cont = [](unsigned char b) { return (b & 0xC0) == 0x80; };
  if (c < 0xC2) return false;
  if (c < 0xE0) {
    if (left < 2 || !cont(u[1])) return false;
    p_ += 2;
    return true;
  }
  if (c < 0xF0) {
    if (left < 3) return false;
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned hi = c == 0xED ? 0x9F : 0xBF;
    if (u[1] < lo || u[1] > hi || !cont(u[2])) return false;
    p_ += 3;
    return true;
  }
  if (c < 0xF5) {
    if (left < 4) return false;
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;
    if (u[1] < lo || u[1] > hi || !cont(u[2]) || !cont(u[3])) return false;
    p_ += 4;
    return true;
  }
  return false;
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
