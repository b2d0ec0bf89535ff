#pragma once
// Evaluation of the body-test form of table conditions (condition.h, BodyTestForm) against the
// values of a table's body scan (BodyScanner::values). Inline because RouteTable::route runs it
// for every such route of a message straight from its route loop: at ~30 instructions a test,
// the calls through CompiledCondition::evaluate were as expensive as the test itself. The
// uncommon value kinds (a string compared with a number literal, a missing path compared with
// anything, ...) go out of line to bodyTestSlow, which applies the full §9.2 comparison.
//
// Thread-safety: pure functions of their arguments.
// Hot/cold: hot.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "routing/condition.h"
#include "routing/property_lookup.h"  // shortBytesEqual
#include "routing/value.h"

namespace edgehub::routing {

// Truth values of a test (§7.3): only kTestTrue makes a route fire.
inline constexpr uint8_t kTestFalse = 0;
inline constexpr uint8_t kTestTrue = 1;
inline constexpr uint8_t kTestUndefined = 2;

// x % y as fmod (truncated remainder, the sign of x). glibc's fmod is a slow bit loop; integral
// operands that int64 holds exactly (the usual `$body.seq % 2`) take the integer remainder,
// which is the same value; copysign keeps fmod's signed zero (-4 % 2 is -0).
inline double truncatedRemainder(double x, double y) {
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (x > -kExact && x < kExact && y > -kExact && y < kExact && y != 0) {
    const auto xi = static_cast<int64_t>(x);
    const auto yi = static_cast<int64_t>(y);
    if (static_cast<double>(xi) == x && static_cast<double>(yi) == y) {
      // A non-negative x by a power of two (`$body.seq % 2`): a mask instead of a division,
      // whose latency was a visible share of a 10-route message.
      if (xi >= 0 && yi > 0 && (yi & (yi - 1)) == 0) {
        return std::copysign(static_cast<double>(xi & (yi - 1)), x);
      }
      return std::copysign(static_cast<double>(xi % yi), x);
    }
  }
  return std::fmod(x, y);
}

// x <op> y for op in kAdd..kMod, as the stack machine computes it.
inline double arithmetic(Op op, double x, double y) {
  switch (op) {
    case Op::kAdd: return x + y;
    case Op::kSub: return x - y;
    case Op::kMul: return x * y;
    case Op::kDiv: return x / y;
    default: return truncatedRemainder(x, y);
  }
}

// The test on `v` for the kinds and value kinds that bodyTestTruth does not settle inline.
uint8_t bodyTestSlow(const BodyTest& t, const Value& v);

// One test on the recorded value `v` (the undefined value when the body cannot be queried).
// The two commonest kinds with their usual value kind (a number against a number literal, a
// string against a string literal) are compares ahead of the jump table, which cost more than
// the test itself in a route loop.
__attribute__((always_inline)) inline uint8_t bodyTestTruth(const BodyTest& t, const Value& v) {
  if (t.kind == BodyTest::Kind::kNumCmp) {
    if (v.kind == ValueKind::kNumber) {
      // Neither operand is NaN (Value never holds one), so (a > b) + (a >= b) is the order + 1.
      const double a = v.number;
      const double b = t.literal.number;
      return static_cast<uint8_t>((t.order_mask >> ((a > b) + (a >= b))) & 1);
    }
    return bodyTestSlow(t, v);
  }
  if (t.kind == BodyTest::Kind::kStrEqNe && v.kind == ValueKind::kString) {
    // Equal UTF-8 byte strings are exactly the equal code-unit strings.
    const bool eq = v.len == t.literal.len && shortBytesEqual(v.str, t.literal.str, v.len);
    return static_cast<uint8_t>((t.order_mask >> (eq ? 1 : 0)) & 1);
  }
  switch (t.kind) {
    case BodyTest::Kind::kArithCmp:
      if (v.kind == ValueKind::kNumber && t.literal.kind == ValueKind::kNumber) {
        const double a = arithmetic(t.arith, v.number, t.operand);
        const double b = t.literal.number;
        if (a != a) return kTestUndefined;  // NaN is undefined (§7.2)
        return static_cast<uint8_t>((t.order_mask >> ((a > b) + (a >= b))) & 1);
      }
      break;
    case BodyTest::Kind::kTruth:
      return v.kind == ValueKind::kBool ? (v.boolean ? kTestTrue : kTestFalse) : kTestUndefined;
    case BodyTest::Kind::kIsDefined:
      return v.kind != ValueKind::kUndefined && v.kind != ValueKind::kMissing ? kTestTrue
                                                                              : kTestFalse;
    default: break;
  }
  return bodyTestSlow(t, v);
}

// A whole form on a scan's values (EvalContext::scannedValues: all undefined when the body
// cannot be queried). AND/OR stop after a deciding first test (F, resp. T), which is exact
// because evaluation has no side effects.
__attribute__((always_inline)) inline uint8_t bodyTestFormTruth(const BodyTestForm& form,
                                                                const Value* values) {
  const BodyTest& t0 = form.tests[0];
  const uint8_t a = bodyTestTruth(t0, values[t0.slot]);
  if (form.count == 1) return a;
  const bool is_and = form.join == Op::kAnd;
  if (a == (is_and ? kTestFalse : kTestTrue)) return a;
  const BodyTest& t1 = form.tests[1];
  const uint8_t b = bodyTestTruth(t1, values[t1.slot]);
  if (is_and) {
    if (b == kTestFalse) return kTestFalse;
    return a == kTestTrue && b == kTestTrue ? kTestTrue : kTestUndefined;
  }
  if (b == kTestTrue) return kTestTrue;
  return a == kTestFalse && b == kTestFalse ? kTestFalse : kTestUndefined;
}

// Whether a route with this form fires, i.e. bodyTestFormTruth(...) == kTestTrue, without the
// three-valued combination: an AND is true exactly when both tests are, an OR when either is
// (§7.3), so a route table, which only asks whether a route fires, needs one bit per test.
__attribute__((always_inline)) inline bool bodyTestFormFires(const BodyTestForm& form,
                                                             const Value* values) {
  const BodyTest& t0 = form.tests[0];
  const bool a = bodyTestTruth(t0, values[t0.slot]) == kTestTrue;
  if (form.count == 1) return a;
  if (a != (form.join == Op::kAnd)) return a;  // F AND x, T OR x
  const BodyTest& t1 = form.tests[1];
  return bodyTestTruth(t1, values[t1.slot]) == kTestTrue;
}

}  // namespace edgehub::routing
