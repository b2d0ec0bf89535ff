#pragma once
// EvalContext: reusable per-thread state for evaluating conditions against messages.
//
// Holds the value stack, a scratch arena for strings built during evaluation (lower(), concat(),
// ...), and the body document: the simdjson parser plus the lazily decoded and parsed body of
// the current message. The body is parsed at most once per message, only when the first
// condition that needs it runs, and shared by every route evaluated for that message (§11.1).
// Conditions of a route table read the body through the table's BodyPlan instead: one strict
// pass that records only the values the table's routes can ask for (body_scan.h), likewise done
// at most once per message (twice only if conditions of two tables share one context and
// message). After warm-up (buffers grown to the largest message seen) evaluation allocates
// nothing.
//
// Thread-safety: not thread-safe; use one context per evaluating thread.
// Ownership: owns its buffers. Values produced during an evaluation point into the message, the
// compiled condition or this context, and are valid until the next beginMessage().
// Hot/cold: hot.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "routing/message_view.h"
#include "routing/value.h"

namespace edgehub::routing {

class BodyDocument;
class BodyPlan;
class BodyScanner;
struct BodyPath;

// Bump allocator for evaluation-time strings; reset per message, keeps its memory.
class ScratchArena {
 public:
  char* allocate(size_t n);
  void reset();

 private:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t size = 0;
  };
  std::vector<Block> blocks_;
  size_t used_ = 0;  // bytes used in blocks_.back()
  size_t total_ = 0;
};

struct EvalStats {
  uint64_t body_parses = 0;    // bodies decoded and parsed successfully
  uint64_t body_failures = 0;  // bodies that failed a precondition, decoding or parsing
};

class EvalContext {
 public:
  EvalContext();
  ~EvalContext();
  EvalContext(const EvalContext&) = delete;
  EvalContext& operator=(const EvalContext&) = delete;

  // Starts a new message: forgets the previous body and scratch strings. Must be called before
  // evaluating conditions against `message` (RouteTable::route does it).
  void beginMessage(const MessageView& message);

  const EvalStats& stats() const { return stats_; }

 private:
  friend class Interpreter;
  friend class RouteTable;  // evaluates body-test forms against scannedValues() itself
  enum class BodyState : uint8_t { kNotLoaded, kLoaded, kUnusable };

  // The parsed body of the current message, or nullptr when it cannot be queried.
  const BodyDocument* body();
  // The body of the current message scanned for `plan`, or nullptr when it cannot be queried.
  // Inline because every $body read of a table-bound condition asks; only the first read of a
  // message scans.
  const BodyScanner* scannedBody(const BodyPlan* plan) {
    if (scanned_plan_ != plan) return scanBody(plan);
    return scan_ok_ ? scanner_.get() : nullptr;
  }
  // The same scan's values indexed by slot (BodyScanner::values), or as many undefined values
  // when the body cannot be queried (never nullptr): what the body-test fast path of table
  // conditions reads, without a test of its own per read.
  const Value* scannedValues(const BodyPlan* plan) {
    if (scanned_plan_ != plan) scanBody(plan);
    return scan_values_;
  }
  const BodyScanner* scanBody(const BodyPlan* plan);
  // Whether some application property name starts with '$'. Only such a property can shadow a
  // $body query (§8.4: its name is "$body.path", and no character case-maps to '$'), so most
  // messages skip the per-query shadow lookup. Inline: asked by every shadowable body query,
  // computed once per message.
  bool hasDollarProperty() {
    if (dollar_props_ < 0) findDollarProperty();
    return dollar_props_ == 1;
  }
  void findDollarProperty();

  const MessageView* message_ = nullptr;
  std::vector<Value> stack_;
  ScratchArena scratch_;
  std::u16string units_a_;  // UTF-16 scratch for code-unit string functions
  std::u16string units_b_;
  std::string text_scratch_;
  std::unique_ptr<BodyDocument> body_;
  BodyState body_state_ = BodyState::kNotLoaded;
  std::unique_ptr<BodyScanner> scanner_;
  const BodyPlan* scanned_plan_ = nullptr;  // plan of the current message's scan, if any
  bool scan_ok_ = false;
  const Value* scan_values_ = nullptr;  // scanner_->values() when scan_ok_, else undefined_
  std::vector<Value> undefined_;        // undefined values, at least one per slot of a plan
  int8_t dollar_props_ = -1;  // hasDollarProperty() of the current message; -1 not yet known
  EvalStats stats_;
};

}  // namespace edgehub::routing
