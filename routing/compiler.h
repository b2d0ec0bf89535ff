#pragma once
// ConditionBuilder: the compiler back end. The parser (routing/parser.h) calls it bottom-up for
// every sub-expression; it checks static types (routing-language.md §7, §9, §10) and emits the
// post-order program of a CompiledCondition. Because the parser drives it bottom-up, neither
// type checking nor code generation recurses over a tree.
//
// Thread-safety: single-threaded builder. Ownership: returns the finished condition by value.
// Hot/cold: cold.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "routing/condition.h"
#include "routing/lexer.h"

namespace edgehub::routing {

// A compiled sub-expression: its static type and where its text is in the route.
struct Frag {
  StaticType type = StaticType::kUndefined;
  uint32_t begin = 0;       // byte offsets of the sub-expression text
  uint32_t end = 0;
  uint32_t code_begin = 0;  // first instruction of its code
};

struct BuildError {
  uint32_t offset = 0;  // byte offset of the error in the route text
  std::string reason;
};

class ConditionBuilder {
 public:
  explicit ConditionBuilder(std::string_view route_text) : text_(route_text) {}

  Frag stringLiteral(std::string value, uint32_t begin, uint32_t end);
  Frag numberLiteral(double value, uint32_t begin, uint32_t end);
  Frag boolLiteral(bool value, uint32_t begin, uint32_t end);
  Frag nullLiteral(uint32_t begin, uint32_t end);
  Frag undefinedLiteral(uint32_t begin, uint32_t end);
  Frag appProperty(std::string_view name, uint32_t begin, uint32_t end);
  // A DOLLAR_NAME token text (with the '$'); braces = written as {$name}.
  bool dollarName(std::string_view name, bool braces, uint32_t begin, uint32_t end, Frag* out);
  bool unary(TokenKind op, uint32_t op_offset, const Frag& operand, Frag* out);
  bool binary(TokenKind op, uint32_t op_offset, const Frag& lhs, const Frag& rhs, Frag* out);
  // A built-in call; args in order. name_offset points at the function name.
  bool call(std::string_view name, uint32_t name_offset, uint32_t end, std::span<const Frag> args,
            Frag* out);
  // twin_change_includes(path): path is the bare path token text.
  bool twinChangeIncludes(std::string_view path, uint32_t path_offset, uint32_t begin,
                          uint32_t end, Frag* out);

  CompiledCondition finish(const Frag& root);
  // Condition `true` (routes without WHERE).
  static CompiledCondition alwaysTrue();

  const BuildError& error() const { return error_; }

 private:
  void emit(Op op, uint32_t arg, uint32_t arg2, int pops, uint8_t flags = 0);
  uint32_t addConst(const Value& v);
  bool fail(uint32_t offset, std::string reason);
  std::string text(const Frag& f) const;
  Frag make(StaticType t, uint32_t begin, uint32_t end, uint32_t code_begin) const;

  std::string_view text_;
  CompiledCondition cond_;
  int depth_ = 0;
  BuildError error_;
};

// Validates a $body path (§11.3); on error returns false with a detail message.
bool parseBodyPath(std::string_view path, bool allow_indexes, std::vector<PathStep>* steps,
                   std::string* detail);

}  // namespace edgehub::routing
