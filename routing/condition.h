#pragma once
// CompiledCondition: a type-checked WHERE condition in executable form.
//
// Representation: a flat post-order program for a small stack machine (one switch per
// instruction, operands on a value stack held by the EvalContext). A flat program was chosen
// over a closure tree because it needs no per-node allocation, no recursion at evaluation time
// (conditions may have thousands of operators, §16), has good locality, and lets the compiler
// fuse the dominant pattern `property = 'literal'` into one instruction (see
// bench/routing/route_eval_bench.cc for the figures).
//
// Evaluation cannot fail (§15.1): every instruction is total over every run-time value.
//
// Thread-safety: immutable after compilation; evaluate() may run concurrently from many threads,
// each with its own EvalContext.
// Ownership: owns its constants; values it pushes point into itself, the message or the context.
// Hot/cold: evaluate() is hot.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "routing/message_view.h"
#include "routing/value.h"

namespace edgehub::routing {

class EvalContext;

enum class Op : uint8_t {
  kConst,          // push consts_[arg]
  kAppProp,        // push application property props_[arg] (static string)
  kDollarProp,     // $name: application property "$name", else system property (+alias)
  kSysProp,        // {$name}: system property (+alias)
  kBody,           // push body query paths_[arg]; flags & 1: check application-property shadow
  kTwinIncludes,   // twin_change_includes(paths_[arg])
  kAppPropEqConst, // fused: application property props_[arg] = consts_[arg2]
  kAppPropNeConst, // fused: application property props_[arg] <> consts_[arg2]
  kBodyCmpConst,   // fused: body query paths_[arg] <cmp> consts_[arg2]; cmp = Op(flags), kEq..kGe
  kEq, kNe, kLt, kLe, kGt, kGe,
  kAdd, kSub, kMul, kDiv, kMod, kNeg,
  kConcat,         // arg = number of operands (>= 2); null-valued properties count as empty
  kAnd, kOr, kNot,
  kAndNull,        // an operand is statically null: result null
  kOrNullLeft,     // left is statically null: result is the right operand as T/F/U
  kOrNullRight,    // right is statically null: result is the left operand as T/F/U
  kOrNullBoth,     // both statically null: null
  kNotNull,        // NOT null: true
  kCoalesce,
  kPopPushFalse,   // replace the top with false (is_* of a non-dynamic static type)
  kAbs, kExp, kPower, kSquare, kCeiling, kFloor, kSign, kSqrt,
  kAsNumber,
  kIsBool, kIsDefined, kIsNull, kIsNumber, kIsString, kIsObject, kIsArray, kIsPrimitive,
  kLength, kLower, kUpper, kSubstring2, kSubstring3, kIndexOf,
  kStartsWith, kEndsWith, kContains,
};

struct Instr {
  Op op;
  uint8_t flags = 0;
  uint32_t arg = 0;
  uint32_t arg2 = 0;
};

// A property reference resolved at compile time.
struct PropRef {
  std::string name;     // application-property name (with '$' for $name forms)
  std::string sys;      // system-property name (without '$')
  std::string alias;    // system-property alias (§12), empty if none
  bool name_ascii = true;
  bool sys_ascii = true;
};

struct PathStep {
  std::string name;    // member name; empty for an index step
  int64_t index = -1;  // >= 0 for an index step
  uint32_t hash = 0;   // nameHash(name), precomputed for the body document's root index
};

// FNV-1a over the member name bytes.
inline uint32_t nameHash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

struct BodyPath {
  std::vector<PathStep> steps;
  std::string shadow;  // application property that shadows $body.path ("$body.path"), or empty
  uint32_t slot = 0;   // node in the body plan of the owning route table (body_scan.h)
};

class BodyPlan;

// The body-test form of a condition (§11 fast path): one test, or two joined by AND / OR, each
// reading one $body path and comparing it with literals. Most table conditions have this shape
// (`$body.temperature > 30`, `$body.status = 'ok'`, `$body.alarm`, `is_defined($body.x)`,
// `$body.seq % 2 = 0`, `a AND b` of those). ConditionBuilder::finish recognises the form in the
// finished program; RouteTable binds the slots and evaluates a bound form itself, straight from
// its scan's values (body_test_eval.h): no call, no value stack, no dispatch loop per route. The
// program in code_ stays the reference semantics and still runs when the form does not apply
// (a condition outside a table, or a message with a '$' application property that might shadow
// a path). Literals are copied in (their strings live in the condition's strings_, stable).
struct BodyTest {
  enum class Kind : uint8_t {
    kNumCmp,     // path <cmp> number literal
    kStrEqNe,    // path = / <> string literal
    kCmp,        // path <cmp> any other literal (or a string literal with <, <=, >, >=)
    kArithCmp,   // (path <arith> number) <cmp> literal
    kTruth,      // path as a truth value (bool, else undefined)
    kIsDefined,  // is_defined(path)
  };
  Kind kind = Kind::kCmp;
  Op cmp = Op::kEq;     // kEq..kGe
  Op arith = Op::kAdd;  // kAdd..kMod, for kArithCmp
  // Bit o + 1 is set when `cmp` holds for the order o (-1 less, 0 equal, 1 greater): a defined
  // comparison becomes one shift instead of a switch.
  uint8_t order_mask = 0;
  bool shadowable = false;  // an application property "$body.path" could replace the value
  uint32_t path = 0;        // index into paths_
  uint32_t slot = 0;        // the path's slot in the owning table's BodyPlan (set when bound)
  Value literal;            // the compared constant (a copy of the kConst operand)
  double operand = 0;       // kArithCmp's number constant
};

struct BodyTestForm {
  uint8_t count = 0;  // 0: the condition has no body-test form; else 1 or 2 tests
  Op join = Op::kAnd;  // kAnd or kOr, for two tests
  bool shadowable = false;  // some test is shadowable
  BodyTest tests[2];
};

class CompiledCondition {
 public:
  CompiledCondition() = default;
  CompiledCondition(CompiledCondition&&) noexcept = default;
  CompiledCondition& operator=(CompiledCondition&&) noexcept = default;

  // Evaluates against a message. The context must have been started on this message
  // (EvalContext::beginMessage) so that a parsed body is shared between conditions.
  TriState evaluate(const MessageView& message, EvalContext& ctx) const;
  // Whether the route fires: only true fires (§7.4).
  bool matches(const MessageView& message, EvalContext& ctx) const {
    return evaluate(message, ctx) == TriState::kTrue;
  }

  StaticType resultType() const { return result_type_; }
  bool usesBody() const { return uses_body_; }
  bool alwaysTrue() const { return always_true_; }
  size_t instructionCount() const { return code_.size(); }
  // Whether the condition has a body-test form (BodyTestForm), taken when bound to a table.
  bool hasBodyTestForm() const { return body_tests_.count != 0; }
  const BodyTestForm& bodyTestForm() const { return body_tests_; }

 private:
  friend class ConditionBuilder;
  friend class Interpreter;
  friend class RouteTable;  // binds the body paths to its BodyPlan

  std::vector<Instr> code_;
  std::vector<Value> consts_;
  std::vector<std::unique_ptr<std::string>> strings_;  // storage of string constants (stable)
  std::vector<PropRef> props_;
  std::vector<BodyPath> paths_;
  // Set when the condition belongs to a route table: its body queries read that table's
  // one-pass scan (BodyScanner) by slot instead of the DOM (BodyDocument). Owned by the table.
  const BodyPlan* body_plan_ = nullptr;
  BodyTestForm body_tests_;  // recognised by ConditionBuilder::finish; slots bound by the table
  StaticType result_type_ = StaticType::kBool;
  uint32_t max_stack_ = 1;
  bool uses_body_ = false;
  bool always_true_ = false;
};

}  // namespace edgehub::routing
