#pragma once
// Internal helpers shared by the configuration parsers in core/config/*.cc. This header includes
// nlohmann/json, which hub_core links PRIVATE: include it only from .cc files of hub_core (core/config/,
// core/twin/), never from a public header.
//
// Every helper catches nlohmann's exceptions and converts them; nothing here throws except
// std::bad_alloc.
//
// Thread-safety: pure functions. Hot/cold: cold.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace edgehub::core::config_internal {

using Json = nlohmann::ordered_json;

// Parses strict RFC 8259 JSON keeping member order. Errors (kInvalidArgument) read
// "line L, column C: <reason>" (1-based, columns count code points) and include `what` ("manifest")
// in size and nesting complaints. Rejects texts larger than max_bytes and nesting deeper than
// kMaxJsonDepth (deep nesting would make later recursive walks exhaust the stack).
//
// A member name that appears twice in one object is not a syntax error in RFC 8259, but the later
// value would silently replace the earlier one (a second route "alerts" would hide the first), so
// each duplicate's raw JSON path ("routes.alerts", "identities[2].moduleId") is appended to
// *duplicates for the caller to report.
inline constexpr int kMaxJsonDepth = 512;
// The offset where arrays/objects first nest deeper than `limit` (strings skipped), or nullopt.
// Runs before nlohmann so that a hostile text cannot make a later recursion overflow the stack.
std::optional<size_t> findTooDeep(std::string_view text, int limit);
Result<Json> parseJson(std::string_view text, size_t max_bytes, std::string_view what,
                       std::vector<std::string>* duplicates);

// Reads a whole regular file of at most max_bytes. Errors: kIoError / kNotFound /
// kInvalidArgument (too large), each naming the file.
Result<std::string> readSmallFile(const std::string& path, size_t max_bytes, std::string_view what);

// "a JSON string", "a number 1.5", "null", ... for "got ..." in error messages.
std::string describeJson(const Json& value);

// Appends ".key" to a JSON path (an empty key is shown as "").
std::string childPath(std::string_view path, std::string_view key);

// True if s is empty or only JSON whitespace.
bool isBlank(std::string_view s);

// If value is a JSON integer that fits in int64_t, returns it. Sets *out_of_range when it is an
// integer too large for int64_t (so the caller can say "out of range" rather than "not an
// integer").
std::optional<int64_t> jsonInt64(const Json& value, bool* out_of_range);

// Joins problem lines with '\n'.
std::string joinLines(const std::vector<std::string>& lines);

}  // namespace edgehub::core::config_internal
