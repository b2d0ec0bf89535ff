// The stack-machine interpreter of CompiledCondition and the EvalContext it runs in.
//
// Every instruction is total: whatever run-time kinds reach it, it produces a value (usually
// undefined for a kind it does not apply to), so evaluation cannot fail (§15.1).
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "routing/body.h"
#include "routing/body_scan.h"
#include "routing/body_test_eval.h"
#include "routing/condition.h"
#include "routing/eval_context.h"
#include "routing/unicode.h"

namespace edgehub::routing {

// ---- ScratchArena --------------------------------------------------------------------------

char* ScratchArena::allocate(size_t n) {
  if (blocks_.empty() || blocks_.back().size - used_ < n) {
    const size_t size = std::max<size_t>(n, std::max<size_t>(4096, total_));
    blocks_.push_back(Block{std::make_unique<char[]>(size), size});
    total_ += size;
    used_ = 0;
  }
  char* p = blocks_.back().data.get() + used_;
  used_ += n;
  return p;
}

void ScratchArena::reset() {
  if (blocks_.size() > 1) {
    // Keep one block as large as everything the last message needed, so that the steady state
    // uses a single block and never allocates.
    const size_t size = total_;
    blocks_.clear();
    blocks_.push_back(Block{std::make_unique<char[]>(size), size});
    total_ = size;
  }
  used_ = 0;
}

// ---- EvalContext ---------------------------------------------------------------------------

EvalContext::EvalContext() : stack_(64) {}
EvalContext::~EvalContext() = default;

void EvalContext::beginMessage(const MessageView& message) {
  message_ = &message;
  body_state_ = BodyState::kNotLoaded;
  scanned_plan_ = nullptr;
  dollar_props_ = -1;
  scratch_.reset();
}

const BodyDocument* EvalContext::body() {
  if (body_state_ == BodyState::kNotLoaded) {
    if (!body_) body_ = std::make_unique<BodyDocument>();
    if (message_ != nullptr && body_->load(*message_)) {
      body_state_ = BodyState::kLoaded;
      ++stats_.body_parses;
    } else {
      body_state_ = BodyState::kUnusable;
      ++stats_.body_failures;
    }
  }
  return body_state_ == BodyState::kLoaded ? body_.get() : nullptr;
}

const BodyScanner* EvalContext::scanBody(const BodyPlan* plan) {
  // Normally the first body query of the message; a second plan on the same message only
  // happens when conditions of different tables share one context and message.
  if (!scanner_) scanner_ = std::make_unique<BodyScanner>();
  scanned_plan_ = plan;
  scan_ok_ = message_ != nullptr && scanner_->load(*message_, *plan);
  if (scan_ok_) {
    scan_values_ = scanner_->values();
    ++stats_.body_parses;
  } else {
    // Grows to the largest plan used with this context (no allocation per message after that).
    if (undefined_.size() < plan->size()) undefined_.resize(plan->size());
    scan_values_ = undefined_.data();
    ++stats_.body_failures;
  }
  return scan_ok_ ? scanner_.get() : nullptr;
}

void EvalContext::findDollarProperty() {
  dollar_props_ = 0;
  if (message_ == nullptr) return;
  for (const PropertyView& p : message_->properties) {
    if (!p.name.empty() && p.name[0] == '$') {
      dollar_props_ = 1;
      return;
    }
  }
}

// ---- helpers ---------------------------------------------------------------------------------

namespace {

inline Value stringValue(const PropertyView* p) {
  if (p == nullptr) return Value::undefined();
  if (p->is_null) return Value::nullProp();
  return Value::fromString(p->value);
}

constexpr Value kUndefinedValue{};

// §9.2 comparison. Returns -1/0/1, or 2 for undefined.
constexpr int kUndefinedOrder = 2;

int rank(ValueKind k) {
  switch (k) {
    case ValueKind::kBool: return 1;
    case ValueKind::kNumber: return 2;
    case ValueKind::kString: return 3;
    default: return 4;  // null
  }
}

inline int compareValues(const Value& x, const Value& y) {
  ValueKind a = x.kind == ValueKind::kMissing ? ValueKind::kNull : x.kind;
  ValueKind b = y.kind == ValueKind::kMissing ? ValueKind::kNull : y.kind;
  auto undefinedKind = [](ValueKind k) {
    return k == ValueKind::kUndefined || k == ValueKind::kObject || k == ValueKind::kArray ||
           k == ValueKind::kNullProp;
  };
  if (undefinedKind(a) || undefinedKind(b)) return kUndefinedOrder;
  if (a != b) return rank(a) < rank(b) ? -1 : 1;
  switch (a) {
    case ValueKind::kBool: return x.boolean == y.boolean ? 0 : (x.boolean ? 1 : -1);
    case ValueKind::kNumber: return x.number == y.number ? 0 : (x.number < y.number ? -1 : 1);
    case ValueKind::kString: {
      const int c = compareUtf16(x.text(), y.text());
      return c == 0 ? 0 : (c < 0 ? -1 : 1);
    }
    default: return 0;  // null = null
  }
}

// The result of comparison `op` (kEq..kGe) given compareValues' order.
inline Value comparisonResult(Op op, int o) {
  if (o == kUndefinedOrder) return Value::undefined();
  switch (op) {
    case Op::kEq: return Value::fromBool(o == 0);
    case Op::kNe: return Value::fromBool(o != 0);
    case Op::kLt: return Value::fromBool(o < 0);
    case Op::kLe: return Value::fromBool(o <= 0);
    case Op::kGt: return Value::fromBool(o > 0);
    default: return Value::fromBool(o >= 0);
  }
}

// T/F/U of an AND/OR operand (§7.3): only a bool is a truth value.
enum : uint8_t { kF = 0, kT = 1, kU = 2 };
inline uint8_t truth(const Value& v) {
  return v.kind == ValueKind::kBool ? (v.boolean ? kT : kF) : kU;
}
inline Value fromTruth(uint8_t t) { return t == kU ? Value::undefined() : Value::fromBool(t == kT); }

inline bool isDefined(const Value& v) {
  return v.kind != ValueKind::kUndefined && v.kind != ValueKind::kMissing;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

double decimalToDouble(std::string_view s) {
  double d = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), d, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range) {
    const std::string copy(s);
    return std::strtod(copy.c_str(), nullptr);  // ±Infinity or a denormal/zero
  }
  return d;
}

// §10.1: .NET invariant "any" number style without the currency symbol.
Value asNumber(std::string_view s, std::string& scratch) {
  auto ws = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  if (s.empty()) return Value::undefined();
  bool negative = false;
  bool parens = false;
  bool leading_sign = false;
  if (s.front() == '(' && s.back() == ')' && s.size() >= 2) {
    parens = true;
    negative = true;
    s = s.substr(1, s.size() - 2);
  } else if (s.front() == '+' || s.front() == '-') {
    leading_sign = true;
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  // Infinity / NaN (case-insensitive), only with an optional leading sign.
  if (!parens && (equalsIgnoreCase(s, "infinity"))) {
    return Value::fromNumber(negative ? -INFINITY : INFINITY);
  }
  if (!parens && equalsIgnoreCase(s, "nan")) return Value::undefined();
  if (!parens && !leading_sign && !s.empty() && (s.back() == '+' || s.back() == '-')) {
    negative = s.back() == '-';
    s.remove_suffix(1);
  }
  // digits-part [exponent]
  scratch.clear();
  size_t i = 0;
  if (i < s.size() && isDigit(s[i])) {
    while (i < s.size() && (isDigit(s[i]) || s[i] == ',')) {
      if (s[i] != ',') scratch.push_back(s[i]);
      ++i;
    }
    if (i < s.size() && s[i] == '.') {
      scratch.push_back('.');
      ++i;
      while (i < s.size() && isDigit(s[i])) scratch.push_back(s[i++]);
    }
  } else if (i < s.size() && s[i] == '.' && i + 1 < s.size() && isDigit(s[i + 1])) {
    scratch.push_back('0');
    scratch.push_back('.');
    ++i;
    while (i < s.size() && isDigit(s[i])) scratch.push_back(s[i++]);
  } else {
    return Value::undefined();
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    scratch.push_back('e');
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) scratch.push_back(s[i++]);
    const size_t d = i;
    while (i < s.size() && isDigit(s[i])) scratch.push_back(s[i++]);
    if (i == d) return Value::undefined();
  }
  if (i != s.size()) return Value::undefined();
  if (scratch.back() == '.') scratch.pop_back();  // "5." is 5
  const double v = decimalToDouble(scratch);
  return Value::fromNumber(negative ? -v : v);
}


// Converts WTF-8 to UTF-16 code units.
void toUnits(std::string_view s, std::u16string& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    const uint32_t cp = decodeUtf8(s, i);
    if (cp >= 0x10000) {
      out.push_back(static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
}

}  // namespace

// ---- body tests ----------------------------------------------------------------------------

namespace {

// a <cmp> b for cmp in kEq..kGe (neither operand is NaN: Value never holds one).
inline bool numbersCompare(Op cmp, double a, double b) {
  switch (cmp) {
    case Op::kEq: return a == b;
    case Op::kNe: return a != b;
    case Op::kLt: return a < b;
    case Op::kLe: return a <= b;
    case Op::kGt: return a > b;
    default: return a >= b;
  }
}

// Value `x` compared with literal `k` by `cmp` (kEq..kGe), as T/F/U: the kBodyCmpConst
// instruction's result. Numbers against numbers and string (in)equality skip the kind ranking
// of compareValues and the code-unit walk (equal UTF-8 byte strings are exactly the equal
// code-unit strings).
inline uint8_t compareTruth(Op cmp, const Value& x, const Value& k) {
  if (x.kind == ValueKind::kNumber && k.kind == ValueKind::kNumber) {
    return numbersCompare(cmp, x.number, k.number) ? kT : kF;
  }
  if ((cmp == Op::kEq || cmp == Op::kNe) && x.kind == ValueKind::kString &&
      k.kind == ValueKind::kString) {
    const bool eq = x.len == k.len && shortBytesEqual(x.str, k.str, k.len);
    return eq == (cmp == Op::kEq) ? kT : kF;
  }
  return truth(comparisonResult(cmp, compareValues(x, k)));
}

inline TriState toTriState(uint8_t t) {
  return t == kT ? TriState::kTrue : (t == kF ? TriState::kFalse : TriState::kUndefined);
}

}  // namespace

uint8_t bodyTestSlow(const BodyTest& t, const Value& v) {
  switch (t.kind) {
    case BodyTest::Kind::kArithCmp: {
      const Value r = v.kind == ValueKind::kNumber
                          ? Value::fromNumber(arithmetic(t.arith, v.number, t.operand))
                          : Value::undefined();
      return compareTruth(t.cmp, r, t.literal);
    }
    case BodyTest::Kind::kTruth: return truth(v);
    case BodyTest::Kind::kIsDefined: return isDefined(v) ? kT : kF;
    default: return compareTruth(t.cmp, v, t.literal);  // every comparison kind
  }
}

// ---- Interpreter ---------------------------------------------------------------------------

class Interpreter {
 public:
  static TriState run(const CompiledCondition& c, const MessageView& m, EvalContext& ctx);

 private:
  // A table-bound condition in body-test form (see its definition).
  __attribute__((noinline)) static TriState runBodyTests(const CompiledCondition& c,
                                                         const MessageView& m, EvalContext& ctx);
  // The stack machine. Both are out of line so that run(), a dispatcher, is two tail calls and
  // neither path pays the other's register saves and stack frame.
  __attribute__((noinline)) static TriState runProgram(const CompiledCondition& c,
                                                       const MessageView& m, EvalContext& ctx);
  static Value prop(const CompiledCondition& c, const MessageView& m, Op op, uint32_t idx);
  static Value body(const CompiledCondition& c, const MessageView& m, EvalContext& ctx,
                    uint32_t idx);
  static const Value* scannedValue(const CompiledCondition& c, EvalContext& ctx, uint32_t idx);
  static Value store(EvalContext& ctx, std::string_view s) {
    char* p = ctx.scratch_.allocate(s.size() == 0 ? 1 : s.size());
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return Value::fromString(std::string_view(p, s.size()));
  }
  static Value storeUnits(EvalContext& ctx, std::u16string_view units);
  static Value callString(Op op, Value* args, EvalContext& ctx);
};

// A table-bound condition in body-test form: the tests read the scan's slots directly
// (body_test_eval.h). A message with a '$' application property, which might shadow a path
// (§8.4), takes the program instead. RouteTable::route evaluates the form itself; this serves
// evaluate() on a table's condition.
TriState Interpreter::runBodyTests(const CompiledCondition& c, const MessageView& m,
                                   EvalContext& ctx) {
  if (ctx.message_ != &m) ctx.beginMessage(m);
  const BodyTestForm& form = c.body_tests_;
  if (form.shadowable && ctx.hasDollarProperty()) return runProgram(c, m, ctx);
  return toTriState(bodyTestFormTruth(form, ctx.scannedValues(c.body_plan_)));
}

Value Interpreter::prop(const CompiledCondition& c, const MessageView& m, Op op, uint32_t idx) {
  const PropRef& r = c.props_[idx];
  if (op == Op::kAppProp) return stringValue(findProperty(m.properties, r.name, r.name_ascii));
  if (op == Op::kDollarProp) {
    const PropertyView* p = findProperty(m.properties, r.name, r.name_ascii);
    if (p != nullptr) return stringValue(p);
  }
  const PropertyView* s = findProperty(m.system_properties, r.sys, r.sys_ascii);
  if (s == nullptr && !r.alias.empty()) s = findProperty(m.system_properties, r.alias, r.sys_ascii);
  return stringValue(s);
}

Value Interpreter::body(const CompiledCondition& c, const MessageView& m, EvalContext& ctx,
                        uint32_t idx) {
  const BodyPath& path = c.paths_[idx];
  if (!path.shadow.empty() && ctx.hasDollarProperty()) {
    // §8.4: an application property named exactly "$body.path" replaces the body value.
    const PropertyView* p = findProperty(m.properties, path.shadow, isAscii(path.shadow));
    if (p != nullptr) return stringValue(p);
  }
  if (c.body_plan_ != nullptr) {
    const BodyScanner* scan = ctx.scannedBody(c.body_plan_);
    return scan == nullptr ? Value::undefined() : scan->value(path.slot);
  }
  const BodyDocument* doc = ctx.body();
  if (doc == nullptr) return Value::undefined();
  return doc->query(path);
}

// The common case of body(), inline and without copying the value: a table-bound condition
// whose path no application property can shadow. nullptr means "ask body()". The recorded value
// lives in the context's scanner, so the pointer is valid for this message.
__attribute__((always_inline)) inline const Value* Interpreter::scannedValue(
    const CompiledCondition& c, EvalContext& ctx, uint32_t idx) {
  if (c.body_plan_ == nullptr) return nullptr;
  const BodyPath& path = c.paths_[idx];
  if (!path.shadow.empty() && ctx.hasDollarProperty()) return nullptr;
  const BodyScanner* scan = ctx.scannedBody(c.body_plan_);
  return scan == nullptr ? &kUndefinedValue : &scan->value(path.slot);
}

Value Interpreter::storeUnits(EvalContext& ctx, std::u16string_view units) {
  std::string& out = ctx.text_scratch_;
  out.clear();
  for (size_t i = 0; i < units.size(); ++i) {
    uint32_t u = units[i];
    if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units.size() && units[i + 1] >= 0xDC00 &&
        units[i + 1] <= 0xDFFF) {
      u = 0x10000 + ((u - 0xD800) << 10) + (units[i + 1] - 0xDC00u);
      ++i;
    }
    appendUtf8(out, u);
  }
  return store(ctx, out);
}

Value Interpreter::callString(Op op, Value* a, EvalContext& ctx) {
  // Every string function: an absent, null-valued or non-string argument gives undefined.
  auto str = [](const Value& v) { return v.kind == ValueKind::kString; };
  switch (op) {
    case Op::kLength:
      if (!str(a[0])) return Value::undefined();
      return Value::fromNumber(static_cast<double>(utf16Length(a[0].text())));
    case Op::kLower:
    case Op::kUpper: {
      if (!str(a[0])) return Value::undefined();
      std::string& out = ctx.text_scratch_;
      out.clear();
      const std::string_view s = a[0].text();
      for (size_t i = 0; i < s.size();) {
        const auto ch = static_cast<unsigned char>(s[i]);
        if (ch < 0x80) {
          out.push_back(op == Op::kLower ? asciiLower(static_cast<char>(ch))
                                         : static_cast<char>((ch >= 'a' && ch <= 'z') ? ch - 32 : ch));
          ++i;
        } else {
          const uint32_t cp = decodeUtf8(s, i);
          appendUtf8(out, op == Op::kLower ? simpleLower(cp) : simpleUpper(cp));
        }
      }
      return store(ctx, out);
    }
    case Op::kSubstring2:
    case Op::kSubstring3: {
      const bool three = op == Op::kSubstring3;
      if (!str(a[0]) || a[1].kind != ValueKind::kNumber) return Value::undefined();
      if (three && a[2].kind != ValueKind::kNumber) return Value::undefined();
      const std::string_view s = a[0].text();
      const bool ascii = isAscii(s);
      if (!ascii) toUnits(s, ctx.units_a_);
      const double len = static_cast<double>(ascii ? s.size() : ctx.units_a_.size());
      const double start = a[1].number;
      double count;
      if (three) {
        count = a[2].number;
        if (!(start >= 0 && start < len && count >= 0 && count <= len - start)) {
          return Value::undefined();
        }
      } else {
        if (!(start >= 0 && start <= len)) return Value::undefined();
        count = len - std::trunc(start);
      }
      const auto b = static_cast<size_t>(std::trunc(start));
      auto n = static_cast<size_t>(std::trunc(count));
      const auto total = static_cast<size_t>(len);
      if (b + n > total) n = total - b;
      if (ascii) return Value::fromString(s.substr(b, n));  // a view into the operand
      return storeUnits(ctx, std::u16string_view(ctx.units_a_).substr(b, n));
    }
    case Op::kIndexOf:
    case Op::kStartsWith:
    case Op::kEndsWith:
    case Op::kContains: {
      if (!str(a[0]) || !str(a[1])) return Value::undefined();
      const std::string_view s = a[0].text();
      const std::string_view t = a[1].text();
      if (isAscii(s) && isAscii(t)) {
        switch (op) {
          case Op::kIndexOf: {
            const size_t p = s.find(t);
            return Value::fromNumber(p == std::string_view::npos ? -1.0 : static_cast<double>(p));
          }
          case Op::kStartsWith: return Value::fromBool(s.starts_with(t));
          case Op::kEndsWith: return Value::fromBool(s.ends_with(t));
          default: return Value::fromBool(s.find(t) != std::string_view::npos);
        }
      }
      toUnits(s, ctx.units_a_);
      toUnits(t, ctx.units_b_);
      const std::u16string_view su(ctx.units_a_);
      const std::u16string_view tu(ctx.units_b_);
      switch (op) {
        case Op::kIndexOf: {
          const size_t p = su.find(tu);
          return Value::fromNumber(p == std::u16string_view::npos ? -1.0 : static_cast<double>(p));
        }
        case Op::kStartsWith: return Value::fromBool(su.starts_with(tu));
        case Op::kEndsWith: return Value::fromBool(su.ends_with(tu));
        default: return Value::fromBool(su.find(tu) != std::u16string_view::npos);
      }
    }
    default: return Value::undefined();
  }
}

TriState Interpreter::run(const CompiledCondition& c, const MessageView& m, EvalContext& ctx) {
  // Only a dispatcher (two tail calls), so that neither path pays the other's stack frame.
  if (c.body_tests_.count != 0 && c.body_plan_ != nullptr) return runBodyTests(c, m, ctx);
  return runProgram(c, m, ctx);
}

TriState Interpreter::runProgram(const CompiledCondition& c, const MessageView& m,
                                 EvalContext& ctx) {
  // A context used without beginMessage() (or for another message) starts over, so a stale body
  // can never be consulted.
  if (ctx.message_ != &m) ctx.beginMessage(m);
  if (c.code_.size() == 1 &&
      (c.code_[0].op == Op::kAppPropEqConst || c.code_[0].op == Op::kAppPropNeConst)) {
    // The most common condition of all, `property = 'literal'`: no stack needed.
    const Instr& in = c.code_[0];
    const PropRef& r = c.props_[in.arg];
    const PropertyView* p = findProperty(m.properties, r.name, r.name_ascii);
    if (p == nullptr || p->is_null) return TriState::kUndefined;
    const Value& k = c.consts_[in.arg2];
    const bool eq = p->value.size() == k.len && shortBytesEqual(p->value.data(), k.str, k.len);
    return eq == (in.op == Op::kAppPropEqConst) ? TriState::kTrue : TriState::kFalse;
  }
  if (c.code_.size() == 1 && c.code_[0].op == Op::kBodyCmpConst) {
    // The most common body condition, `$body.path <cmp> literal`: no stack needed.
    const Instr& in = c.code_[0];
    const Op cmp = static_cast<Op>(in.flags);
    const Value& k = c.consts_[in.arg2];
    const Value* const recorded = scannedValue(c, ctx, in.arg);
    // compareTruth: numbers and string (in)equality without the kind ranking of compareValues.
    if (recorded != nullptr) return toTriState(compareTruth(cmp, *recorded, k));
    return toTriState(compareTruth(cmp, body(c, m, ctx, in.arg), k));
  }
  if (ctx.stack_.size() < c.max_stack_ + 1) ctx.stack_.resize(c.max_stack_ + 1);
  Value* const base = ctx.stack_.data();
  Value* sp = base;  // points one past the top
  const Instr* ip = c.code_.data();
  const Instr* const end = ip + c.code_.size();
  auto number1 = [](Value* v, double (*f)(double)) {
    *v = v->kind == ValueKind::kNumber ? Value::fromNumber(f(v->number)) : Value::undefined();
  };
  for (; ip != end; ++ip) {
    switch (ip->op) {
      case Op::kConst: *sp++ = c.consts_[ip->arg]; break;
      case Op::kAppProp:
      case Op::kDollarProp:
      case Op::kSysProp: *sp++ = prop(c, m, ip->op, ip->arg); break;
      case Op::kBody: {
        const Value* const recorded = scannedValue(c, ctx, ip->arg);
        *sp++ = recorded != nullptr ? *recorded : body(c, m, ctx, ip->arg);
        break;
      }
      case Op::kTwinIncludes: {
        if (c.body_plan_ != nullptr) {
          const BodyScanner* scan = ctx.scannedBody(c.body_plan_);
          *sp++ = scan == nullptr ? Value::undefined()
                                  : Value::fromBool(scan->value(c.paths_[ip->arg].slot).kind !=
                                                    ValueKind::kMissing);
          break;
        }
        const BodyDocument* doc = ctx.body();
        *sp++ = doc == nullptr ? Value::undefined()
                               : Value::fromBool(doc->includes(c.paths_[ip->arg]));
        break;
      }
      case Op::kAppPropEqConst:
      case Op::kAppPropNeConst: {
        const PropRef& r = c.props_[ip->arg];
        const PropertyView* p = findProperty(m.properties, r.name, r.name_ascii);
        if (p == nullptr || p->is_null) {
          *sp++ = Value::undefined();
        } else {
          const Value& k = c.consts_[ip->arg2];
          const bool eq =
              p->value.size() == k.len && shortBytesEqual(p->value.data(), k.str, k.len);
          *sp++ = Value::fromBool(ip->op == Op::kAppPropEqConst ? eq : !eq);
        }
        break;
      }
      case Op::kBodyCmpConst: {
        const Value* const recorded = scannedValue(c, ctx, ip->arg);
        const Value v = recorded != nullptr ? *recorded : body(c, m, ctx, ip->arg);
        *sp++ = comparisonResult(static_cast<Op>(ip->flags), compareValues(v, c.consts_[ip->arg2]));
        break;
      }
      case Op::kEq:
      case Op::kNe:
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        --sp;
        sp[-1] = comparisonResult(ip->op, compareValues(sp[-1], sp[0]));
        break;
      }
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod: {
        --sp;
        const Value& x = sp[-1];
        const Value& y = sp[0];
        if (x.kind != ValueKind::kNumber || y.kind != ValueKind::kNumber) {
          sp[-1] = Value::undefined();
          break;
        }
        double r = 0;
        switch (ip->op) {
          case Op::kAdd: r = x.number + y.number; break;
          case Op::kSub: r = x.number - y.number; break;
          case Op::kMul: r = x.number * y.number; break;
          case Op::kDiv: r = x.number / y.number; break;
          default: r = truncatedRemainder(x.number, y.number); break;
        }
        sp[-1] = Value::fromNumber(r);
        break;
      }
      case Op::kNeg:
        sp[-1] = sp[-1].kind == ValueKind::kNumber ? Value::fromNumber(-sp[-1].number)
                                                   : Value::undefined();
        break;
      case Op::kConcat: {
        const uint32_t n = ip->arg;
        Value* args = sp - n;
        size_t total = 0;
        bool ok = true;
        for (uint32_t i = 0; i < n; ++i) {
          if (args[i].kind == ValueKind::kString) {
            total += args[i].len;
          } else if (args[i].kind != ValueKind::kNullProp) {
            ok = false;  // absent, or a dynamic value that is not a string
          }
        }
        Value r = Value::undefined();
        if (ok) {
          char* p = ctx.scratch_.allocate(total == 0 ? 1 : total);
          size_t at = 0;
          for (uint32_t i = 0; i < n; ++i) {
            if (args[i].kind == ValueKind::kString && args[i].len > 0) {
              std::memcpy(p + at, args[i].str, args[i].len);
              at += args[i].len;
            }
          }
          r = Value::fromString(std::string_view(p, total));
        }
        sp = args;
        *sp++ = r;
        break;
      }
      case Op::kAnd: {
        --sp;
        const uint8_t x = truth(sp[-1]);
        const uint8_t y = truth(sp[0]);
        sp[-1] = fromTruth((x == kF || y == kF) ? kF : (x == kT && y == kT) ? kT : kU);
        break;
      }
      case Op::kOr: {
        --sp;
        const uint8_t x = truth(sp[-1]);
        const uint8_t y = truth(sp[0]);
        sp[-1] = fromTruth((x == kT || y == kT) ? kT : (x == kF && y == kF) ? kF : kU);
        break;
      }
      case Op::kNot: {
        const uint8_t x = truth(sp[-1]);
        sp[-1] = fromTruth(x == kU ? kU : (x == kT ? kF : kT));
        break;
      }
      case Op::kAndNull:
      case Op::kOrNullBoth:
        --sp;
        sp[-1] = Value::null();
        break;
      case Op::kOrNullLeft:
        --sp;
        sp[-1] = fromTruth(truth(sp[0]));
        break;
      case Op::kOrNullRight:
        --sp;
        sp[-1] = fromTruth(truth(sp[-1]));
        break;
      case Op::kNotNull: sp[-1] = Value::fromBool(true); break;
      case Op::kCoalesce:
        --sp;
        if (!isDefined(sp[-1])) sp[-1] = sp[0];
        break;
      case Op::kPopPushFalse: sp[-1] = Value::fromBool(false); break;
      case Op::kAbs: number1(sp - 1, [](double x) { return std::fabs(x); }); break;
      case Op::kExp: number1(sp - 1, [](double x) { return std::exp(x); }); break;
      case Op::kSquare: number1(sp - 1, [](double x) { return x * x; }); break;
      case Op::kCeiling: number1(sp - 1, [](double x) { return std::ceil(x); }); break;
      case Op::kFloor: number1(sp - 1, [](double x) { return std::floor(x); }); break;
      case Op::kSign:
        number1(sp - 1, [](double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); });
        break;
      case Op::kSqrt: number1(sp - 1, [](double x) { return std::sqrt(x); }); break;
      case Op::kPower: {
        --sp;
        sp[-1] = (sp[-1].kind == ValueKind::kNumber && sp[0].kind == ValueKind::kNumber)
                     ? Value::fromNumber(std::pow(sp[-1].number, sp[0].number))
                     : Value::undefined();
        break;
      }
      case Op::kAsNumber: {
        Value& v = sp[-1];
        if (v.kind == ValueKind::kString) {
          v = asNumber(v.text(), ctx.text_scratch_);
        } else if (v.kind != ValueKind::kNumber) {
          v = Value::undefined();
        }
        break;
      }
      case Op::kIsBool: sp[-1] = Value::fromBool(sp[-1].kind == ValueKind::kBool); break;
      case Op::kIsDefined: sp[-1] = Value::fromBool(isDefined(sp[-1])); break;
      case Op::kIsNull:
        sp[-1] = Value::fromBool(sp[-1].kind == ValueKind::kNull ||
                                 sp[-1].kind == ValueKind::kNullProp);
        break;
      case Op::kIsNumber:
        sp[-1] = Value::fromBool(sp[-1].kind == ValueKind::kNumber && std::isfinite(sp[-1].number));
        break;
      case Op::kIsString: sp[-1] = Value::fromBool(sp[-1].kind == ValueKind::kString); break;
      case Op::kIsObject: sp[-1] = Value::fromBool(sp[-1].kind == ValueKind::kObject); break;
      case Op::kIsArray: sp[-1] = Value::fromBool(sp[-1].kind == ValueKind::kArray); break;
      case Op::kIsPrimitive: {
        const ValueKind k = sp[-1].kind;
        sp[-1] = Value::fromBool(k == ValueKind::kBool || k == ValueKind::kNumber ||
                                 k == ValueKind::kString || k == ValueKind::kNull);
        break;
      }
      case Op::kLength:
      case Op::kLower:
      case Op::kUpper:
      case Op::kSubstring2:
      case Op::kSubstring3:
      case Op::kIndexOf:
      case Op::kStartsWith:
      case Op::kEndsWith:
      case Op::kContains: {
        const uint32_t n = ip->arg;
        Value* args = sp - n;
        const Value r = callString(ip->op, args, ctx);
        sp = args;
        *sp++ = r;
        break;
      }
    }
  }
  const Value& v = sp[-1];
  switch (c.result_type_) {
    case StaticType::kBool:
    case StaticType::kDynamic:
      return v.kind == ValueKind::kBool ? (v.boolean ? TriState::kTrue : TriState::kFalse)
                                        : TriState::kUndefined;
    case StaticType::kNull: return TriState::kFalse;
    default: return TriState::kUndefined;
  }
}

TriState CompiledCondition::evaluate(const MessageView& message, EvalContext& ctx) const {
  return Interpreter::run(*this, message, ctx);
}

}  // namespace edgehub::routing
