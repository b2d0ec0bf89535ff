#include "routing/body.h"

#include <cstring>

#include "routing/body_scan.h"
#include "routing/unicode.h"

namespace edgehub::routing {

namespace {

constexpr std::string_view kLargeNumberMarker = "\xEF\xB7\x90";  // U+FDD0, a noncharacter

}  // namespace

BodyDocument::BodyDocument() = default;

bool queryBodyForTest(const MessageView& message, std::span<const BodyPath> paths,
                      std::vector<Value>* out) {
  static BodyDocument* const doc = new BodyDocument();  // never destroyed: a test hook
  out->clear();
  if (!doc->load(message)) return false;
  for (const BodyPath& p : paths) out->push_back(doc->query(p));
  return true;
}

bool BodyDocument::load(const MessageView& message) {
  has_large_numbers_ = false;
  const PropertyView* ct = findProperty(message.system_properties, "contentType", true);
  if (ct == nullptr || ct->is_null || !equalsIgnoreCaseFast(ct->value, "application/json")) return false;
  const PropertyView* ce = findProperty(message.system_properties, "contentEncoding", true);
  if (ce == nullptr || ce->is_null) return false;
  const std::span<const uint8_t> body = message.body;
  size_t length = 0;
  if (equalsIgnoreCaseFast(ce->value, "utf-8")) {
    length = body.size();
    if (buffer_.size() < length + simdjson::SIMDJSON_PADDING) {
      buffer_.resize(length + simdjson::SIMDJSON_PADDING);
    }
    if (length > 0) std::memcpy(buffer_.data(), body.data(), length);
  } else {
    const bool utf16 = equalsIgnoreCaseFast(ce->value, "utf-16");
    if (!utf16 && !equalsIgnoreCaseFast(ce->value, "utf-32")) return false;
    // Decode into buffer_ (kept as a std::string so it reuses its capacity).
    buffer_.clear();
    if (!(utf16 ? decodeUtf16le(body, buffer_) : decodeUtf32le(body, buffer_))) return false;
    length = buffer_.size();
    buffer_.resize(length + simdjson::SIMDJSON_PADDING);
  }
  std::memset(buffer_.data() + length, 0, simdjson::SIMDJSON_PADDING);
  return parseText(length);
}

bool BodyDocument::parseText(size_t length) {
  root_indexed_ = false;
  auto result = parser_.parse(reinterpret_cast<const uint8_t*>(buffer_.data()), length, false);
  if (result.error() == simdjson::NUMBER_ERROR) {
    return rewriteLargeNumbers(length);
  }
  if (result.error()) return false;
  root_ = result.value_unsafe();
  return root_.type() == simdjson::dom::element_type::OBJECT;
}

// Cold path: replaces each number simdjson cannot represent by a marker string and re-parses.
bool BodyDocument::rewriteLargeNumbers(size_t length) {
  root_indexed_ = false;
  const std::string_view text(buffer_.data(), length);
  rewritten_.clear();
  large_numbers_.clear();
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {
      const size_t start = i++;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      if (i >= text.size()) return false;
      ++i;
      rewritten_.append(text.substr(start, i - start));
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      // RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
      const size_t start = i;
      if (text[i] == '-') ++i;
      if (i >= text.size()) return false;
      if (text[i] == '0') {
        ++i;
      } else if (text[i] >= '1' && text[i] <= '9') {
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
      } else {
        return false;
      }
      bool integer = true;
      if (i < text.size() && text[i] == '.') {
        integer = false;
        const size_t d = ++i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
        if (i == d) return false;
      }
      if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        integer = false;
        ++i;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
        const size_t d = i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
        if (i == d) return false;
      }
      const std::string token(text.substr(start, i - start));
      const double value = std::strtod(token.c_str(), nullptr);
      const size_t digits = token.size() - (token[0] == '-' ? 1 : 0);
      const bool representable = integer ? digits < 19 : (value - value == 0);
      if (representable) {
        rewritten_.append(token);
      } else {
        rewritten_.push_back('"');
        rewritten_.append(kLargeNumberMarker);
        rewritten_.append(std::to_string(large_numbers_.size()));
        rewritten_.push_back('"');
        large_numbers_.push_back(value);
      }
      continue;
    }
    rewritten_.push_back(c);
    ++i;
  }
  const size_t n = rewritten_.size();
  rewritten_.append(simdjson::SIMDJSON_PADDING, '\0');
  auto result = parser_.parse(reinterpret_cast<const uint8_t*>(rewritten_.data()), n, false);
  if (result.error()) return false;
  root_ = result.value_unsafe();
  has_large_numbers_ = true;
  return root_.type() == simdjson::dom::element_type::OBJECT;
}

bool BodyDocument::select(const BodyPath& path, simdjson::dom::element* out) const {
  simdjson::dom::element cur = root_;
  size_t first = 0;
  if (!path.steps.empty() && path.steps[0].index < 0) {
    if (!root_indexed_) {
      root_fields_.clear();
      for (const auto field : simdjson::dom::object(root_.get_object().value_unsafe())) {
        root_fields_.push_back(RootField{nameHash(field.key), static_cast<uint32_t>(field.key.size()),
                                         field.key.data(), field.value});
      }
      root_indexed_ = true;
    }
    const PathStep& step = path.steps[0];
    bool found = false;
    for (size_t k = root_fields_.size(); k-- > 0;) {
      const RootField& f = root_fields_[k];
      if (f.hash == step.hash && f.len == step.name.size() &&
          std::memcmp(f.key, step.name.data(), f.len) == 0) {
        cur = f.value;
        found = true;
        break;
      }
    }
    if (!found) return false;
    first = 1;
  }
  for (size_t s = first; s < path.steps.size(); ++s) {
    const PathStep& step = path.steps[s];
    if (step.index >= 0) {
      simdjson::dom::array arr;
      if (cur.get_array().get(arr) != simdjson::SUCCESS) return false;
      if (arr.at(static_cast<size_t>(step.index)).get(cur) != simdjson::SUCCESS) return false;
    } else {
      simdjson::dom::object obj;
      if (cur.get_object().get(obj) != simdjson::SUCCESS) return false;
      // Duplicate names: the last occurrence wins (§11.1), so scan the whole object.
      bool found = false;
      simdjson::dom::element hit;
      for (const auto field : obj) {
        if (field.key == step.name) {
          hit = field.value;
          found = true;
        }
      }
      if (!found) return false;
      cur = hit;
    }
  }
  *out = cur;
  return true;
}

Value BodyDocument::toValue(simdjson::dom::element e) const {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
    case T::OBJECT: {
      Value v;
      v.kind = ValueKind::kObject;
      return v;
    }
    case T::ARRAY: {
      Value v;
      v.kind = ValueKind::kArray;
      return v;
    }
    case T::INT64: return Value::fromNumber(static_cast<double>(e.get_int64().value_unsafe()));
    case T::UINT64: return Value::fromNumber(static_cast<double>(e.get_uint64().value_unsafe()));
    case T::DOUBLE: return Value::fromNumber(e.get_double().value_unsafe());
    case T::STRING: {
      const std::string_view s = e.get_string().value_unsafe();
      if (has_large_numbers_ && s.size() > kLargeNumberMarker.size() &&
          s.substr(0, kLargeNumberMarker.size()) == kLargeNumberMarker) {
        size_t idx = 0;
        bool digits = true;
        for (char c : s.substr(kLargeNumberMarker.size())) {
          if (c < '0' || c > '9') {
            digits = false;
            break;
          }
          idx = idx * 10 + static_cast<size_t>(c - '0');
        }
        if (digits && idx < large_numbers_.size()) return Value::fromNumber(large_numbers_[idx]);
      }
      return Value::fromString(s);
    }
    case T::BOOL: return Value::fromBool(e.get_bool().value_unsafe());
    case T::NULL_VALUE: return Value::null();
  }
  return Value::undefined();
}

Value BodyDocument::query(const BodyPath& path) const {
  simdjson::dom::element e;
  if (!select(path, &e)) return Value::missing();
  return toValue(e);
}

bool BodyDocument::includes(const BodyPath& path) const {
  simdjson::dom::element e;
  return select(path, &e);
}

}  // namespace edgehub::routing
