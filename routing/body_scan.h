#pragma once
// Query-driven $body access (routing-language.md §11) for a route table.
//
// A route table knows at build time every $body path its conditions can ask for. BodyPlan holds
// them as a trie (node 0 is the top-level object; each other node is one name or index step), and
// each BodyPath of a bound condition carries the id of its node (its "slot"). BodyScanner then
// reads a message body in one strict pass: it checks the §11.1 preconditions, decodes
// UTF-16LE/UTF-32LE, validates the whole text as RFC 8259 JSON (top-level object, strict UTF-8,
// escapes, unpaired surrogates, number grammar) and records the values of the plan's nodes only.
// Nothing else is materialised, which is why this beats a DOM parse followed by one lookup per
// condition (bench/routing/route_eval_bench.cc, BM_RouteEval_10Routes_Body). Numbers are
// validated for every value but converted only when recorded.
//
// String contents are skipped to their next "stop" ('"', '\\', a control character or a byte
// >= 0x80; the rare non-quote stops are then validated one by one). On x86-64, for bodies up to
// kPrepassMaxBody bytes, a pre-pass first marks every stop of the text in a bitmap, 64 bytes per
// word, so that each string's end is one lookup; it uses SSE2 (the x86-64 baseline, 4x16 bytes per
// word) or AVX2 (2x32) when the CPU has it, decided once per process with __builtin_cpu_supports
// (no -march flag). Elsewhere, and for larger bodies, each string is searched from its start, 16
// bytes at a time with SSE2 (8 at a time with plain 64-bit words without it). Both give the same
// result; setScanPathForTesting forces one (tests compare them with each other and with the DOM).
//
// Why not a full structural index (simdjson's stage 1: offsets of every operator, quote and
// scalar, then a grammar walk over them): measured on the benchmark body (213 bytes, 98
// structural bytes), writing and reading back the offsets cost more than the byte scanner spends
// between tokens (callgrind: 3716 instructions per message against 3198; and 7051 against 5790
// with a 1.8 KB string added, 3975 against 3983 pretty-printed), because telemetry is dense in
// short tokens and the byte scanner already skips string contents with SIMD. The stop bitmap keeps the part that pays: a string's
// end without a per-string vector search.
//
// Semantics match BodyDocument (the DOM path, kept for conditions evaluated outside a table and
// as the oracle of tests/routing/body_scan_test.cc): numbers become the nearest double (±Infinity
// when out of range, integer "-0" is +0 as in simdjson), duplicate names: the last occurrence
// wins (a repeated member clears what its earlier occurrence recorded below it), nesting deeper
// than simdjson's default limit (kMaxBodyDepth) makes the body unusable, as it does there.
//
// Thread-safety: a BodyPlan is immutable once its table is built and may be shared by threads;
// a BodyScanner is per EvalContext (not thread-safe).
// Ownership: values returned by BodyScanner point into the message body or into the scanner and
// are valid until its next load(). The pre-pass bitmap (2 KiB) is allocated by the first load()
// that uses it and reused for every later message: no allocation per message.
// Hot/cold: BodyPlan::add cold; BodyScanner::load and value hot.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/condition.h"
#include "routing/message_view.h"
#include "routing/value.h"

namespace edgehub::routing {

// simdjson's default maximum depth (dom::parser's DEFAULT_MAX_DEPTH): a body whose nesting,
// counting the top-level object as 1, reaches this is rejected there, so it is here too.
inline constexpr int kMaxBodyDepth = 1024;

// The largest text (after UTF-16/32 decoding) the string-stop pre-pass covers: its bitmap is a
// fixed 2 KiB per scanner, allocated by the first load() that uses it; larger bodies search each
// string from its start instead.
inline constexpr size_t kPrepassMaxBody = 16 * 1024;

// Strict little-endian decoders (§11.1 item 3): append UTF-8 to `out`; false on an odd length,
// an unpaired surrogate or a code point above U+10FFFF. Shared with BodyDocument.
bool decodeUtf16le(std::span<const uint8_t> in, std::string& out);
bool decodeUtf32le(std::span<const uint8_t> in, std::string& out);

class BodyPlan {
 public:
  BodyPlan();
  // Adds a path (as parsed by parseBodyPath) and returns its slot; equal paths share a slot.
  uint32_t add(std::span<const PathStep> steps);
  size_t size() const { return nodes_.size(); }

 private:
  friend class BodyScanner;
  static constexpr uint32_t kNone = 0xFFFFFFFFu;
  // A member name as two words: its first min(8, n) bytes zero-padded, and for n > 8 its last 8
  // bytes (else 0). Names up to 16 bytes, nearly all of them, compare as these two words; longer
  // ones also compare their middle bytes.
  struct NameWords {
    uint64_t head = 0;
    uint64_t tail = 0;
  };
  struct NameSlot {
    NameWords words;
    const char* name = nullptr;  // the child's name (stable: nodes_ is final when scanning)
    uint32_t len = 0;
    uint32_t id = kNone;
    // The child has children of its own, so a repeated member must clear what its earlier
    // occurrence recorded below it. A leaf's value is simply overwritten by the later
    // occurrence, so the scan skips the check (a load that waited on the lookup) for leaves.
    bool parent = false;
  };
  // What a lookup found: the child (kNone if the name is not wanted) and its slot's `parent`.
  struct Found {
    uint32_t id;
    bool parent;
  };
  struct Node {
    std::string name;     // for a name step
    int64_t index = -1;   // >= 0 for an index step
    uint32_t first_child = kNone;
    uint32_t next_sibling = kNone;
    uint32_t parent = kNone;  // kNone for the root
    bool name_children = false;   // some child is a name step
    bool index_children = false;  // some child is an index step
    // Open-addressing table of the name children (linear probing, at most a quarter full),
    // indexed by the top bits of (key * mul): every member name of a wanted object is looked
    // up, so this is the scan's innermost operation. rebuildNames picks `mul` so that a small
    // table's names all sit in their home slots: a hit is then one probe, and a miss (an unwanted
    // name) usually finds its home slot empty.
    std::vector<NameSlot> names;  // size a power of two, or empty
    uint32_t name_count = 0;      // name children in `names`
    uint64_t mul = 0;
    uint8_t shift = 63;           // 64 - log2(names.size())
  };
  // readable: bytes that may be read from name.data() (at least name.size()).
  static NameWords nameWords(std::string_view name, size_t readable);
  // One multiply: the index is on the scan's serial path for every member of a wanted object.
  // The length and the middle bytes of long names are left out; names that differ only there
  // share a home slot and probe on (the compare is exact), which rebuildNames counts against a
  // multiplier.
  static size_t homeSlot(NameWords w, uint64_t mul, unsigned shift) {
    return static_cast<size_t>(((w.head ^ w.tail) * mul) >> shift);
  }
  void markParent(uint32_t node);
  void rebuildNames(uint32_t node);
  uint32_t findName(uint32_t node, std::string_view name, size_t readable) const;
  // The same lookup in a table given directly (the scan hoists it out of its member loop).
  static Found lookupName(const NameSlot* table, size_t mask, uint64_t mul, unsigned shift,
                          std::string_view name, size_t readable);
  uint32_t findIndex(uint32_t node, int64_t index) const;

  std::vector<Node> nodes_;
};

class BodyScanner {
 public:
  // How strings find their end. kAuto: the pre-pass with the best stage the CPU has, when the
  // target has one and the body fits; kBytes: always search from each string's start. The
  // kPrepass* values force one pre-pass (tests); one the CPU lacks falls back to SSE2, and a
  // target without a pre-pass (not x86-64) always searches (see stopPrepassAvailable).
  enum class ScanPath : uint8_t { kAuto, kBytes, kPrepassSse2, kPrepassAvx2 };
  void setScanPathForTesting(ScanPath path) { path_ = path; }
  static bool stopPrepassAvailable(ScanPath path);

  // Returns false when the body cannot be queried (any §11.1 precondition fails).
  bool load(const MessageView& message, const BodyPlan& plan);
  // The value at a slot of the plan given to the last successful load(); kMissing when a step
  // found nothing.
  const Value& value(uint32_t slot) const { return values_[slot]; }
  // All of them, indexed by slot (plan size entries); valid until the next load().
  const Value* values() const { return values_.data(); }

 private:
  // Each parse step takes the cursor and returns the position after what it read, or nullptr
  // when the text is not valid JSON: the cursor then lives in a register instead of being
  // stored to and reloaded from the scanner around every byte (the old member-cursor scan spent
  // a large share of its instructions doing exactly that).
  bool scan(const char* begin, const char* end);
  const char* parseWithStops(const char* p, const char* begin, const char* last, const char* end);
  // Stops: how strings find their next stop (body_scan.cc: ByteStops or PrepassStops).
  template <class Stops>
  const char* parseValue(const char* p, uint32_t node, int depth, Stops stops);
  template <class Stops>
  const char* parseObject(const char* p, uint32_t node, int depth);
  template <class Stops>
  const char* parseArray(const char* p, uint32_t node, int depth);
  const char* parseNumber(const char* p, uint32_t node);
  void recordString(std::string_view raw, bool escaped, uint32_t node);
  std::string_view unescape(std::string_view raw, char* out);
  void clearBelow(uint32_t node);

  const BodyPlan* plan_ = nullptr;
  const char* end_ = nullptr;
  std::vector<Value> values_;
  std::string decoded_;    // UTF-16/32 bodies decoded to UTF-8
  std::string unescaped_;  // wanted strings with escapes; never longer than the text
  size_t unescaped_used_ = 0;
  std::string key_;        // an escaped member name, unescaped for matching
  ScanPath path_ = ScanPath::kAuto;
  std::vector<uint64_t> stops_;  // the pre-pass bitmap (kPrepassMaxBody / 64 + 2 words)
  const char* text_begin_ = nullptr;  // the text stops_ describes (bit 0 of word 0)
};

}  // namespace edgehub::routing
