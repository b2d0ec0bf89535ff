#include "routing/lexer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edgehub::routing {
namespace {

// Tokens of a condition as "kind:text" strings.
std::vector<std::string> lex(std::string_view text) {
  Lexer lexer(text, 0, true);
  std::vector<std::string> out;
  while (true) {
    const Token t = lexer.next();
    if (t.kind == TokenKind::kEnd) break;
    out.push_back(std::to_string(static_cast<int>(t.kind)) + ":" +
                  std::string(text.substr(t.begin, t.end - t.begin)));
    if (out.size() > 100) break;
  }
  return out;
}

std::string k(TokenKind kind, std::string_view text) {
  return std::to_string(static_cast<int>(kind)) + ":" + std::string(text);
}

TEST(LexerTest, IdentifiersSwallowOperatorCharacters) {
  for (const char* s : {"a-b", "a+b", "a*b", "a||b", "3-1", "1abc", "-a", "+5", "-$body.x", "--5",
                        "-0x10", "5.", "1.e5", "1.5.2", "&&", "!", "#5", "--", "'a'||'b'", "'on'AND"}) {
    EXPECT_EQ(lex(s), std::vector<std::string>{k(TokenKind::kIdent, s)}) << s;
  }
}

TEST(LexerTest, SignedNumbersBelongToTheLiteral) {
  EXPECT_EQ(lex("-5"), std::vector<std::string>{k(TokenKind::kInteger, "-5")});
  EXPECT_EQ(lex("-1.5"), std::vector<std::string>{k(TokenKind::kReal, "-1.5")});
  EXPECT_EQ(lex("-.5"), std::vector<std::string>{k(TokenKind::kReal, "-.5")});
  EXPECT_EQ(lex("1e5"), std::vector<std::string>{k(TokenKind::kReal, "1e5")});
  EXPECT_EQ(lex("0x1F"), std::vector<std::string>{k(TokenKind::kHex, "0x1F")});
  EXPECT_EQ(lex("3 -1"), (std::vector<std::string>{k(TokenKind::kInteger, "3"),
                                                    k(TokenKind::kInteger, "-1")}));
}

TEST(LexerTest, MalformedNumbersAreNeverIdentifiers) {
  EXPECT_EQ(lex("e5"), std::vector<std::string>{k(TokenKind::kMalformedNumber, "e5")});
  EXPECT_EQ(lex("-E+3"), std::vector<std::string>{k(TokenKind::kMalformedNumber, "-E+3")});
  EXPECT_EQ(lex("e5x"), std::vector<std::string>{k(TokenKind::kIdent, "e5x")});
}

TEST(LexerTest, OperatorsThatAreNotIdentifierCharacters) {
  EXPECT_EQ(lex("a!=b"), (std::vector<std::string>{k(TokenKind::kIdent, "a!"), k(TokenKind::kEq, "="),
                                                    k(TokenKind::kIdent, "b")}));
  EXPECT_EQ(lex("a<b"), (std::vector<std::string>{k(TokenKind::kIdent, "a"), k(TokenKind::kLt, "<"),
                                                   k(TokenKind::kIdent, "b")}));
  EXPECT_EQ(lex("a??b"), (std::vector<std::string>{k(TokenKind::kIdent, "a"),
                                                    k(TokenKind::kCoalesce, "??"),
                                                    k(TokenKind::kIdent, "b")}));
  EXPECT_EQ(lex("$body.x>5"), (std::vector<std::string>{k(TokenKind::kDollarName, "$body.x"),
                                                         k(TokenKind::kGt, ">"),
                                                         k(TokenKind::kInteger, "5")}));
  EXPECT_EQ(lex("x ||y"), (std::vector<std::string>{k(TokenKind::kIdent, "x"),
                                                     k(TokenKind::kIdent, "||y")}));
  EXPECT_EQ(lex("<> <= >="), (std::vector<std::string>{k(TokenKind::kLtGt, "<>"), k(TokenKind::kLe, "<="),
                                                        k(TokenKind::kGe, ">=")}));
}

TEST(LexerTest, KeywordsAndLiteralWords) {
  EXPECT_EQ(lex("and Or NOT"), (std::vector<std::string>{k(TokenKind::kAnd, "and"), k(TokenKind::kOr, "Or"),
                                                          k(TokenKind::kNot, "NOT")}));
  EXPECT_EQ(lex("true True"), (std::vector<std::string>{k(TokenKind::kTrue, "true"),
                                                         k(TokenKind::kIdent, "True")}));
  EXPECT_EQ(lex("into"), std::vector<std::string>{k(TokenKind::kInto, "into")});
  EXPECT_EQ(lex("intox"), std::vector<std::string>{k(TokenKind::kIdent, "intox")});
}

TEST(LexerTest, StringsAndTheQuoteTieRule) {
  EXPECT_EQ(lex("'abc'"), std::vector<std::string>{k(TokenKind::kString, "'abc'")});
  EXPECT_EQ(lex("'abc'x"), std::vector<std::string>{k(TokenKind::kIdent, "'abc'x")});
  EXPECT_EQ(lex("\"abc\"x"), (std::vector<std::string>{k(TokenKind::kString, "\"abc\""),
                                                         k(TokenKind::kIdent, "x")}));
  EXPECT_EQ(lex("\"abc"), std::vector<std::string>{k(TokenKind::kUnterminatedString, "\"abc")});
  EXPECT_EQ(lex("'it\\'s'"), std::vector<std::string>{k(TokenKind::kString, "'it\\'s'")});
}

TEST(LexerTest, CommentsOnlyWhenClosed) {
  EXPECT_EQ(lex("a /* c */ b"), (std::vector<std::string>{k(TokenKind::kIdent, "a"), k(TokenKind::kIdent, "b")}));
  EXPECT_EQ(lex("a /* c"), (std::vector<std::string>{k(TokenKind::kIdent, "a"), k(TokenKind::kSlash, "/"),
                                                      k(TokenKind::kStar, "*"), k(TokenKind::kIdent, "c")}));
  Lexer no_comments("/* c */", 0, false);
  EXPECT_EQ(no_comments.next().kind, TokenKind::kSlash);
}

TEST(LexerTest, InvalidCharactersAndBrackets) {
  EXPECT_EQ(lex("@"), std::vector<std::string>{k(TokenKind::kInvalidChar, "@")});
  EXPECT_EQ(lex(";"), std::vector<std::string>{k(TokenKind::kInvalidChar, ";")});
  EXPECT_EQ(lex("?"), std::vector<std::string>{k(TokenKind::kInvalidChar, "?")});
  EXPECT_EQ(lex("[1]"), std::vector<std::string>{k(TokenKind::kBracketRun, "[1]")});
  EXPECT_EQ(lex("$a[0]"), std::vector<std::string>{k(TokenKind::kDollarName, "$a[0]")});
  EXPECT_EQ(lex("$"), std::vector<std::string>{k(TokenKind::kIdent, "$")});
}

TEST(LexerTest, UnescapeOnePassAndSurrogates) {
  auto unescape = [](std::string_view lit) -> std::string {
    Token t{TokenKind::kString, 0, static_cast<uint32_t>(lit.size())};
    size_t off = 0;
    auto r = unescapeStringLiteral(lit, t, &off);
    return r.isOk() ? *r : "ERR@" + std::to_string(off) + " " + std::string(r.status().message());
  };
  EXPECT_EQ(unescape("'\\\\u0041'"), "\\u0041");
  EXPECT_EQ(unescape("'\\u0041\\u0042'"), "AB");
  EXPECT_EQ(unescape("'\\ud83d\\ude00'"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(unescape("'\\ud800'"), "\xED\xA0\x80");  // kept as a code unit
  EXPECT_EQ(unescape("'a\\nb'"), "ERR@2 invalid escape sequence '\\n' in string literal");
  EXPECT_EQ(unescape("'\\u12'"), "ERR@1 invalid escape sequence '\\u12' in string literal");
  EXPECT_EQ(unescape("'\\U00e9'"), "ERR@1 invalid escape sequence '\\U' in string literal");
}

}  // namespace
}  // namespace edgehub::routing
