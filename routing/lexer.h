#pragma once
// Lexer for route conditions (routing-language.md §6).
//
// At each position the longest token any rule can produce wins; among equal lengths the rule
// listed first in §6.3 wins. Comments (`/* ... */` with a closing `*/`) are skipped only when the
// lexer is created with comments enabled (inside a WHERE condition, §6.2).
//
// Thread-safety: a Lexer is a cursor over borrowed text; use one per thread.
// Ownership: the text must outlive the Lexer and every Token it returns (tokens are offsets).
// Hot/cold: cold (runs when a manifest is loaded).
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgehub::routing {

enum class TokenKind : uint8_t {
  kEnd,
  kLBrace,
  kRBrace,
  kSelect,
  kFrom,
  kWhere,
  kInto,
  kString,
  kUnterminatedString,
  kInteger,
  kHex,
  kReal,
  kMalformedNumber,  // a real without digits before its exponent: e5, -e3 (§6.7)
  kTrue,
  kFalse,
  kNull,
  kUndefined,
  kLParen,
  kRParen,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kAnd,
  kOr,
  kNot,
  kEq,
  kNe,        // !=
  kLtGt,      // <>
  kLe,
  kGe,
  kGt,
  kLt,
  kConcat,    // ||
  kCoalesce,  // ??
  kDollarName,
  kIdent,
  kBracketRun,  // dollar-name characters containing [ or ] outside a $ name: always an error
  kInvalidChar,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  uint32_t begin = 0;  // byte offset into the lexed text
  uint32_t end = 0;    // one past the last byte
};

// Character classes of §6.3.
bool isRouteWhitespace(char c);
bool isIdentChar(char c);       // bytes >= 0x80 count as identifier characters
bool isDollarNameChar(char c);  // identifier characters plus [ and ]

class Lexer {
 public:
  Lexer(std::string_view text, size_t pos, bool comments)
      : text_(text), pos_(pos), comments_(comments) {}

  // Skips whitespace (and comments if enabled) and returns the next token; kEnd at the end.
  Token next();
  // Like next() but does not consume.
  Token peek();
  size_t position() const { return pos_; }
  void setPosition(size_t pos) { pos_ = pos; }
  // Skips whitespace (and comments if enabled) without producing a token.
  void skipSpace();

 private:
  Token scan();

  std::string_view text_;
  size_t pos_;
  bool comments_;
};

// Human-readable token description for messages: the token text, quoted, shortened if long.
std::string describeToken(std::string_view text, const Token& token);

// Decodes a STRING token (quotes included) per §6.6. On an invalid escape returns
// kInvalidArgument "invalid escape sequence '\x' in string literal" and sets *error_offset to the
// byte offset of the backslash within `text`.
core::Result<std::string> unescapeStringLiteral(std::string_view text, const Token& token,
                                                size_t* error_offset);

}  // namespace edgehub::routing
