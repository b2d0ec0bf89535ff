#include "routing/parser.h"

#include <gtest/gtest.h>

#include "tests/routing/test_util.h"

namespace edgehub::routing {
namespace {

using testing::routeError;

TEST(ParserTest, SourceNormalisation) {
  struct Case {
    const char* source;
    const char* prefix;
  } cases[] = {{"/*", "/"},
               {"/messages", "/messages/"},
               {"/messages/*", "/messages/"},
               {"/messages/**", "/messages/"},
               {"/messages/modules/m1/outputs/o*", "/messages/modules/m1/outputs/o/"},
               {"/messages/modules/*/outputs/o1", "/messages/modules/*/outputs/o1/"},
               {"/twinChangeNotifications", "/twinChangeNotifications/"},
               {"/messages/modules/123/outputs/1", "/messages/modules/123/outputs/1/"}};
  for (const auto& c : cases) {
    auto r = compileRoute(std::string("FROM ") + c.source + " INTO $upstream");
    ASSERT_TRUE(r.isOk()) << c.source << ": " << r.status().message();
    EXPECT_EQ(r->prefix, c.prefix) << c.source;
    EXPECT_EQ(r->source, c.source);
    EXPECT_FALSE(r->has_condition);
    EXPECT_TRUE(r->condition.alwaysTrue());
  }
}

TEST(ParserTest, Sinks) {
  auto up = compileRoute("FROM /messages/* INTO $Upstream");
  ASSERT_TRUE(up.isOk());
  EXPECT_TRUE(up->endpoint.isUpstream());
  auto m = compileRoute("FROM /* INTO brokeredendpoint('/x/m2/y/in1')");
  ASSERT_TRUE(m.isOk());
  EXPECT_EQ(m->endpoint.toString(), "BrokeredEndpoint(\"/modules/m2/inputs/in1\")");
  auto spaced = compileRoute("FROM /* INTO BrokeredEndpoint ( \" modules/m/inputs/i/ \" )");
  ASSERT_TRUE(spaced.isOk()) << spaced.status().message();
  EXPECT_EQ(spaced->endpoint, Endpoint::moduleInput("m", "i"));
  auto esc = compileRoute("FROM /* INTO BrokeredEndpoint(\"/modules/m\\u0032/inputs/in1\")");
  ASSERT_TRUE(esc.isOk());
  EXPECT_EQ(esc->endpoint.moduleId(), "m2");
}

TEST(ParserTest, StatementErrorsNameThePosition) {
  EXPECT_EQ(routeError(""), "1:1: empty route");
  EXPECT_EQ(routeError("   "), "1:4: empty route");
  EXPECT_EQ(routeError("FORM /messages/* INTO $upstream"), "1:1: expected FROM");
  EXPECT_EQ(routeError("SELECT FROM /m INTO $upstream"),
            "1:8: expected '*' after SELECT (only SELECT * is supported)");
  EXPECT_EQ(routeError("FROM INTO $upstream"), "1:6: source must start with '/'");
  EXPECT_EQ(routeError("FROM / INTO $upstream"), "1:7: empty segment in source path");
  EXPECT_EQ(routeError("FROM /messages/ INTO $upstream"), "1:16: empty segment in source path");
  EXPECT_EQ(routeError("FROM //x INTO $upstream"), "1:7: empty segment in source path");
  EXPECT_EQ(routeError("FROM /messages/*INTO $upstream"), "1:22: expected WHERE or INTO");
  EXPECT_EQ(routeError("FROM /m(x) INTO $upstream").substr(0, 29), "1:8: unexpected character '('");
  EXPECT_EQ(routeError("FROM /messages/* WHERE INTO $upstream"), "1:24: missing condition after WHERE");
  EXPECT_EQ(routeError("FROM /messages/* WHERE"), "1:23: missing condition after WHERE");
  EXPECT_EQ(routeError("FROM /m WHERE true"), "1:19: expected INTO");
  EXPECT_EQ(routeError("FROM /m WHERE true INTO"), "1:24: missing sink");
  EXPECT_EQ(routeError("FROM /m INTO $local"), "1:14: unsupported system endpoint '$local'");
  EXPECT_EQ(routeError("FROM /m INTO $upstream2"), "1:14: unsupported system endpoint '$upstream2'");
  EXPECT_EQ(routeError("FROM /m INTO f('/modules/a/inputs/b')"), "1:14: unsupported endpoint function 'f'");
  EXPECT_EQ(routeError("FROM /m INTO BrokeredEndpoint('/modules//inputs/b')"),
            "1:31: invalid BrokeredEndpoint address (expected /modules/<module>/inputs/<input>)");
  EXPECT_EQ(routeError("FROM /m INTO BrokeredEndpoint('/modules/a/inputs/')"),
            "1:31: invalid BrokeredEndpoint address (expected /modules/<module>/inputs/<input>)");
  EXPECT_EQ(routeError("FROM /m INTO BrokeredEndpoint(/modules/a/inputs/b)"),
            "1:31: expected a string literal address in BrokeredEndpoint(...)");
  EXPECT_EQ(routeError("FROM /m INTO BrokeredEndpoint('/modules/a/inputs/b'"), "1:52: expected ')'");
  EXPECT_EQ(routeError("FROM /m INTO BrokeredEndpoint"), "1:30: expected '(' after BrokeredEndpoint");
  EXPECT_EQ(routeError("FROM /m INTO BrokeredEndpoint(\"/modules/a"), "1:42: unterminated string");
  EXPECT_EQ(routeError("FROM /m INTO BrokeredEndpoint('/modules/a/inputs/in\\n1')"),
            "1:52: invalid escape sequence '\\n' in string literal");
  EXPECT_EQ(routeError("FROM /m INTO \"/modules/a/inputs/b\"").substr(0, 19), "1:14: expected a si");
}

TEST(ParserTest, TextAfterSinkIsAnError) {
  for (const char* tail : {" WHERE key1 = 'nope'", " garbage", ";", " /* c */", "()"}) {
    EXPECT_EQ(routeError(std::string("FROM /messages/* INTO $upstream") + tail),
              std::string("1:") + (tail[0] == ' ' ? "33" : "32") + ": unexpected text after sink")
        << tail;
  }
  EXPECT_EQ(routeError("FROM /m INTO $upstream   "), "ok");
}

TEST(ParserTest, ConditionSyntaxErrors) {
  const std::string p = "FROM /* WHERE ";  // the condition starts at column 15
  auto err = [&](const std::string& cond) { return routeError(p + cond + " INTO $upstream"); };
  EXPECT_EQ(err("key1 = 'value1' key2 = '3'"), "1:31: unexpected 'key2' (expected an operator or INTO)");
  EXPECT_EQ(err("(2 + 22)) = 24"), "1:23: unmatched ')'");
  EXPECT_EQ(err("as_number(key1 = 'x'"), "1:36: expected ')'");
  EXPECT_EQ(err("lower(key1,) = 'x'"), "1:26: empty argument in call to 'lower'");
  EXPECT_EQ(err("concat(,'a')"), "1:22: empty argument in call to 'concat'");
  EXPECT_EQ(err("AND true"), "1:15: unexpected 'AND'");
  EXPECT_EQ(err("()"), "1:16: unmatched ')'");
  EXPECT_EQ(err("NOT"), "1:19: expected an operand before INTO");
  EXPECT_EQ(err("@32 = 32"), "1:15: invalid character '@'");
  EXPECT_EQ(err("a = 'x' ; b"), "1:23: invalid character ';'");
  EXPECT_EQ(err("key1 = \"value1"), "1:44: unterminated string");
  EXPECT_EQ(err("e5 = 1"), "1:15: malformed number 'e5'");
  EXPECT_EQ(err("0x10000000000000000 = 1"), "1:15: hexadecimal literal has more than 16 digits");
  EXPECT_EQ(err("{key1} = 'v'"), "1:16: only a $name may appear inside braces, e.g. {$contentType}");
  EXPECT_EQ(err("{$a = 'v'"), "1:19: expected '}'");
  EXPECT_EQ(err("[1] = 1"), "1:15: unexpected '[1]': brackets are only allowed in $ names");
  EXPECT_EQ(err("Where = 'x'"), "1:15: unexpected 'Where'");
  EXPECT_EQ(err("'a\\tb' = 'x'"), "1:17: invalid escape sequence '\\t' in string literal");
  EXPECT_EQ(err("a == b"), "1:18: unexpected '='");
}

TEST(ParserTest, PositionsCountCodePointsPerLine) {
  EXPECT_EQ(routeError("FROM /* WHERE 'é' = 'é'\n AND @ INTO $upstream"), "2:6: invalid character '@'");
  EXPECT_EQ(routeError("FROM /* WHERE 'ééé' = @ INTO $upstream"), "1:23: invalid character '@'");
  EXPECT_EQ(routeError("FROM /* WHERE\ttrue AND\t@ INTO $upstream"), "1:24: invalid character '@'");
}

TEST(ParserTest, CommentsInsideConditionOnly) {
  EXPECT_EQ(routeError("FROM /messages/* WHERE key1 = 'a' /* why */ INTO $upstream"), "ok");
  EXPECT_EQ(routeError("FROM /messages/* WHERE key1 = 'a' /* INTO */ INTO $upstream"), "ok");
  EXPECT_EQ(routeError("FROM /messages/* WHERE key1 <> 'INTO' INTO $upstream"), "ok");
  // An unclosed comment is '/' followed by '*...': a syntax error, not a swallowed clause.
  EXPECT_NE(routeError("FROM /messages/* WHERE key1 = 'a' /* x INTO $upstream"), "ok");
}

TEST(ParserTest, TwinChangeIncludesPlacementAndArgument) {
  const std::string twin = "FROM /twinChangeNotifications WHERE ";
  EXPECT_EQ(routeError(twin + "twin_change_includes(properties.reported.x) INTO $upstream"), "ok");
  EXPECT_EQ(routeError(twin + "TWIN_CHANGE_INCLUDES(tags.a) INTO $upstream"), "ok");
  EXPECT_EQ(routeError("FROM /* WHERE twin_change_includes(properties.reported.x) INTO $upstream"),
            "1:15: twin_change_includes is only allowed in routes FROM /twinChangeNotifications");
  EXPECT_EQ(routeError(twin + "twin_change_includes('properties.reported.x') INTO $upstream").substr(0, 60),
            "1:58: twin_change_includes takes a bare path such as propert");
  EXPECT_EQ(routeError(twin + "twin_change_includes(reported.x) INTO $upstream"),
            "1:58: twin_change_includes path must start with properties.reported., "
            "properties.desired. or tags.");
  EXPECT_EQ(routeError(twin + "twin_change_includes(properties.reported.a, b) INTO $upstream"),
            "1:79: twin_change_includes takes a single bare path; expected ')'");
  EXPECT_EQ(routeError(twin + "twin_change_includes() INTO $upstream"),
            "1:58: twin_change_includes needs a path argument, e.g. properties.reported.x");
  EXPECT_EQ(routeError(twin + "twin_change_includes(properties.reported.a[0]) INTO $upstream"),
            "1:58: invalid twin_change_includes path: array indexes are not allowed");
  EXPECT_EQ(routeError(twin + "twin_change_includes(properties.reported.) INTO $upstream"),
            "1:58: invalid twin_change_includes path: path ends with '.'");
}

TEST(ParserTest, LimitsLongRoutesManyOperatorsDeepNesting) {
  // 4096 binary operators.
  std::string cond = "key1 = 'v'";
  for (int i = 0; i < 2048; ++i) cond += " AND key1 = 'v'";
  EXPECT_EQ(routeError("FROM /* WHERE " + cond + " INTO $upstream"), "ok");
  // A 64 KiB string literal.
  EXPECT_EQ(routeError("FROM /* WHERE key1 = '" + std::string(65536, 'x') + "' INTO $upstream"), "ok");
  // Nesting to 256 is supported, beyond the limit is an error (never a crash).
  auto nested = [](int depth) { return std::string(depth, '(') + "true" + std::string(depth, ')'); };
  EXPECT_EQ(routeError("FROM /* WHERE " + nested(256) + " INTO $upstream"), "ok");
  EXPECT_EQ(routeError("FROM /* WHERE " + nested(kMaxNestingDepth + 1) + " INTO $upstream"),
            "1:" + std::to_string(15 + kMaxNestingDepth) + ": expression nested too deeply");
  std::string nots;
  for (int i = 0; i < 10000; ++i) nots += "NOT ";
  EXPECT_NE(routeError("FROM /* WHERE " + nots + "true INTO $upstream").find("nested too deeply"),
            std::string::npos);
  std::string calls;
  for (int i = 0; i < 10000; ++i) calls += "lower(";
  EXPECT_NE(routeError("FROM /* WHERE " + calls + "'a'" + std::string(10000, ')') + " = 'a' INTO $upstream")
                .find("nested too deeply"),
            std::string::npos);
}

}  // namespace
}  // namespace edgehub::routing
