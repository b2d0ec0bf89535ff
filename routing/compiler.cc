#include "routing/compiler.h"

#include <algorithm>
#include <limits>

#include "routing/unicode.h"

namespace edgehub::routing {

std::string_view staticTypeName(StaticType t) {
  switch (t) {
    case StaticType::kString: return "string";
    case StaticType::kNumber: return "number";
    case StaticType::kBool: return "bool";
    case StaticType::kNull: return "null";
    case StaticType::kUndefined: return "undefined";
    case StaticType::kDynamic: return "dynamic";
  }
  return "?";
}

std::string_view triStateName(TriState t) {
  switch (t) {
    case TriState::kTrue: return "true";
    case TriState::kFalse: return "false";
    case TriState::kUndefined: return "undefined";
  }
  return "?";
}

namespace {

bool isNumeric(StaticType t) { return t == StaticType::kNumber || t == StaticType::kDynamic; }
bool isStringy(StaticType t) { return t == StaticType::kString || t == StaticType::kDynamic; }
bool isLogical(StaticType t) {
  return t == StaticType::kBool || t == StaticType::kNull || t == StaticType::kUndefined ||
         t == StaticType::kDynamic;
}

// §9.1: equal, or one dynamic and the other anything but undefined.
bool compatible(StaticType a, StaticType b) {
  if (a == b) return true;
  if (a == StaticType::kDynamic) return b != StaticType::kUndefined;
  if (b == StaticType::kDynamic) return a != StaticType::kUndefined;
  return false;
}

std::string_view opText(TokenKind op) {
  switch (op) {
    case TokenKind::kEq: return "=";
    case TokenKind::kNe: return "!=";
    case TokenKind::kLtGt: return "<>";
    case TokenKind::kLt: return "<";
    case TokenKind::kLe: return "<=";
    case TokenKind::kGt: return ">";
    case TokenKind::kGe: return ">=";
    case TokenKind::kPlus: return "+";
    case TokenKind::kMinus: return "-";
    case TokenKind::kStar: return "*";
    case TokenKind::kSlash: return "/";
    case TokenKind::kPercent: return "%";
    case TokenKind::kConcat: return "||";
    case TokenKind::kAnd: return "AND";
    case TokenKind::kOr: return "OR";
    case TokenKind::kNot: return "NOT";
    case TokenKind::kCoalesce: return "??";
    default: return "?";
  }
}

struct AliasPair {
  std::string_view a;
  std::string_view b;
};
constexpr AliasPair kAliases[] = {
    {"correlationId", "cid"},
    {"expiryTimeUtc", "absolute-expiry-time"},
    {"componentName", "dt-subject"},
};

std::string aliasOf(std::string_view sys) {
  for (const auto& p : kAliases) {
    if (equalsIgnoreCase(sys, p.a)) return std::string(p.b);
    if (equalsIgnoreCase(sys, p.b)) return std::string(p.a);
  }
  return {};
}

// Concatenation by append: GCC 12 reports a false -Wrestrict on `"x" + std::string(...)`.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool parseBodyPath(std::string_view path, bool allow_indexes, std::vector<PathStep>* steps,
                   std::string* detail) {
  steps->clear();
  if (path.empty()) {
    *detail = "empty path";
    return false;
  }
  size_t i = 0;
  while (true) {
    // name
    const size_t name_begin = i;
    while (i < path.size() && path[i] != '.' && path[i] != '[' && path[i] != ']') ++i;
    const std::string_view name = path.substr(name_begin, i - name_begin);
    if (name.empty()) {
      *detail = i < path.size() && path[i] == '.' ? "empty member name in '" + std::string(path) + "'"
                : i >= path.size() ? "path ends with '.'"
                                   : "missing member name before '" + std::string(1, path[i]) + "'";
      return false;
    }
    if (allDigits(name)) {
      *detail = cat("member name '", name, "' is a number; use [", name, "] for an array index");
      return false;
    }
    if (name == "*" || name == "$") {
      *detail = cat("'", name, "' is not supported (no wildcards or root references)");
      return false;
    }
    steps->push_back(PathStep{std::string(name), -1, nameHash(name)});
    // indexes
    while (i < path.size() && path[i] == '[') {
      if (!allow_indexes) {
        *detail = "array indexes are not allowed here";
        return false;
      }
      const size_t d = i + 1;
      size_t j = d;
      while (j < path.size() && path[j] >= '0' && path[j] <= '9') ++j;
      if (j == d || j >= path.size() || path[j] != ']') {
        *detail = "an index must be a non-negative integer in brackets";
        return false;
      }
      // Leading zeros are allowed; the value must not exceed 2147483647.
      size_t k = d;
      while (k + 1 < j && path[k] == '0') ++k;
      int64_t value = 0;
      if (j - k > 10) {
        *detail = "index greater than 2147483647";
        return false;
      }
      for (; k < j; ++k) value = value * 10 + (path[k] - '0');
      if (value > std::numeric_limits<int32_t>::max()) {
        *detail = "index greater than 2147483647";
        return false;
      }
      steps->push_back(PathStep{std::string(), value, 0});
      i = j + 1;
    }
    if (i == path.size()) return true;
    if (path[i] == '.') {
      ++i;
      if (i == path.size()) {
        *detail = "path ends with '.'";
        return false;
      }
      continue;
    }
    *detail = "unexpected '" + std::string(1, path[i]) + "' in path";
    return false;
  }
}

bool ConditionBuilder::fail(uint32_t offset, std::string reason) {
  error_.offset = offset;
  error_.reason = std::move(reason);
  return false;
}

std::string ConditionBuilder::text(const Frag& f) const {
  return std::string(text_.substr(f.begin, f.end - f.begin));
}

Frag ConditionBuilder::make(StaticType t, uint32_t begin, uint32_t end, uint32_t code_begin) const {
  Frag f;
  f.type = t;
  f.begin = begin;
  f.end = end;
  f.code_begin = code_begin;
  return f;
}

void ConditionBuilder::emit(Op op, uint32_t arg, uint32_t arg2, int pops, uint8_t flags) {
  Instr in;
  in.op = op;
  in.flags = flags;
  in.arg = arg;
  in.arg2 = arg2;
  cond_.code_.push_back(in);
  depth_ += 1 - pops;
  cond_.max_stack_ = std::max<uint32_t>(cond_.max_stack_, static_cast<uint32_t>(std::max(depth_, 1)));
}

uint32_t ConditionBuilder::addConst(const Value& v) {
  cond_.consts_.push_back(v);
  return static_cast<uint32_t>(cond_.consts_.size() - 1);
}

Frag ConditionBuilder::stringLiteral(std::string value, uint32_t begin, uint32_t end) {
  auto storage = std::make_unique<std::string>(std::move(value));
  const Value v = Value::fromString(*storage);
  cond_.strings_.push_back(std::move(storage));
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  emit(Op::kConst, addConst(v), 0, 0);
  return make(StaticType::kString, begin, end, cb);
}

Frag ConditionBuilder::numberLiteral(double value, uint32_t begin, uint32_t end) {
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  emit(Op::kConst, addConst(Value::fromNumber(value)), 0, 0);
  return make(StaticType::kNumber, begin, end, cb);
}

Frag ConditionBuilder::boolLiteral(bool value, uint32_t begin, uint32_t end) {
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  emit(Op::kConst, addConst(Value::fromBool(value)), 0, 0);
  return make(StaticType::kBool, begin, end, cb);
}

Frag ConditionBuilder::nullLiteral(uint32_t begin, uint32_t end) {
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  emit(Op::kConst, addConst(Value::null()), 0, 0);
  return make(StaticType::kNull, begin, end, cb);
}

Frag ConditionBuilder::undefinedLiteral(uint32_t begin, uint32_t end) {
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  emit(Op::kConst, addConst(Value::undefined()), 0, 0);
  return make(StaticType::kUndefined, begin, end, cb);
}

Frag ConditionBuilder::appProperty(std::string_view name, uint32_t begin, uint32_t end) {
  PropRef ref;
  ref.name = std::string(name);
  ref.name_ascii = isAscii(name);
  cond_.props_.push_back(std::move(ref));
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  emit(Op::kAppProp, static_cast<uint32_t>(cond_.props_.size() - 1), 0, 0);
  return make(StaticType::kString, begin, end, cb);
}

bool ConditionBuilder::dollarName(std::string_view name, bool braces, uint32_t begin,
                                  uint32_t end, Frag* out) {
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  if (name.size() >= 6 && equalsIgnoreCase(name.substr(0, 6), "$body.")) {
    const std::string_view path = name.substr(6);
    BodyPath bp;
    std::string detail;
    if (!parseBodyPath(path, true, &bp.steps, &detail)) {
      return fail(begin, "invalid $body path: " + detail);
    }
    const bool has_brackets = path.find_first_of("[]") != std::string_view::npos;
    if (!braces && !has_brackets) bp.shadow = std::string(name);
    cond_.paths_.push_back(std::move(bp));
    cond_.uses_body_ = true;
    emit(Op::kBody, static_cast<uint32_t>(cond_.paths_.size() - 1), 0, 0);
    *out = make(StaticType::kDynamic, begin, end, cb);
    return true;
  }
  if (name.find_first_of("[]") != std::string_view::npos) {
    // §8.2: a non-body $name with brackets is statically undefined.
    emit(Op::kConst, addConst(Value::undefined()), 0, 0);
    *out = make(StaticType::kUndefined, begin, end, cb);
    return true;
  }
  PropRef ref;
  ref.name = std::string(name);
  ref.sys = std::string(name.substr(1));
  ref.alias = aliasOf(ref.sys);
  ref.name_ascii = isAscii(ref.name);
  ref.sys_ascii = isAscii(ref.sys) && isAscii(ref.alias);
  cond_.props_.push_back(std::move(ref));
  emit(braces ? Op::kSysProp : Op::kDollarProp, static_cast<uint32_t>(cond_.props_.size() - 1), 0,
       0);
  *out = make(StaticType::kString, begin, end, cb);
  return true;
}

bool ConditionBuilder::unary(TokenKind op, uint32_t op_offset, const Frag& operand, Frag* out) {
  const StaticType t = operand.type;
  if (op == TokenKind::kMinus) {
    if (!isNumeric(t)) {
      std::string reason = "invalid operand to '-': '" + std::string(staticTypeName(t)) + "'";
      if (t == StaticType::kString) {
        reason += ": application property values are strings; use - as_number(" + text(operand) +
                  ")";
      }
      return fail(operand.begin, std::move(reason));
    }
    emit(Op::kNeg, 0, 0, 1);
    *out = make(t, op_offset, operand.end, operand.code_begin);
    return true;
  }
  // NOT
  if (t == StaticType::kNull) {
    emit(Op::kNotNull, 0, 0, 1);
  } else if (t == StaticType::kBool || t == StaticType::kDynamic) {
    emit(Op::kNot, 0, 0, 1);
  } else {
    return fail(op_offset, "invalid operand to 'NOT': '" + std::string(staticTypeName(t)) + "'");
  }
  *out = make(StaticType::kBool, op_offset, operand.end, operand.code_begin);
  return true;
}

bool ConditionBuilder::binary(TokenKind op, uint32_t op_offset, const Frag& l, const Frag& r,
                              Frag* out) {
  const StaticType a = l.type;
  const StaticType b = r.type;
  const std::string ops(opText(op));
  auto operandsError = [&]() {
    return "invalid operands to '" + ops + "': '" + std::string(staticTypeName(a)) + "' and '" +
           std::string(staticTypeName(b)) + "'";
  };
  // Suggestion for a string operand meeting a number (§15.2).
  auto asNumberHint = [&]() {
    if (a == StaticType::kString) return "as_number(" + text(l) + ") " + ops + " " + text(r);
    return text(l) + " " + ops + " as_number(" + text(r) + ")";
  };
  const uint32_t string_side = a == StaticType::kString ? l.begin : r.begin;
  switch (op) {
    case TokenKind::kEq:
    case TokenKind::kNe:
    case TokenKind::kLtGt:
    case TokenKind::kLt:
    case TokenKind::kLe:
    case TokenKind::kGt:
    case TokenKind::kGe: {
      if (!compatible(a, b)) {
        if ((a == StaticType::kString && b == StaticType::kNumber) ||
            (a == StaticType::kNumber && b == StaticType::kString)) {
          return fail(string_side, "cannot compare string and number with '" + ops +
                                       "': application property values are strings; use " +
                                       asNumberHint());
        }
        return fail(op_offset, operandsError());
      }
      Op code = Op::kEq;
      switch (op) {
        case TokenKind::kEq: code = Op::kEq; break;
        case TokenKind::kNe:
        case TokenKind::kLtGt: code = Op::kNe; break;
        case TokenKind::kLt: code = Op::kLt; break;
        case TokenKind::kLe: code = Op::kLe; break;
        case TokenKind::kGt: code = Op::kGt; break;
        default: code = Op::kGe; break;
      }
      // Fuse `property = 'literal'` (either order) into one instruction: the dominant pattern.
      auto& code_vec = cond_.code_;
      const size_t n = code_vec.size();
      if ((code == Op::kEq || code == Op::kNe) && a == StaticType::kString &&
          b == StaticType::kString && n >= 2 && l.code_begin == n - 2 && r.code_begin == n - 1) {
        const Instr& x = code_vec[n - 2];
        const Instr& y = code_vec[n - 1];
        const Instr* prop = nullptr;
        const Instr* lit = nullptr;
        if (x.op == Op::kAppProp && y.op == Op::kConst) {
          prop = &x;
          lit = &y;
        } else if (x.op == Op::kConst && y.op == Op::kAppProp) {
          prop = &y;
          lit = &x;
        }
        if (prop != nullptr) {
          Instr fused;
          fused.op = code == Op::kEq ? Op::kAppPropEqConst : Op::kAppPropNeConst;
          fused.arg = prop->arg;
          fused.arg2 = lit->arg;
          code_vec.pop_back();
          code_vec.back() = fused;
          depth_ -= 1;
          *out = make(StaticType::kBool, l.begin, r.end, l.code_begin);
          return true;
        }
      }
      // Fuse `$body.path <cmp> literal` (either order; the comparison is mirrored when the
      // literal comes first): the dominant body pattern, one dispatch instead of three.
      if (n >= 2 && l.code_begin == n - 2 && r.code_begin == n - 1) {
        const Instr x = code_vec[n - 2];
        const Instr y = code_vec[n - 1];
        Op cmp = code;
        const Instr* body = nullptr;
        const Instr* lit = nullptr;
        if (x.op == Op::kBody && y.op == Op::kConst) {
          body = &x;
          lit = &y;
        } else if (x.op == Op::kConst && y.op == Op::kBody) {
          body = &y;
          lit = &x;
          switch (code) {
            case Op::kLt: cmp = Op::kGt; break;
            case Op::kLe: cmp = Op::kGe; break;
            case Op::kGt: cmp = Op::kLt; break;
            case Op::kGe: cmp = Op::kLe; break;
            default: break;
          }
        }
        if (body != nullptr) {
          Instr fused;
          fused.op = Op::kBodyCmpConst;
          fused.flags = static_cast<uint8_t>(cmp);
          fused.arg = body->arg;
          fused.arg2 = lit->arg;
          code_vec.pop_back();
          code_vec.back() = fused;
          depth_ -= 1;
          *out = make(StaticType::kBool, l.begin, r.end, l.code_begin);
          return true;
        }
      }
      emit(code, 0, 0, 2);
      *out = make(StaticType::kBool, l.begin, r.end, l.code_begin);
      return true;
    }
    case TokenKind::kPlus:
    case TokenKind::kMinus:
    case TokenKind::kStar:
    case TokenKind::kSlash:
    case TokenKind::kPercent: {
      if (!isNumeric(a) || !isNumeric(b)) {
        std::string reason = operandsError();
        const bool a_str = a == StaticType::kString;
        const bool b_str = b == StaticType::kString;
        if ((a_str && isNumeric(b)) || (b_str && isNumeric(a))) {
          reason += ": application property values are strings; use " + asNumberHint();
          return fail(string_side, std::move(reason));
        }
        return fail(isNumeric(a) ? r.begin : l.begin, std::move(reason));
      }
      Op code = Op::kAdd;
      switch (op) {
        case TokenKind::kPlus: code = Op::kAdd; break;
        case TokenKind::kMinus: code = Op::kSub; break;
        case TokenKind::kStar: code = Op::kMul; break;
        case TokenKind::kSlash: code = Op::kDiv; break;
        default: code = Op::kMod; break;
      }
      emit(code, 0, 0, 2);
      const StaticType t =
          (a == StaticType::kDynamic || b == StaticType::kDynamic) ? StaticType::kDynamic
                                                                   : StaticType::kNumber;
      *out = make(t, l.begin, r.end, l.code_begin);
      return true;
    }
    case TokenKind::kConcat: {
      if (!isStringy(a) || !isStringy(b)) {
        return fail(isStringy(a) ? r.begin : l.begin, operandsError());
      }
      emit(Op::kConcat, 2, 0, 2);
      *out = make(StaticType::kString, l.begin, r.end, l.code_begin);
      return true;
    }
    case TokenKind::kAnd:
    case TokenKind::kOr: {
      if (!isLogical(a) || !isLogical(b)) {
        return fail(isLogical(a) ? r.begin : l.begin, operandsError());
      }
      StaticType t = StaticType::kBool;
      if (op == TokenKind::kAnd) {
        if (a == StaticType::kNull || b == StaticType::kNull) {
          emit(Op::kAndNull, 0, 0, 2);
          t = StaticType::kNull;
        } else {
          emit(Op::kAnd, 0, 0, 2);
        }
      } else {
        if (a == StaticType::kNull && b == StaticType::kNull) {
          emit(Op::kOrNullBoth, 0, 0, 2);
          t = StaticType::kNull;
        } else if (a == StaticType::kNull) {
          emit(Op::kOrNullLeft, 0, 0, 2);
        } else if (b == StaticType::kNull) {
          emit(Op::kOrNullRight, 0, 0, 2);
        } else {
          emit(Op::kOr, 0, 0, 2);
        }
      }
      *out = make(t, l.begin, r.end, l.code_begin);
      return true;
    }
    case TokenKind::kCoalesce: {
      if (!compatible(a, b)) return fail(op_offset, operandsError());
      emit(Op::kCoalesce, 0, 0, 2);
      const StaticType t =
          (a == StaticType::kDynamic || b == StaticType::kDynamic) ? StaticType::kDynamic : a;
      *out = make(t, l.begin, r.end, l.code_begin);
      return true;
    }
    default:
      return fail(op_offset, "unexpected operator '" + ops + "'");
  }
}

namespace {

enum class ArgKind : uint8_t { kNum, kStr, kStrOrNum, kAny };

struct FunctionSpec {
  std::string_view name;
  Op op;
  uint8_t min_args;
  uint8_t max_args;  // 255 = variadic
  ArgKind args[3];
  StaticType result;
};

constexpr FunctionSpec kFunctions[] = {
    {"abs", Op::kAbs, 1, 1, {ArgKind::kNum}, StaticType::kNumber},
    {"exp", Op::kExp, 1, 1, {ArgKind::kNum}, StaticType::kNumber},
    {"power", Op::kPower, 2, 2, {ArgKind::kNum, ArgKind::kNum}, StaticType::kNumber},
    {"square", Op::kSquare, 1, 1, {ArgKind::kNum}, StaticType::kNumber},
    {"ceiling", Op::kCeiling, 1, 1, {ArgKind::kNum}, StaticType::kNumber},
    {"floor", Op::kFloor, 1, 1, {ArgKind::kNum}, StaticType::kNumber},
    {"sign", Op::kSign, 1, 1, {ArgKind::kNum}, StaticType::kNumber},
    {"sqrt", Op::kSqrt, 1, 1, {ArgKind::kNum}, StaticType::kNumber},
    {"as_number", Op::kAsNumber, 1, 1, {ArgKind::kStrOrNum}, StaticType::kNumber},
    {"is_bool", Op::kIsBool, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"is_defined", Op::kIsDefined, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"is_null", Op::kIsNull, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"is_number", Op::kIsNumber, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"is_string", Op::kIsString, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"is_object", Op::kIsObject, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"is_array", Op::kIsArray, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"is_primitive", Op::kIsPrimitive, 1, 1, {ArgKind::kAny}, StaticType::kBool},
    {"concat", Op::kConcat, 2, 255, {ArgKind::kStr}, StaticType::kString},
    {"length", Op::kLength, 1, 1, {ArgKind::kStr}, StaticType::kNumber},
    {"lower", Op::kLower, 1, 1, {ArgKind::kStr}, StaticType::kString},
    {"upper", Op::kUpper, 1, 1, {ArgKind::kStr}, StaticType::kString},
    {"substring", Op::kSubstring2, 2, 3, {ArgKind::kStr, ArgKind::kNum, ArgKind::kNum},
     StaticType::kString},
    {"index_of", Op::kIndexOf, 2, 2, {ArgKind::kStr, ArgKind::kStr}, StaticType::kNumber},
    {"starts_with", Op::kStartsWith, 2, 2, {ArgKind::kStr, ArgKind::kStr}, StaticType::kBool},
    {"ends_with", Op::kEndsWith, 2, 2, {ArgKind::kStr, ArgKind::kStr}, StaticType::kBool},
    {"contains", Op::kContains, 2, 2, {ArgKind::kStr, ArgKind::kStr}, StaticType::kBool},
};

bool accepts(ArgKind k, StaticType t) {
  switch (k) {
    case ArgKind::kNum: return isNumeric(t);
    case ArgKind::kStr: return isStringy(t);
    case ArgKind::kStrOrNum: return isStringy(t) || t == StaticType::kNumber;
    case ArgKind::kAny: return true;
  }
  return false;
}

}  // namespace

bool ConditionBuilder::call(std::string_view name, uint32_t name_offset, uint32_t end,
                            std::span<const Frag> args, Frag* out) {
  std::string lname;
  appendFolded(lname, name);
  const FunctionSpec* spec = nullptr;
  for (const auto& f : kFunctions) {
    if (f.name == lname) spec = &f;
  }
  if (lname == "twin_change_includes") {
    return fail(name_offset, "twin_change_includes takes a bare path such as "
                             "properties.reported.x");
  }
  if (spec == nullptr) return fail(name_offset, "unknown function '" + std::string(name) + "'");
  bool ok = args.size() >= spec->min_args && args.size() <= spec->max_args;
  for (size_t i = 0; ok && i < args.size(); ++i) {
    const ArgKind k = spec->max_args == 255 ? spec->args[0] : spec->args[i];
    ok = accepts(k, args[i].type);
  }
  if (!ok) {
    std::string sig = lname + "(";
    for (size_t i = 0; i < args.size(); ++i) {
      if (i > 0) sig += ", ";
      sig += staticTypeName(args[i].type);
    }
    sig += ")";
    return fail(name_offset, "invalid arguments to '" + lname + "': " + sig);
  }
  const uint32_t cb = args.empty() ? static_cast<uint32_t>(cond_.code_.size()) : args[0].code_begin;
  const int n = static_cast<int>(args.size());
  Op op = spec->op;
  if (op == Op::kSubstring2 && n == 3) op = Op::kSubstring3;
  if ((op == Op::kIsObject || op == Op::kIsArray || op == Op::kIsPrimitive) &&
      args[0].type != StaticType::kDynamic) {
    // §10: false for every non-dynamic static type (is_primitive('x') is false).
    op = Op::kPopPushFalse;
  }
  emit(op, static_cast<uint32_t>(n), 0, n);
  *out = make(spec->result, name_offset, end, cb);
  return true;
}

bool ConditionBuilder::twinChangeIncludes(std::string_view path, uint32_t path_offset,
                                          uint32_t begin, uint32_t end, Frag* out) {
  static constexpr std::string_view kRoots[] = {"properties.reported.", "properties.desired.",
                                                "tags."};
  bool rooted = false;
  for (auto r : kRoots) {
    if (path.size() > r.size() && equalsIgnoreCase(path.substr(0, r.size()), r)) rooted = true;
  }
  BodyPath bp;
  std::string detail;
  if (!parseBodyPath(path, false, &bp.steps, &detail)) {
    return fail(path_offset, "invalid twin_change_includes path: " + detail);
  }
  if (!rooted) {
    return fail(path_offset,
                "twin_change_includes path must start with properties.reported., "
                "properties.desired. or tags.");
  }
  const auto cb = static_cast<uint32_t>(cond_.code_.size());
  cond_.paths_.push_back(std::move(bp));
  cond_.uses_body_ = true;
  emit(Op::kTwinIncludes, static_cast<uint32_t>(cond_.paths_.size() - 1), 0, 0);
  *out = make(StaticType::kBool, begin, end, cb);
  return true;
}

namespace {

bool isComparison(Op op) { return op >= Op::kEq && op <= Op::kGe; }
bool isArithmetic(Op op) { return op >= Op::kAdd && op <= Op::kMod; }

// One body test (condition.h, BodyTest) whose code starts at code[i]; returns how many
// instructions it spans, 0 when the code there is no body test. Longer shapes are tried first
// because a lone kBody is also the start of the others.
size_t matchBodyTest(const std::vector<Instr>& code,
                     const std::vector<Value>& consts, size_t i, BodyTest* t) {
  const size_t left = code.size() - i;
  const Instr& a = code[i];
  size_t n = 0;
  if (a.op == Op::kBodyCmpConst) {
    t->kind = BodyTest::Kind::kCmp;
    t->cmp = static_cast<Op>(a.flags);
    t->path = a.arg;
    t->literal = consts[a.arg2];
    n = 1;
  } else if (a.op != Op::kBody) {
    return 0;
  } else if (left >= 5 && code[i + 1].op == Op::kConst &&
             consts[code[i + 1].arg].kind == ValueKind::kNumber && isArithmetic(code[i + 2].op) &&
             code[i + 3].op == Op::kConst && isComparison(code[i + 4].op)) {
    t->kind = BodyTest::Kind::kArithCmp;
    t->path = a.arg;
    t->arith = code[i + 2].op;
    t->operand = consts[code[i + 1].arg].number;
    t->cmp = code[i + 4].op;
    t->literal = consts[code[i + 3].arg];
    n = 5;
  } else if (left >= 2 && code[i + 1].op == Op::kIsDefined) {
    t->kind = BodyTest::Kind::kIsDefined;
    t->path = a.arg;
    n = 2;
  } else {
    t->kind = BodyTest::Kind::kTruth;
    t->path = a.arg;
    n = 1;
  }
  if (t->kind == BodyTest::Kind::kCmp) {
    if (t->literal.kind == ValueKind::kNumber) {
      t->kind = BodyTest::Kind::kNumCmp;
    } else if (t->literal.kind == ValueKind::kString && (t->cmp == Op::kEq || t->cmp == Op::kNe)) {
      t->kind = BodyTest::Kind::kStrEqNe;
    }
  }
  switch (t->cmp) {
    case Op::kEq: t->order_mask = 0b010; break;
    case Op::kNe: t->order_mask = 0b101; break;
    case Op::kLt: t->order_mask = 0b001; break;
    case Op::kLe: t->order_mask = 0b011; break;
    case Op::kGt: t->order_mask = 0b100; break;
    default: t->order_mask = 0b110; break;  // kGe
  }
  return n;
}

// The body-test form of a finished condition, if it has one (count stays 0 otherwise).
BodyTestForm bodyTestForm(const std::vector<Instr>& code,
                          const std::vector<Value>& consts, const std::vector<BodyPath>& paths,
                          StaticType result) {
  BodyTestForm form;
  if (code.empty() || (result != StaticType::kBool && result != StaticType::kDynamic)) return form;
  BodyTest first;
  const size_t n1 = matchBodyTest(code, consts, 0, &first);
  if (n1 == 0) return form;
  if (n1 == code.size()) {
    form.count = 1;
  } else {
    BodyTest second;
    const size_t n2 = n1 < code.size() ? matchBodyTest(code, consts, n1, &second) : 0;
    if (n2 == 0 || n1 + n2 + 1 != code.size()) return form;
    const Op join = code.back().op;
    if (join != Op::kAnd && join != Op::kOr) return form;
    form.count = 2;
    form.join = join;
    form.tests[1] = second;
  }
  form.tests[0] = first;
  for (uint8_t k = 0; k < form.count; ++k) {
    BodyTest& t = form.tests[k];
    t.shadowable = !paths[t.path].shadow.empty();
    form.shadowable = form.shadowable || t.shadowable;
  }
  return form;
}

}  // namespace

CompiledCondition ConditionBuilder::finish(const Frag& root) {
  cond_.result_type_ = root.type;
  cond_.body_tests_ = bodyTestForm(cond_.code_, cond_.consts_, cond_.paths_, root.type);
  cond_.always_true_ = cond_.code_.size() == 1 && cond_.code_[0].op == Op::kConst &&
                       cond_.consts_[cond_.code_[0].arg].kind == ValueKind::kBool &&
                       cond_.consts_[cond_.code_[0].arg].boolean;
  return std::move(cond_);
}

CompiledCondition ConditionBuilder::alwaysTrue() {
  ConditionBuilder b("");
  const Frag f = b.boolLiteral(true, 0, 0);
  return b.finish(f);
}

}  // namespace edgehub::routing
