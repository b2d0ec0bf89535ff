#include "routing/eval_context.h"

#include <gtest/gtest.h>

#include "tests/routing/test_util.h"

namespace edgehub::routing {
namespace {

using testing::evalCondition;
using testing::TestMessage;

TEST(EvaluatorTest, NullValuedProperties) {
  TestMessage m;
  m.nullProp("n").prop("a", "x");
  EXPECT_EQ(evalCondition("is_defined(n)", m), "true");
  EXPECT_EQ(evalCondition("is_null(n)", m), "true");
  EXPECT_EQ(evalCondition("is_string(n)", m), "false");
  EXPECT_EQ(evalCondition("is_null(missing)", m), "false");
  EXPECT_EQ(evalCondition("n = 'x'", m), "undefined");
  EXPECT_EQ(evalCondition("n < a", m), "undefined");
  EXPECT_EQ(evalCondition("('a' || n || 'd') = 'ad'", m), "true");
  EXPECT_EQ(evalCondition("concat(n, a) = 'x'", m), "true");
  EXPECT_EQ(evalCondition("is_defined(length(n))", m), "false");
  EXPECT_EQ(evalCondition("is_defined(as_number(n))", m), "false");
  EXPECT_EQ(evalCondition("(n ?? 'd') = 'd'", m), "undefined");  // n is defined, so n; n = 'd' undefined
  EXPECT_EQ(evalCondition("is_null(n ?? 'd')", m), "true");
}

TEST(EvaluatorTest, CaseInsensitiveLookupPrefersExactCase) {
  TestMessage m;
  m.prop("Key", "A").prop("key", "B").prop("ÉTÉ", "summer");
  EXPECT_EQ(evalCondition("key = 'B'", m), "true");
  EXPECT_EQ(evalCondition("Key = 'A'", m), "true");
  EXPECT_EQ(evalCondition("KEY = 'A'", m), "true");  // first in message order
  EXPECT_EQ(evalCondition("été = 'summer'", m), "true");
}

TEST(EvaluatorTest, DollarNamesAndAliases) {
  TestMessage m;
  m.prop("$correlationId", "app").sys("cid", "c-1").sys("dt-subject", "comp").sys("expiryTimeUtc", "t");
  EXPECT_EQ(evalCondition("$correlationId = 'app'", m), "true");
  EXPECT_EQ(evalCondition("{$correlationId} = 'c-1'", m), "true");
  EXPECT_EQ(evalCondition("$cid = 'c-1'", m), "true");
  EXPECT_EQ(evalCondition("$componentName = 'comp'", m), "true");
  EXPECT_EQ(evalCondition("$absolute-expiry-time = 't'", m), "true");
  EXPECT_EQ(evalCondition("is_defined($connectionAuthMethod)", m), "false");
}

TEST(EvaluatorTest, Utf16OrderingAndLengths) {
  EXPECT_EQ(evalCondition("'\\ue000' > '\\ud83d\\ude00'"), "true");
  EXPECT_EQ(evalCondition("'\\uffff' > '😀'"), "true");
  EXPECT_EQ(evalCondition("'B' < 'a'"), "true");
  EXPECT_EQ(evalCondition("length('😀') = 2"), "true");
  EXPECT_EQ(evalCondition("index_of('a😀b', 'b') = 3"), "true");
  EXPECT_EQ(evalCondition("substring('a😀b', 1, 2) = '😀'"), "true");
  EXPECT_EQ(evalCondition("substring('héllo', 1) = 'éllo'"), "true");
  EXPECT_EQ(evalCondition("upper('héllo') = 'HÉLLO'"), "true");
  EXPECT_EQ(evalCondition("lower('ΑΒΓ') = 'αβγ'"), "true");
  EXPECT_EQ(evalCondition("upper('ß') = 'ß'"), "true");
  EXPECT_EQ(evalCondition("contains('x😀y', '😀')"), "true");
  EXPECT_EQ(evalCondition("ends_with('x😀', '\\ude00')"), "true");
}

TEST(EvaluatorTest, AsNumberGrammar) {
  EXPECT_EQ(evalCondition("as_number('1,000.25') = 1000.25"), "true");
  EXPECT_EQ(evalCondition("as_number('-Infinity') < 0"), "true");
  EXPECT_EQ(evalCondition("is_defined(as_number('+5-'))"), "false");
  EXPECT_EQ(evalCondition("as_number('.5') = 0.5"), "true");
  EXPECT_EQ(evalCondition("as_number(' \\u0009 7 ') = 7"), "true");  // tab trimmed
  EXPECT_EQ(evalCondition("is_defined(as_number('1e'))"), "false");
  EXPECT_EQ(evalCondition("as_number('1e-400') = 0"), "true");
}

TEST(EvaluatorTest, ArithmeticEdgeCases) {
  EXPECT_EQ(evalCondition("-7 % 3 = -1"), "true");
  EXPECT_EQ(evalCondition("5 % (1/0) = 5"), "true");
  EXPECT_EQ(evalCondition("is_defined(0/0)"), "false");
  EXPECT_EQ(evalCondition("-0 = 0"), "true");
  EXPECT_EQ(evalCondition("sign(-3/0) = -1"), "true");
}

TEST(EvaluatorTest, ContextIsReusableAcrossMessagesAndConditions) {
  auto r = compileRoute("FROM /* WHERE lower(key1) || concat($body.s, '!') = 'abcxy!' INTO $upstream");
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EvalContext ctx;
  for (int i = 0; i < 1000; ++i) {
    TestMessage m;
    m.prop("key1", "ABC").json(i % 2 ? "{\"s\":\"xy\"}" : "{\"s\":\"zz\"}");
    const MessageView v = m.view();
    ctx.beginMessage(v);
    EXPECT_EQ(r->condition.evaluate(v, ctx), i % 2 ? TriState::kTrue : TriState::kFalse);
  }
  EXPECT_EQ(ctx.stats().body_parses, 1000u);
}

TEST(EvaluatorTest, BodyParsedOncePerMessage) {
  auto a = compileRoute("FROM /* WHERE $body.a = 1 INTO $upstream");
  auto b = compileRoute("FROM /* WHERE $body.b = 2 INTO $upstream");
  ASSERT_TRUE(a.isOk() && b.isOk());
  TestMessage m;
  m.json("{\"a\":1,\"b\":2}");
  const MessageView v = m.view();
  EvalContext ctx;
  ctx.beginMessage(v);
  EXPECT_TRUE(a->condition.matches(v, ctx));
  EXPECT_TRUE(b->condition.matches(v, ctx));
  EXPECT_EQ(ctx.stats().body_parses, 1u);
}

// `%` is fmod; integral operands take an integer fast path that must give the same value,
// including fmod's signed zero (observable through division: 1 / -0 is -Infinity).
TEST(EvaluatorTest, ModuloMatchesFmod) {
  TestMessage m;
  m.prop("a", "-7").prop("b", "3").prop("c", "-4").prop("d", "2").prop("e", "7.5").prop("f", "-3");
  EXPECT_EQ(evalCondition("as_number(a) % as_number(b) = -1", m), "true");
  EXPECT_EQ(evalCondition("as_number(b) % as_number(f) = 0", m), "true");
  EXPECT_EQ(evalCondition("1 / (as_number(c) % as_number(d)) < 0", m), "true");
  EXPECT_EQ(evalCondition("1 / (as_number(d) % as_number(c)) > 0", m), "true");
  EXPECT_EQ(evalCondition("as_number(e) % as_number(d) = 1.5", m), "true");
  EXPECT_EQ(evalCondition("as_number(a) % as_number(f) = -1", m), "true");
  EXPECT_EQ(evalCondition("is_defined(as_number(a) % 0)", m), "false");
  EXPECT_EQ(evalCondition("1e300 % as_number(d) = 0", m), "true");
}

}  // namespace
}  // namespace edgehub::routing
