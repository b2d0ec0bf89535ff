#include "routing/compiler.h"

#include <gtest/gtest.h>

#include "routing/parser.h"
#include "tests/routing/test_util.h"

namespace edgehub::routing {
namespace {

using testing::evalCondition;
using testing::routeError;

std::string condError(const std::string& cond) {
  return routeError("FROM /* WHERE " + cond + " INTO $upstream");
}

TEST(CompilerTest, StringNumberComparisonSuggestsAsNumber) {
  EXPECT_EQ(routeError("SELECT * FROM /messages WHERE temp > 30 INTO $upstream"),
            "1:31: cannot compare string and number with '>': application property values are "
            "strings; use as_number(temp) > 30");
  EXPECT_EQ(condError("30 <= temp"),
            "1:21: cannot compare string and number with '<=': application property values are "
            "strings; use 30 <= as_number(temp)");
  EXPECT_EQ(condError("key2 + 3 = 4"),
            "1:15: invalid operands to '+': 'string' and 'number': application property values are "
            "strings; use as_number(key2) + 3");
  EXPECT_EQ(condError("- key1 = 1"),
            "1:17: invalid operand to '-': 'string': application property values are strings; use "
            "- as_number(key1)");
}

TEST(CompilerTest, OperandTypeErrors) {
  EXPECT_EQ(condError("'a' + 'b' = 'ab'"), "1:15: invalid operands to '+': 'string' and 'string'");
  EXPECT_EQ(condError("key1 AND true"), "1:15: invalid operands to 'AND': 'string' and 'bool'");
  EXPECT_EQ(condError("true OR key1"), "1:23: invalid operands to 'OR': 'bool' and 'string'");
  EXPECT_EQ(condError("NOT 'x'"), "1:15: invalid operand to 'NOT': 'string'");
  EXPECT_EQ(condError("NOT undefined"), "1:15: invalid operand to 'NOT': 'undefined'");
  EXPECT_EQ(condError("3 + null = 3"), "1:19: invalid operands to '+': 'number' and 'null'");
  EXPECT_EQ(condError("key1 = null"), "1:20: invalid operands to '=': 'string' and 'null'");
  EXPECT_EQ(condError("$body.a = undefined"), "1:23: invalid operands to '=': 'dynamic' and 'undefined'");
  EXPECT_EQ(condError("(key1 ?? 12.34) = 1"), "1:21: invalid operands to '?" "?': 'string' and 'number'");
  EXPECT_EQ(condError("'a' || 1"), "1:22: invalid operands to '||': 'string' and 'number'");
  EXPECT_EQ(condError("$body.x AND 'str'"), "1:27: invalid operands to 'AND': 'dynamic' and 'string'");
  EXPECT_EQ(condError("$foo[0] = 'x'"), "1:23: invalid operands to '=': 'undefined' and 'string'");
}

TEST(CompilerTest, FunctionErrors) {
  EXPECT_EQ(condError("st_distance(1, 2) = 0"), "1:15: unknown function 'st_distance'");
  EXPECT_EQ(condError("abs(key1) = 1"), "1:15: invalid arguments to 'abs': abs(string)");
  EXPECT_EQ(condError("POWER(2) = 4"), "1:15: invalid arguments to 'power': power(number)");
  EXPECT_EQ(condError("concat('a')"), "1:15: invalid arguments to 'concat': concat(string)");
  EXPECT_EQ(condError("concat() = ''"), "1:15: invalid arguments to 'concat': concat()");
  EXPECT_EQ(condError("as_number(true) = 1"), "1:15: invalid arguments to 'as_number': as_number(bool)");
  EXPECT_EQ(condError("substring('a', 'b') = 'a'"),
            "1:15: invalid arguments to 'substring': substring(string, string)");
  EXPECT_EQ(condError("is_object($body.obj, 1)"),
            "1:15: invalid arguments to 'is_object': is_object(dynamic, number)");
}

TEST(CompilerTest, BodyPathErrors) {
  EXPECT_EQ(condError("$body. = 1"), "1:15: invalid $body path: empty path");
  EXPECT_EQ(condError("$body.a..b = 1"), "1:15: invalid $body path: empty member name in 'a..b'");
  EXPECT_EQ(condError("$body.a. = 1"), "1:15: invalid $body path: path ends with '.'");
  EXPECT_EQ(condError("$body.a.0 = 1"),
            "1:15: invalid $body path: member name '0' is a number; use [0] for an array index");
  EXPECT_EQ(condError("$body.a[] = 1"),
            "1:15: invalid $body path: an index must be a non-negative integer in brackets");
  EXPECT_EQ(condError("$body.a[-1] = 1"),
            "1:15: invalid $body path: an index must be a non-negative integer in brackets");
  EXPECT_EQ(condError("$body.a[0]x = 1"), "1:15: invalid $body path: unexpected 'x' in path");
  EXPECT_EQ(condError("$body.a[0]] = 1"), "1:15: invalid $body path: unexpected ']' in path");
  EXPECT_EQ(condError("$body.* = 1"),
            "1:15: invalid $body path: '*' is not supported (no wildcards or root references)");
  EXPECT_EQ(condError("$body.a[2147483648] = 1"), "1:15: invalid $body path: index greater than 2147483647");
  EXPECT_EQ(condError("$body.a[99999999999] = 1"), "1:15: invalid $body path: index greater than 2147483647");
  EXPECT_EQ(condError("$body.a[2147483647] = 1"), "ok");
  EXPECT_EQ(condError("$body.a[0000000000001] = 1"), "ok");
}

TEST(CompilerTest, StaticResultTypes) {
  auto type = [](const std::string& cond) {
    auto r = compileRoute("FROM /* WHERE " + cond + " INTO $upstream");
    return r.isOk() ? std::string(staticTypeName(r->condition.resultType())) : "error";
  };
  EXPECT_EQ(type("key1"), "string");
  EXPECT_EQ(type("3 + 4"), "number");
  EXPECT_EQ(type("$body.x + 4"), "dynamic");
  EXPECT_EQ(type("- $body.x"), "dynamic");
  EXPECT_EQ(type("null AND true"), "null");
  EXPECT_EQ(type("null OR true"), "bool");
  EXPECT_EQ(type("null OR null"), "null");
  EXPECT_EQ(type("undefined ?? undefined"), "undefined");
  EXPECT_EQ(type("$body.x ?? 5"), "dynamic");
  EXPECT_EQ(type("$body.a || 'x'"), "string");
  EXPECT_EQ(type("$foo[0]"), "undefined");
  EXPECT_EQ(type("NOT null"), "bool");
}

TEST(CompilerTest, FusedPropertyEqualsKeepsSemantics) {
  testing::TestMessage m;
  m.prop("key1", "value1").nullProp("n");
  EXPECT_EQ(evalCondition("key1 = 'value1'", m), "true");
  EXPECT_EQ(evalCondition("'value1' = key1", m), "true");
  EXPECT_EQ(evalCondition("key1 <> 'value1'", m), "false");
  EXPECT_EQ(evalCondition("key1 != 'x'", m), "true");
  EXPECT_EQ(evalCondition("missing = 'x'", m), "undefined");
  EXPECT_EQ(evalCondition("missing <> 'x'", m), "undefined");
  EXPECT_EQ(evalCondition("n = ''", m), "undefined");
  EXPECT_EQ(evalCondition("n <> ''", m), "undefined");
  auto r = compileRoute("FROM /* WHERE key1 = 'value1' INTO $upstream");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->condition.instructionCount(), 1u);
}

}  // namespace
}  // namespace edgehub::routing
