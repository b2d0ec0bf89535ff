#include "routing/parser.h"

#include <cstdlib>
#include <vector>

#include "routing/compiler.h"
#include "routing/lexer.h"
#include "routing/unicode.h"

namespace edgehub::routing {

std::string RouteError::toString() const {
  return std::to_string(line) + ":" + std::to_string(column) + ": " + reason;
}

void lineColumn(std::string_view text, size_t offset, uint32_t* line, uint32_t* column) {
  uint32_t l = 1;
  uint32_t c = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b == '\n') {
      ++l;
      c = 1;
    } else if ((b & 0xC0) != 0x80) {
      ++c;
    }
  }
  *line = l;
  *column = c;
}

namespace {

int binaryPrecedence(TokenKind k) {
  switch (k) {
    case TokenKind::kCoalesce: return 1;
    case TokenKind::kOr: return 2;
    case TokenKind::kAnd: return 3;
    case TokenKind::kEq:
    case TokenKind::kNe:
    case TokenKind::kLtGt: return 4;
    case TokenKind::kLt:
    case TokenKind::kLe:
    case TokenKind::kGt:
    case TokenKind::kGe: return 5;
    case TokenKind::kPlus:
    case TokenKind::kMinus:
    case TokenKind::kConcat: return 6;
    case TokenKind::kStar:
    case TokenKind::kSlash:
    case TokenKind::kPercent: return 7;
    default: return 0;
  }
}

double parseDouble(std::string_view s) {
  const std::string copy(s);
  return std::strtod(copy.c_str(), nullptr);
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), lex_(text, 0, false), builder_(text) {}

  bool parseRoute(CompiledRoute* out);
  uint32_t errorOffset() const { return error_offset_; }
  const std::string& errorReason() const { return error_reason_; }

 private:
  bool fail(size_t offset, std::string reason) {
    error_offset_ = static_cast<uint32_t>(offset);
    error_reason_ = std::move(reason);
    return false;
  }
  bool failBuilder() { return fail(builder_.error().offset, builder_.error().reason); }
  bool unexpected(const Token& t);

  bool parseSource(CompiledRoute* out);
  bool parseSink(CompiledRoute* out);
  bool parseBinary(int min_prec, Frag* out);
  bool parseUnary(Frag* out);
  bool parsePrimary(Frag* out);
  bool parseCall(const Token& name, Frag* out);
  bool parseTwinIncludes(const Token& name, Frag* out);
  bool enter(const Token& t) {
    if (++depth_ > kMaxNestingDepth) return fail(t.begin, "expression nested too deeply");
    return true;
  }

  std::string_view tokenText(const Token& t) const { return text_.substr(t.begin, t.end - t.begin); }

  std::string_view text_;
  Lexer lex_;
  ConditionBuilder builder_;
  int depth_ = 0;
  bool twin_source_ = false;
  uint32_t error_offset_ = 0;
  std::string error_reason_;
};

bool Parser::unexpected(const Token& t) {
  switch (t.kind) {
    case TokenKind::kEnd: return fail(text_.size(), "unexpected end of text");
    case TokenKind::kInvalidChar: return fail(t.begin, "invalid character " + describeToken(text_, t));
    case TokenKind::kUnterminatedString: return fail(text_.size(), "unterminated string");
    case TokenKind::kMalformedNumber:
      return fail(t.begin, "malformed number " + describeToken(text_, t));
    case TokenKind::kRParen: return fail(t.begin, "unmatched ')'");
    case TokenKind::kInto: return fail(t.begin, "unexpected 'INTO'");
    case TokenKind::kBracketRun:
      return fail(t.begin, "unexpected " + describeToken(text_, t) +
                               ": brackets are only allowed in $ names");
    default: return fail(t.begin, "unexpected " + describeToken(text_, t));
  }
}

bool Parser::parseRoute(CompiledRoute* out) {
  out->text = std::string(text_);
  lex_.skipSpace();
  if (lex_.position() >= text_.size()) return fail(text_.size(), "empty route");
  Token t = lex_.next();
  if (t.kind == TokenKind::kSelect) {
    const Token star = lex_.next();
    if (star.kind != TokenKind::kStar) {
      return fail(star.kind == TokenKind::kEnd ? text_.size() : star.begin,
                  "expected '*' after SELECT (only SELECT * is supported)");
    }
    t = lex_.next();
  }
  if (t.kind != TokenKind::kFrom) {
    return fail(t.kind == TokenKind::kEnd ? text_.size() : t.begin, "expected FROM");
  }
  if (!parseSource(out)) return false;

  t = lex_.next();
  if (t.kind == TokenKind::kWhere) {
    // The condition: comments are recognised from here to INTO (§6.2).
    Lexer cond_lex(text_, lex_.position(), true);
    const Token first = cond_lex.peek();
    if (first.kind == TokenKind::kInto || first.kind == TokenKind::kEnd) {
      return fail(first.kind == TokenKind::kEnd ? text_.size() : first.begin,
                  "missing condition after WHERE");
    }
    std::swap(lex_, cond_lex);
    Frag root;
    if (!parseBinary(1, &root)) return false;
    const Token after = lex_.next();
    if (after.kind != TokenKind::kInto) {
      if (after.kind == TokenKind::kEnd) return fail(text_.size(), "expected INTO");
      if (after.kind == TokenKind::kRParen) return fail(after.begin, "unmatched ')'");
      if (after.kind == TokenKind::kInvalidChar || after.kind == TokenKind::kUnterminatedString ||
          after.kind == TokenKind::kMalformedNumber) {
        return unexpected(after);
      }
      return fail(after.begin, "unexpected " + describeToken(text_, after) +
                                   " (expected an operator or INTO)");
    }
    out->condition = builder_.finish(root);
    out->has_condition = true;
    lex_ = Lexer(text_, lex_.position(), false);
  } else if (t.kind == TokenKind::kInto) {
    out->condition = ConditionBuilder::alwaysTrue();
  } else {
    return fail(t.kind == TokenKind::kEnd ? text_.size() : t.begin, "expected WHERE or INTO");
  }
  return parseSink(out);
}

bool Parser::parseSource(CompiledRoute* out) {
  lex_.skipSpace();
  const size_t begin = lex_.position();
  if (begin >= text_.size() || text_[begin] != '/') {
    return fail(begin, "source must start with '/'");
  }
  size_t i = begin;
  while (i < text_.size() && (text_[i] == '/' || isIdentChar(text_[i]))) ++i;
  if (i < text_.size() && !isRouteWhitespace(text_[i])) {
    size_t j = i;
    decodeUtf8(text_, j);
    return fail(i, "unexpected character '" + std::string(text_.substr(i, j - i)) +
                       "' in source (a source is a whitespace-delimited path)");
  }
  const std::string_view src = text_.substr(begin, i - begin);
  // Shape /segment(/segment)* with non-empty segments.
  for (size_t k = 0; k < src.size(); ++k) {
    if (src[k] == '/' && (k + 1 == src.size() || src[k + 1] == '/')) {
      return fail(begin + k + 1, "empty segment in source path");
    }
  }
  out->source = std::string(src);
  std::string prefix(src);
  while (!prefix.empty() && prefix.back() == '*') prefix.pop_back();
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  prefix.push_back('/');
  out->prefix = prefix;
  twin_source_ = equalsIgnoreCase(prefix, "/twinChangeNotifications/");
  lex_.setPosition(i);
  return true;
}

bool Parser::parseSink(CompiledRoute* out) {
  lex_.skipSpace();
  if (lex_.position() >= text_.size()) return fail(text_.size(), "missing sink");
  const Token t = lex_.next();
  if (t.kind == TokenKind::kDollarName) {
    const std::string_view name = tokenText(t);
    if (!equalsIgnoreCase(name, "$upstream")) {
      return fail(t.begin, "unsupported system endpoint '" + std::string(name) + "'");
    }
    out->endpoint = Endpoint::upstream();
  } else if (t.kind == TokenKind::kIdent) {
    const std::string_view name = tokenText(t);
    if (!equalsIgnoreCase(name, "BrokeredEndpoint")) {
      return fail(t.begin, "unsupported endpoint function '" + std::string(name) + "'");
    }
    const Token lp = lex_.next();
    if (lp.kind != TokenKind::kLParen) {
      return fail(lp.kind == TokenKind::kEnd ? text_.size() : lp.begin,
                  "expected '(' after BrokeredEndpoint");
    }
    const Token str = lex_.next();
    if (str.kind == TokenKind::kUnterminatedString) return fail(text_.size(), "unterminated string");
    if (str.kind != TokenKind::kString) {
      return fail(str.kind == TokenKind::kEnd ? text_.size() : str.begin,
                  "expected a string literal address in BrokeredEndpoint(...)");
    }
    size_t esc = 0;
    auto value = unescapeStringLiteral(text_, str, &esc);
    if (!value.isOk()) return fail(esc, std::string(value.status().message()));
    const Token rp = lex_.next();
    if (rp.kind != TokenKind::kRParen) {
      return fail(rp.kind == TokenKind::kEnd ? text_.size() : rp.begin, "expected ')'");
    }
    std::string_view addr = *value;
    while (!addr.empty() && isRouteWhitespace(addr.front())) addr.remove_prefix(1);
    while (!addr.empty() && isRouteWhitespace(addr.back())) addr.remove_suffix(1);
    if (!addr.empty() && addr.front() == '/') addr.remove_prefix(1);
    if (!addr.empty() && addr.back() == '/') addr.remove_suffix(1);
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
      const size_t slash = addr.find('/', start);
      parts.push_back(addr.substr(start, slash == std::string_view::npos ? addr.size() - start
                                                                         : slash - start));
      if (slash == std::string_view::npos) break;
      start = slash + 1;
    }
    if (parts.size() != 4 || parts[1].empty() || parts[3].empty()) {
      return fail(str.begin,
                  "invalid BrokeredEndpoint address (expected /modules/<module>/inputs/<input>)");
    }
    out->endpoint = Endpoint::moduleInput(std::string(parts[1]), std::string(parts[3]));
  } else {
    return fail(t.begin, "expected a sink: $upstream or BrokeredEndpoint(\"/modules/<module>/inputs/<input>\")");
  }
  lex_.skipSpace();
  if (lex_.position() < text_.size()) return fail(lex_.position(), "unexpected text after sink");
  return true;
}

bool Parser::parseBinary(int min_prec, Frag* out) {
  Frag lhs;
  if (!parseUnary(&lhs)) return false;
  while (true) {
    const Token op = lex_.peek();
    const int prec = binaryPrecedence(op.kind);
    if (prec == 0 || prec < min_prec) break;
    lex_.next();
    Frag rhs;
    if (!parseBinary(prec + 1, &rhs)) return false;
    Frag combined;
    if (!builder_.binary(op.kind, op.begin, lhs, rhs, &combined)) return failBuilder();
    lhs = combined;
  }
  *out = lhs;
  return true;
}

bool Parser::parseUnary(Frag* out) {
  const Token t = lex_.peek();
  if (t.kind == TokenKind::kMinus || t.kind == TokenKind::kNot) {
    lex_.next();
    if (!enter(t)) return false;
    Frag operand;
    if (!parseUnary(&operand)) return false;
    --depth_;
    if (!builder_.unary(t.kind, t.begin, operand, out)) return failBuilder();
    return true;
  }
  return parsePrimary(out);
}

bool Parser::parsePrimary(Frag* out) {
  const Token t = lex_.next();
  switch (t.kind) {
    case TokenKind::kString: {
      size_t esc = 0;
      auto value = unescapeStringLiteral(text_, t, &esc);
      if (!value.isOk()) return fail(esc, std::string(value.status().message()));
      *out = builder_.stringLiteral(std::move(value).value(), t.begin, t.end);
      return true;
    }
    case TokenKind::kInteger:
    case TokenKind::kReal:
      *out = builder_.numberLiteral(parseDouble(tokenText(t)), t.begin, t.end);
      return true;
    case TokenKind::kHex: {
      const std::string_view digits = tokenText(t).substr(2);
      if (digits.size() > 16) return fail(t.begin, "hexadecimal literal has more than 16 digits");
      uint64_t v = 0;
      for (char c : digits) {
        const int d = (c >= '0' && c <= '9') ? c - '0' : (asciiLower(c) - 'a' + 10);
        v = v * 16 + static_cast<uint64_t>(d);
      }
      *out = builder_.numberLiteral(static_cast<double>(v), t.begin, t.end);
      return true;
    }
    case TokenKind::kTrue:
    case TokenKind::kFalse:
      *out = builder_.boolLiteral(t.kind == TokenKind::kTrue, t.begin, t.end);
      return true;
    case TokenKind::kNull:
      *out = builder_.nullLiteral(t.begin, t.end);
      return true;
    case TokenKind::kUndefined:
      *out = builder_.undefinedLiteral(t.begin, t.end);
      return true;
    case TokenKind::kIdent: {
      if (lex_.peek().kind == TokenKind::kLParen) return parseCall(t, out);
      *out = builder_.appProperty(tokenText(t), t.begin, t.end);
      return true;
    }
    case TokenKind::kDollarName:
      if (!builder_.dollarName(tokenText(t), false, t.begin, t.end, out)) return failBuilder();
      return true;
    case TokenKind::kLBrace: {
      const Token name = lex_.next();
      if (name.kind != TokenKind::kDollarName) {
        return fail(name.kind == TokenKind::kEnd ? text_.size() : name.begin,
                    "only a $name may appear inside braces, e.g. {$contentType}");
      }
      const Token close = lex_.next();
      if (close.kind != TokenKind::kRBrace) {
        return fail(close.kind == TokenKind::kEnd ? text_.size() : close.begin, "expected '}'");
      }
      if (!builder_.dollarName(tokenText(name), true, t.begin, close.end, out)) return failBuilder();
      return true;
    }
    case TokenKind::kLParen: {
      if (!enter(t)) return false;
      Frag inner;
      if (!parseBinary(1, &inner)) return false;
      const Token close = lex_.next();
      if (close.kind != TokenKind::kRParen) {
        return fail(close.kind == TokenKind::kEnd ? text_.size() : close.begin, "expected ')'");
      }
      --depth_;
      *out = inner;
      out->begin = t.begin;
      out->end = close.end;
      return true;
    }
    case TokenKind::kInto:
      return fail(t.begin, "expected an operand before INTO");
    default:
      return unexpected(t);
  }
}

bool Parser::parseCall(const Token& name, Frag* out) {
  std::string lname;
  appendFolded(lname, tokenText(name));
  if (lname == "twin_change_includes") return parseTwinIncludes(name, out);
  const Token lp = lex_.next();  // '('
  if (!enter(lp)) return false;
  std::vector<Frag> args;
  Token t = lex_.peek();
  if (t.kind == TokenKind::kRParen) {
    lex_.next();
  } else {
    while (true) {
      t = lex_.peek();
      if (t.kind == TokenKind::kComma || t.kind == TokenKind::kRParen) {
        return fail(t.begin, "empty argument in call to '" + std::string(tokenText(name)) + "'");
      }
      Frag arg;
      if (!parseBinary(1, &arg)) return false;
      args.push_back(arg);
      t = lex_.next();
      if (t.kind == TokenKind::kComma) continue;
      if (t.kind == TokenKind::kRParen) break;
      return fail(t.kind == TokenKind::kEnd ? text_.size() : t.begin, "expected ')'");
    }
  }
  --depth_;
  if (!builder_.call(tokenText(name), name.begin, t.end, args, out)) return failBuilder();
  return true;
}

bool Parser::parseTwinIncludes(const Token& name, Frag* out) {
  if (!twin_source_) {
    return fail(name.begin,
                "twin_change_includes is only allowed in routes FROM /twinChangeNotifications");
  }
  lex_.next();  // '('
  const Token path = lex_.next();
  if (path.kind == TokenKind::kRParen || path.kind == TokenKind::kEnd) {
    return fail(path.kind == TokenKind::kEnd ? text_.size() : path.begin,
                "twin_change_includes needs a path argument, e.g. properties.reported.x");
  }
  if (path.kind == TokenKind::kBracketRun) {
    return fail(path.begin, "invalid twin_change_includes path: array indexes are not allowed");
  }
  if (path.kind != TokenKind::kIdent) {
    return fail(path.begin, "twin_change_includes takes a bare path such as "
                            "properties.reported.x, not " + describeToken(text_, path));
  }
  const Token close = lex_.next();
  if (close.kind != TokenKind::kRParen) {
    return fail(close.kind == TokenKind::kEnd ? text_.size() : close.begin,
                "twin_change_includes takes a single bare path; expected ')'");
  }
  if (!builder_.twinChangeIncludes(tokenText(path), path.begin, name.begin, close.end, out)) {
    return failBuilder();
  }
  return true;
}

}  // namespace

core::Result<CompiledRoute> compileRoute(std::string_view text, RouteError* error) {
  Parser parser(text);
  CompiledRoute route;
  if (parser.parseRoute(&route)) return route;
  RouteError e;
  lineColumn(text, parser.errorOffset(), &e.line, &e.column);
  e.reason = parser.errorReason();
  if (error != nullptr) *error = e;
  return core::invalidArgument(e.toString());
}

}  // namespace edgehub::routing
