#pragma once
// The RocksDB key and value encodings of the store (the grammar is at the top of keys.cc).
// Every key the store writes or reads is built and parsed here, through one encoder per kind,
// so that the format lives in one place (style rule 39).
//
// Thread-safety: pure functions and value types.
// Ownership: encoders append to a caller-owned std::string (reused per batch: no allocation at
// steady state); decoders read from caller-owned bytes and return values, never views into them.
// Hot/cold: the queue, message, reference and expiry encoders are hot (per message).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgehub::store::keys {

// 2: one column family per kind of sequence-ordered key (kColumnFamilies).
// 3: no refs record for a message with a single reference (keys.cc); format 2 stores are read.
inline constexpr uint32_t kFormatVersion = 3;
inline constexpr uint32_t kOldestReadableFormat = 2;

// Key prefixes (first byte of every key). Distinct kinds never share a prefix, so a prefix
// iterator over one kind never sees another.
inline constexpr char kMetaPrefix = 'A';      // format version, next endpoint id, totals
inline constexpr char kEndpointPrefix = 'E';  // endpoint name -> stable id
inline constexpr char kQueueMetaPrefix = 'Q'; // per (endpoint id, priority) counters
inline constexpr char kMessagePrefix = 'm';   // sequence -> flatbuffer bytes as received
inline constexpr char kRefsPrefix = 'r';      // sequence -> the references still pending
inline constexpr char kQueuePrefix = 'q';     // (endpoint id, priority, sequence) -> entry
inline constexpr char kExpiryPrefix = 'x';    // (expiry, sequence, endpoint id, priority)
inline constexpr char kSessionPrefix = 'S';   // client id -> session record (subscriptions)
inline constexpr char kTwinPrefix = 'T';      // client id -> module twin document (JSON)

// Column families, by key kind: message, refs, queue and expiry keys each in their own (their
// keys grow with the sequence, so flushed files do not overlap and move down the LSM levels
// without being rewritten); the rest (small, overwritten records) in "default".
inline constexpr std::array<std::string_view, 5> kColumnFamilies = {"default", "messages", "refs", "queues",
                                                                     "expiry"};
inline constexpr size_t columnFamilyOf(char prefix) {
  switch (prefix) {
    case kMessagePrefix: return 1;
    case kRefsPrefix: return 2;
    case kQueuePrefix: return 3;
    case kExpiryPrefix: return 4;
    default: return 0;
  }
}

// --- keys ---------------------------------------------------------------------------------

void metaKey(std::string& out, std::string_view name);
void endpointKey(std::string& out, std::string_view endpoint_name);
void queueMetaKey(std::string& out, uint32_t endpoint_id, uint8_t priority);
void messageKey(std::string& out, uint64_t sequence);
void refsKey(std::string& out, uint64_t sequence);
void queueKey(std::string& out, uint32_t endpoint_id, uint8_t priority, uint64_t sequence);
// The first key of a queue at or after `sequence`, and the first key past the queue.
void queueUpperBound(std::string& out, uint32_t endpoint_id, uint8_t priority);
void expiryKey(std::string& out, int64_t expiry_ms, uint64_t sequence, uint32_t endpoint_id,
               uint8_t priority);
// Every expiry key with an expiry < expiry_ms sorts before this key.
void expiryBound(std::string& out, int64_t expiry_ms);

struct QueueKey {
  uint32_t endpoint_id;
  uint8_t priority;
  uint64_t sequence;
};
std::optional<QueueKey> parseQueueKey(std::string_view key);
std::optional<uint64_t> parseMessageKey(std::string_view key);
std::optional<uint32_t> parseQueueMetaKey(std::string_view key, uint8_t* priority);
std::optional<std::string> parseEndpointKey(std::string_view key);

struct ExpiryKey {
  int64_t expiry_ms;
  uint64_t sequence;
  uint32_t endpoint_id;
  uint8_t priority;
};
std::optional<ExpiryKey> parseExpiryKey(std::string_view key);

// --- values -------------------------------------------------------------------------------

// A queue entry: what a reader needs without fetching the body.
struct QueueEntry {
  int64_t expiry_ms;
  int64_t enqueued_ms;
  uint32_t size;
};
void encodeQueueEntry(std::string& out, const QueueEntry& entry);
std::optional<QueueEntry> decodeQueueEntry(std::string_view value);

// The references of one message that are still pending (not released, not expired).
struct Ref {
  uint32_t endpoint_id;
  uint8_t priority;
  int64_t expiry_ms;
  // An expiry_key exists for this reference (its expiry was earlier than one queued before
  // it); otherwise the queue's head scan finds it when it expires (docs/store.md, TTL).
  bool indexed = false;
};
struct RefsRecord {
  uint32_t size = 0;  // byte size of the message body record
  std::vector<Ref> refs;
};
void encodeRefs(std::string& out, const RefsRecord& record);
bool decodeRefs(std::string_view value, RefsRecord& out);

// Per-queue counters, kept exact in the same WriteBatch as the entries they count.
struct QueueMeta {
  uint64_t count = 0;
  uint64_t bytes = 0;
  // Every entry of the queue has a sequence >= checkpoint (a seek hint: entries below it were
  // all released or expired).
  uint64_t checkpoint = 0;
  uint64_t tail = 0;  // highest sequence ever appended
  // Latest expiry queued (INT64_MIN when empty): a reference expiring no earlier needs no
  // expiry_key, since the expiry pass's head scan reaches it (docs/store.md, TTL).
  int64_t max_expiry_ms = INT64_MIN;
};
void encodeQueueMeta(std::string& out, const QueueMeta& meta);
std::optional<QueueMeta> decodeQueueMeta(std::string_view value);

// Store-wide totals (each message counted once).
struct Totals {
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t dropped_ttl = 0;   // references removed by TTL expiry, since the store was created
  uint64_t dropped_full = 0;  // references removed by drop-oldest, since the store was created
};
void encodeTotals(std::string& out, const Totals& totals);
std::optional<Totals> decodeTotals(std::string_view value);

void encodeFixed32(std::string& out, uint32_t v);
std::optional<uint32_t> decodeFixed32(std::string_view value);

// Meta names (values: fixed32 unless stated).
inline constexpr std::string_view kMetaFormat = "format";
inline constexpr std::string_view kMetaNextEndpointId = "next_endpoint_id";
inline constexpr std::string_view kMetaTotals = "totals";  // value: Totals

}  // namespace edgehub::store::keys
