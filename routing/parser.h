#pragma once
// Route statement parser and compiler entry point (routing-language.md §2-§6, §15).
//
//   route ::= [ SELECT "*" ] FROM source [ WHERE condition ] INTO sink
//
// compileRoute() parses the whole statement, type-checks the condition and returns a
// CompiledRoute ready for evaluation, or an error with a 1-based line:column position (columns
// count code points) and a plain-words reason.
//
// Thread-safety: pure function. Ownership: the result owns copies of everything it needs.
// Hot/cold: cold (manifest load).
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "routing/condition.h"
#include "routing/endpoint.h"

namespace edgehub::routing {

// Beyond this nesting (parentheses, unary operators, calls), compilation fails with
// "expression nested too deeply" (§16 requires at least 256).
inline constexpr int kMaxNestingDepth = 512;

struct CompiledRoute {
  std::string text;       // as written
  std::string source;     // the source as written, e.g. "/messages/modules/m1/*"
  std::string prefix;     // normalised route prefix (§3.2), original case, ends with '/'
  Endpoint endpoint;
  CompiledCondition condition;
  bool has_condition = false;  // a WHERE clause was written
};

struct RouteError {
  uint32_t line = 1;
  uint32_t column = 1;
  std::string reason;

  // "L:C: reason"
  std::string toString() const;
};

// On error the Status is kInvalidArgument with message "L:C: reason"; *error (if given) receives
// the structured form.
core::Result<CompiledRoute> compileRoute(std::string_view text, RouteError* error = nullptr);

// 1-based line and code-point column of a byte offset in text.
void lineColumn(std::string_view text, size_t offset, uint32_t* line, uint32_t* column);

}  // namespace edgehub::routing
