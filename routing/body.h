#pragma once
// BodyDocument: $body access (routing-language.md §11). Internal to routing/ (it is the only
// place that includes simdjson).
//
// load() checks the preconditions (system contentType exactly application/json, contentEncoding
// utf-8/utf-16/utf-32, little-endian, case-insensitive), decodes UTF-16LE/UTF-32LE strictly into
// UTF-8, and parses the text with simdjson (strict RFC 8259, UTF-8 validated, top level must be
// an object). A byte-order mark is not skipped, so a body starting with one fails.
//
// simdjson rejects numbers outside the double range and integers wider than 64 bits, which the
// spec wants as doubles (±Infinity for overflow). On such a failure the text is rewritten once
// (cold path): each offending number becomes a private marker string resolved back to its double
// when queried.
//
// Thread-safety: not thread-safe; one per EvalContext. Ownership: owns the parser and the padded
// copy of the decoded body; values it returns point into them until the next load().
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <simdjson.h>

#include "routing/condition.h"
#include "routing/message_view.h"
#include "routing/property_lookup.h"
#include "routing/value.h"

namespace edgehub::routing {

// Test hook (tests/routing/body_scan_test.cc): loads `message` into a process-wide BodyDocument
// and queries `paths`; false when the body is unusable. Not thread-safe; the values stay valid
// until the next call. It exists because simdjson's compile definitions reach only this library,
// so other targets must not lay out a BodyDocument themselves.
bool queryBodyForTest(const MessageView& message, std::span<const BodyPath> paths,
                      std::vector<Value>* out);

class BodyDocument {
 public:
  BodyDocument();
  // Returns false when the body cannot be queried (any §11.1 precondition fails).
  bool load(const MessageView& message);
  // Kind per §11.4; kMissing when a step finds nothing.
  Value query(const BodyPath& path) const;
  bool includes(const BodyPath& path) const;

 private:
  bool parseText(size_t length);
  bool rewriteLargeNumbers(size_t length);
  bool select(const BodyPath& path, simdjson::dom::element* out) const;
  Value toValue(simdjson::dom::element e) const;

  simdjson::dom::parser parser_;
  std::string buffer_;     // decoded UTF-8 text followed by SIMDJSON_PADDING bytes
  std::string rewritten_;  // large-number fallback text (padded)
  std::vector<double> large_numbers_;
  bool has_large_numbers_ = false;
  simdjson::dom::element root_;
  // Root-object index, built on the first query of a message: most paths start with a root
  // member, and scanning the whole root per query (needed for last-occurrence-wins) dominated
  // the cost of many $body conditions. Scanned backwards, so the last duplicate wins.
  struct RootField {
    uint32_t hash;
    uint32_t len;
    const char* key;
    simdjson::dom::element value;
  };
  mutable std::vector<RootField> root_fields_;
  mutable bool root_indexed_ = false;
};

}  // namespace edgehub::routing
