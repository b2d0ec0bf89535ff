#include "routing/lexer.h"

#include <algorithm>
#include <cstring>

#include "routing/unicode.h"

namespace edgehub::routing {

bool isRouteWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool isIdentChar(char c) {
  switch (c) {
    case ' ': case '\t': case '\r': case '\n':
    case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':':
    case '\\': case '"': case '/': case '[': case ']': case '?': case '=': case '{': case '}':
      return false;
    default:
      return true;
  }
}

bool isDollarNameChar(char c) { return c == '[' || c == ']' || isIdentChar(c); }

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isHexDigit(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool startsWithIgnoreCase(std::string_view s, size_t pos, std::string_view word) {
  if (s.size() - pos < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (asciiLower(s[pos + i]) != word[i]) return false;
  }
  return true;
}

bool startsWith(std::string_view s, size_t pos, std::string_view word) {
  return s.size() - pos >= word.size() && s.substr(pos, word.size()) == word;
}

// Length of the longest match of -?[0-9]+ at pos (0 if none).
size_t matchDecimal(std::string_view s, size_t pos) {
  size_t i = pos;
  if (i < s.size() && s[i] == '-') ++i;
  const size_t digits = i;
  while (i < s.size() && isDigit(s[i])) ++i;
  return i > digits ? i - pos : 0;
}

size_t matchHex(std::string_view s, size_t pos) {
  if (s.size() - pos < 3 || s[pos] != '0' || (s[pos + 1] != 'x' && s[pos + 1] != 'X')) return 0;
  size_t i = pos + 2;
  while (i < s.size() && isHexDigit(s[i])) ++i;
  return i > pos + 2 ? i - pos : 0;
}

// Longest match of [eE][+-]?[0-9]+ at i; returns the end or npos.
size_t matchExponent(std::string_view s, size_t i) {
  if (i >= s.size() || (s[i] != 'e' && s[i] != 'E')) return std::string_view::npos;
  ++i;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t d = i;
  while (i < s.size() && isDigit(s[i])) ++i;
  return i > d ? i : std::string_view::npos;
}

// Longest match of the real rule; *malformed is set when the match has no digit before its
// exponent (e5, -E+3).
size_t matchReal(std::string_view s, size_t pos, bool* malformed) {
  *malformed = false;
  size_t i = pos;
  if (i < s.size() && s[i] == '-') ++i;
  const size_t int_begin = i;
  while (i < s.size() && isDigit(s[i])) ++i;
  const size_t int_digits = i - int_begin;
  size_t best = 0;
  // Form 1: [0-9]* . [0-9]+ exponent?
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    const size_t f = j;
    while (j < s.size() && isDigit(s[j])) ++j;
    if (j > f) {
      const size_t e = matchExponent(s, j);
      best = (e != std::string_view::npos ? e : j) - pos;
    }
  }
  // Form 2: [0-9]* exponent
  const size_t e = matchExponent(s, i);
  if (e != std::string_view::npos && e - pos > best) {
    best = e - pos;
    *malformed = int_digits == 0;
  }
  return best;
}

// Length of a complete quoted literal at pos, or 0 if it has no closing quote.
size_t matchString(std::string_view s, size_t pos) {
  const char q = s[pos];
  size_t i = pos + 1;
  while (i < s.size()) {
    if (s[i] == '\\') {
      i += 2;
      continue;
    }
    if (s[i] == q) return i + 1 - pos;
    ++i;
  }
  return 0;
}

}  // namespace

void Lexer::skipSpace() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (isRouteWhitespace(c)) {
      ++pos_;
      continue;
    }
    if (comments_ && c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '*') {
      const size_t close = text_.find("*/", pos_ + 2);
      if (close != std::string_view::npos) {
        pos_ = close + 2;
        continue;
      }
    }
    break;
  }
}

Token Lexer::peek() {
  const size_t saved = pos_;
  Token t = next();
  pos_ = saved;
  return t;
}

Token Lexer::next() {
  skipSpace();
  Token t = scan();
  pos_ = t.end;
  return t;
}

Token Lexer::scan() {
  const std::string_view s = text_;
  const size_t p = pos_;
  if (p >= s.size()) return Token{TokenKind::kEnd, static_cast<uint32_t>(p), static_cast<uint32_t>(p)};

  // Candidate (kind, length); the first listed wins ties, so only strictly longer ones replace.
  TokenKind best_kind = TokenKind::kInvalidChar;
  size_t best_len = 0;
  auto offer = [&](TokenKind k, size_t len) {
    if (len > best_len) {
      best_kind = k;
      best_len = len;
    }
  };

  const char c = s[p];
  size_t ident_len = 0;
  while (p + ident_len < s.size() && isIdentChar(s[p + ident_len])) ++ident_len;

  // 1. braces
  if (c == '{') offer(TokenKind::kLBrace, 1);
  if (c == '}') offer(TokenKind::kRBrace, 1);
  // 2. SELECT FROM WHERE INTO
  static constexpr struct {
    std::string_view word;
    TokenKind kind;
  } kKeywords1[] = {{"select", TokenKind::kSelect},
                    {"from", TokenKind::kFrom},
                    {"where", TokenKind::kWhere},
                    {"into", TokenKind::kInto}};
  for (const auto& kw : kKeywords1) {
    if (startsWithIgnoreCase(s, p, kw.word)) offer(kw.kind, kw.word.size());
  }
  // 3. STRING
  bool unterminated = false;
  if (c == '\'' || c == '"') {
    const size_t len = matchString(s, p);
    if (len > 0) {
      offer(TokenKind::kString, len);
    } else {
      unterminated = true;
    }
  }
  // 4-6. numbers
  offer(TokenKind::kInteger, matchDecimal(s, p));
  offer(TokenKind::kHex, matchHex(s, p));
  bool malformed = false;
  const size_t real_len = matchReal(s, p, &malformed);
  offer(malformed ? TokenKind::kMalformedNumber : TokenKind::kReal, real_len);
  // 7. literal words (lowercase only)
  static constexpr struct {
    std::string_view word;
    TokenKind kind;
  } kLiterals[] = {{"true", TokenKind::kTrue},
                   {"false", TokenKind::kFalse},
                   {"null", TokenKind::kNull},
                   {"undefined", TokenKind::kUndefined}};
  for (const auto& lit : kLiterals) {
    if (startsWith(s, p, lit.word)) offer(lit.kind, lit.word.size());
  }
  // 8. single-character operators
  switch (c) {
    case '(': offer(TokenKind::kLParen, 1); break;
    case ')': offer(TokenKind::kRParen, 1); break;
    case ',': offer(TokenKind::kComma, 1); break;
    case '+': offer(TokenKind::kPlus, 1); break;
    case '-': offer(TokenKind::kMinus, 1); break;
    case '*': offer(TokenKind::kStar, 1); break;
    case '/': offer(TokenKind::kSlash, 1); break;
    case '%': offer(TokenKind::kPercent, 1); break;
    default: break;
  }
  // 9. AND OR NOT
  if (startsWithIgnoreCase(s, p, "and")) offer(TokenKind::kAnd, 3);
  if (startsWithIgnoreCase(s, p, "or")) offer(TokenKind::kOr, 2);
  if (startsWithIgnoreCase(s, p, "not")) offer(TokenKind::kNot, 3);
  // 10. comparison and other operators
  static constexpr struct {
    std::string_view text;
    TokenKind kind;
  } kOps[] = {{"!=", TokenKind::kNe}, {"<>", TokenKind::kLtGt}, {"<=", TokenKind::kLe},
              {">=", TokenKind::kGe}, {"=", TokenKind::kEq},    {">", TokenKind::kGt},
              {"<", TokenKind::kLt},  {"||", TokenKind::kConcat}, {"??", TokenKind::kCoalesce}};
  for (const auto& op : kOps) {
    if (startsWith(s, p, op.text)) offer(op.kind, op.text.size());
  }
  // 11. DOLLAR_NAME
  size_t dollar_len = 0;
  while (p + dollar_len < s.size() && isDollarNameChar(s[p + dollar_len])) ++dollar_len;
  if (c == '$' && dollar_len > 1) offer(TokenKind::kDollarName, dollar_len);
  // 12. IDENT
  offer(TokenKind::kIdent, ident_len);
  // 13. bracketed run
  offer(TokenKind::kBracketRun, dollar_len);

  if (best_len == 0) {
    if (unterminated) {
      return Token{TokenKind::kUnterminatedString, static_cast<uint32_t>(p),
                   static_cast<uint32_t>(s.size())};
    }
    // 14. any other character: take the whole UTF-8 sequence so the message shows it.
    size_t i = p;
    decodeUtf8(s, i);
    return Token{TokenKind::kInvalidChar, static_cast<uint32_t>(p), static_cast<uint32_t>(i)};
  }
  if (unterminated && best_kind == TokenKind::kIdent && p + best_len == s.size() && c == '\'') {
    // A '-quoted literal missing its closing quote that runs to the end of the text would
    // otherwise lex as an identifier; the author clearly meant a string.
    return Token{TokenKind::kUnterminatedString, static_cast<uint32_t>(p),
                 static_cast<uint32_t>(s.size())};
  }
  return Token{best_kind, static_cast<uint32_t>(p), static_cast<uint32_t>(p + best_len)};
}

std::string describeToken(std::string_view text, const Token& token) {
  if (token.kind == TokenKind::kEnd) return "end of text";
  std::string_view t = text.substr(token.begin, token.end - token.begin);
  std::string out = "'";
  if (t.size() > 40) {
    size_t cut = 40;
    while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;
    out.append(t.substr(0, cut));
    out.append("...");
  } else {
    out.append(t);
  }
  out.push_back('\'');
  return out;
}

core::Result<std::string> unescapeStringLiteral(std::string_view text, const Token& token,
                                                size_t* error_offset) {
  std::string out;
  const size_t begin = token.begin + 1;
  const size_t end = token.end - 1;  // the closing quote
  out.reserve(end - begin);
  uint32_t pending_high = 0;  // a high surrogate waiting for its low half
  auto flushHigh = [&]() {
    if (pending_high != 0) {
      appendUtf8(out, pending_high);
      pending_high = 0;
    }
  };
  for (size_t i = begin; i < end;) {
    const char ch = text[i];
    if (ch != '\\') {
      flushHigh();
      out.push_back(ch);
      ++i;
      continue;
    }
    const char e = i + 1 < end ? text[i + 1] : '\0';
    if (e == '"' || e == '\'' || e == '\\') {
      flushHigh();
      out.push_back(e);
      i += 2;
      continue;
    }
    if (e == 'u' && i + 6 <= end && isHexDigit(text[i + 2]) && isHexDigit(text[i + 3]) &&
        isHexDigit(text[i + 4]) && isHexDigit(text[i + 5])) {
      uint32_t unit = 0;
      for (size_t k = 2; k < 6; ++k) {
        const char h = text[i + k];
        unit = unit * 16 + static_cast<uint32_t>(isDigit(h) ? h - '0' : (asciiLower(h) - 'a' + 10));
      }
      if (unit >= 0xDC00 && unit <= 0xDFFF && pending_high != 0) {
        appendUtf8(out, 0x10000 + ((pending_high - 0xD800) << 10) + (unit - 0xDC00));
        pending_high = 0;
      } else {
        flushHigh();
        if (unit >= 0xD800 && unit <= 0xDBFF) {
          pending_high = unit;
        } else {
          appendUtf8(out, unit);  // a lone low surrogate is kept as a code unit
        }
      }
      i += 6;
      continue;
    }
    // Invalid: name the sequence (backslash plus the following character, or the \u run).
    *error_offset = i;
    std::string seq = "\\";
    if (i + 1 < end) {
      size_t j = i + 1;
      decodeUtf8(text, j);
      if (e == 'u') {
        while (j < end && j < i + 6 && isHexDigit(text[j])) ++j;
      }
      seq.append(text.substr(i + 1, j - (i + 1)));
      return core::invalidArgument("invalid escape sequence '" + seq + "' in string literal");
    }
    return core::invalidArgument("invalid escape sequence '\\' at end of string literal");
  }
  flushHigh();
  return out;
}

}  // namespace edgehub::routing
