#pragma once
// Static types and run-time values of the condition language (routing-language.md §7).
//
// Thread-safety: plain values. A Value's string points into memory owned by a compiled condition
// (constants), by the message (properties), by the evaluation context's body document or scratch
// arena; it is valid only during the evaluation that produced it.
#include <cstdint>
#include <string_view>

namespace edgehub::routing {

enum class StaticType : uint8_t { kString, kNumber, kBool, kNull, kUndefined, kDynamic };

std::string_view staticTypeName(StaticType t);

// Run-time kinds. One representation serves every static type:
//  - string: kString, kNullProp (null-valued property) or kUndefined (absent);
//  - number: kNumber (never NaN: NaN is normalised to kUndefined) or kUndefined;
//  - bool: kBool or kUndefined;
//  - null: kNull; undefined: kUndefined;
//  - dynamic: any kind; kMissing is a body path that selected nothing.
// Only kString, kNumber and kBool carry a payload; for every other kind nothing but `kind` is
// read (BodyScanner resets only the kind of its slots between messages).
enum class ValueKind : uint8_t {
  kUndefined,
  kNull,
  kMissing,
  kBool,
  kNumber,
  kString,
  kNullProp,
  kObject,
  kArray,
};

struct Value {
  ValueKind kind = ValueKind::kUndefined;
  bool boolean = false;
  uint32_t len = 0;
  double number = 0;
  const char* str = nullptr;

  std::string_view text() const { return std::string_view(str, len); }

  static Value undefined() { return Value{}; }
  static Value null() {
    Value v;
    v.kind = ValueKind::kNull;
    return v;
  }
  static Value missing() {
    Value v;
    v.kind = ValueKind::kMissing;
    return v;
  }
  static Value fromBool(bool b) {
    Value v;
    v.kind = ValueKind::kBool;
    v.boolean = b;
    return v;
  }
  // NaN becomes undefined (§7.2).
  static Value fromNumber(double d) {
    Value v;
    if (d == d) {
      v.kind = ValueKind::kNumber;
      v.number = d;
    }
    return v;
  }
  static Value fromString(std::string_view s) {
    Value v;
    v.kind = ValueKind::kString;
    v.str = s.data();
    v.len = static_cast<uint32_t>(s.size());
    return v;
  }
  static Value nullProp() {
    Value v;
    v.kind = ValueKind::kNullProp;
    return v;
  }
};

// Three-valued result of a condition as reported by tools (§7.4).
enum class TriState : uint8_t { kFalse, kTrue, kUndefined };

std::string_view triStateName(TriState t);

}  // namespace edgehub::routing
