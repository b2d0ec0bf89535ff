// Key and value grammar of the RocksDB store. Column families (keys::kColumnFamilies): message_key
// in "messages", refs_key in "refs", queue_key in "queues", expiry_key in "expiry", the rest
// in "default".
//
//   key              := meta_key | endpoint_key | queue_meta_key | message_key | refs_key
//                     | queue_key | expiry_key | session_key | twin_key
//   meta_key         := 'A' name                         name: kMeta* (ASCII)
//   endpoint_key     := 'E' endpoint_name                the canonical endpoint text (UTF-8)
//   queue_meta_key   := 'Q' endpoint_id priority
//   message_key      := 'm' sequence
//   refs_key         := 'r' sequence
//   queue_key        := 'q' endpoint_id priority sequence
//   expiry_key       := 'x' expiry sequence endpoint_id priority
//   session_key      := 'S' client_id                    MQTT client id "{d}" or "{d}/{m}" (UTF-8)
//   twin_key         := 'T' client_id                    the twin's identity, same form
//
//   endpoint_id      := fixed32 big-endian               stable id, assigned once per name
//   priority         := uint8 0..10                      0 highest, 10 = default class
//   sequence         := fixed64 big-endian               the message's hub-wide sequence
//   expiry           := fixed64 big-endian of (ms since epoch XOR 2^63)
//                                                        signed order = byte order
//
//   value(meta 'format')           := fixed32 little-endian   kFormatVersion
//   value(meta 'next_endpoint_id') := fixed32 little-endian
//   value(meta 'totals')           := messages:fixed64 bytes:fixed64 dropped_ttl:fixed64
//                                     dropped_store_full:fixed64              (little-endian)
//   value(endpoint_key)            := endpoint_id:fixed32 little-endian
//   value(queue_meta_key)          := count:fixed64 bytes:fixed64 checkpoint:fixed64 tail:fixed64
//                                     max_expiry_ms:fixed64 (latest expiry queued; see QueueMeta)
//   value(message_key)             := the message flatbuffer exactly as received (never
//                                     re-encoded; verified with MessageRef::fromBytes on read)
//   value(refs_key)                := size:fixed32 n:uint8 { endpoint_id:fixed32 flags:uint8
//                                     expiry_ms:fixed64 }*n       (pending references only)
//                                     flags = priority | 0x80 if the reference has an expiry_key
//   value(queue_key)               := expiry_ms:fixed64 enqueued_ms:fixed64 size:fixed32
//   value(expiry_key)              := empty
//   value(session_key)             := the MQTT server's session record (opaque here; see
//                                     transports/mqtt/server/server.cc, SessionRecord)
//   value(twin_key)                := the twin document (core/twin/twin.h Twin::serialize(),
//                                     JSON; written in the group commit)
//
// Big-endian in keys so that RocksDB's bytewise comparator orders numbers; little-endian in
// values (the machine order, never compared). An expiry_key exists only for references with a
// finite expiry, so the expiry pass visits exactly what has expired (seek to the start,
// stop at `now`). A message's refs_key lists what still points at it; the message, its
// refs_key and the last reference leave in the same WriteBatch.
//
// Format 3: a message appended with one destination whose reference has no expiry_key has no
// refs_key at all (a "sole" message): its one queue_key holds all the record would (endpoint,
// priority, size, expiry), so its append writes two keys instead of three and its release
// deletes two without reading anything (docs/store.md). Every message with several references
// keeps its refs_key. Format 2 stores (a refs_key for every message) are read as they are and
// marked format 3 when opened for writing; a format 2 hub refuses a format 3 store.
#include "store/keys.h"

#include <cstring>

namespace edgehub::store::keys {

namespace {

void putBe32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, 4);
}
void putBe64(std::string& out, uint64_t v) {
  putBe32(out, static_cast<uint32_t>(v >> 32));
  putBe32(out, static_cast<uint32_t>(v));
}
uint32_t getBe32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}
uint64_t getBe64(const char* p) { return (uint64_t{getBe32(p)} << 32) | getBe32(p + 4); }

void putLe64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 8);
}
void putLe32(std::string& out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 4);
}
uint64_t getLe64(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | u[i];
  return v;
}
uint32_t getLe32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | (uint32_t{u[1]} << 8) | (uint32_t{u[2]} << 16) | (uint32_t{u[3]} << 24);
}

constexpr uint64_t kSignFlip = uint64_t{1} << 63;
uint64_t orderedExpiry(int64_t ms) { return static_cast<uint64_t>(ms) ^ kSignFlip; }
int64_t expiryFromOrdered(uint64_t v) { return static_cast<int64_t>(v ^ kSignFlip); }

}  // namespace

void metaKey(std::string& out, std::string_view name) {
  out.clear();
  out.push_back(kMetaPrefix);
  out.append(name);
}

void endpointKey(std::string& out, std::string_view endpoint_name) {
  out.clear();
  out.push_back(kEndpointPrefix);
  out.append(endpoint_name);
}

void queueMetaKey(std::string& out, uint32_t endpoint_id, uint8_t priority) {
  out.clear();
  out.push_back(kQueueMetaPrefix);
  putBe32(out, endpoint_id);
  out.push_back(static_cast<char>(priority));
}

void messageKey(std::string& out, uint64_t sequence) {
  out.clear();
  out.push_back(kMessagePrefix);
  putBe64(out, sequence);
}

void refsKey(std::string& out, uint64_t sequence) {
  out.clear();
  out.push_back(kRefsPrefix);
  putBe64(out, sequence);
}

void queueKey(std::string& out, uint32_t endpoint_id, uint8_t priority, uint64_t sequence) {
  out.clear();
  out.push_back(kQueuePrefix);
  putBe32(out, endpoint_id);
  out.push_back(static_cast<char>(priority));
  putBe64(out, sequence);
}

void queueUpperBound(std::string& out, uint32_t endpoint_id, uint8_t priority) {
  // The key of the next (endpoint, priority) pair with sequence 0: every key of this queue
  // sorts before it. priority + 1 <= 11 never overflows a byte.
  queueKey(out, endpoint_id, static_cast<uint8_t>(priority + 1), 0);
}

void expiryKey(std::string& out, int64_t expiry_ms, uint64_t sequence, uint32_t endpoint_id,
               uint8_t priority) {
  out.clear();
  out.push_back(kExpiryPrefix);
  putBe64(out, orderedExpiry(expiry_ms));
  putBe64(out, sequence);
  putBe32(out, endpoint_id);
  out.push_back(static_cast<char>(priority));
}

void expiryBound(std::string& out, int64_t expiry_ms) {
  out.clear();
  out.push_back(kExpiryPrefix);
  putBe64(out, orderedExpiry(expiry_ms));
}

std::optional<QueueKey> parseQueueKey(std::string_view key) {
  if (key.size() != 14 || key[0] != kQueuePrefix) return std::nullopt;
  return QueueKey{getBe32(key.data() + 1), static_cast<uint8_t>(key[5]), getBe64(key.data() + 6)};
}

std::optional<uint64_t> parseMessageKey(std::string_view key) {
  if (key.size() != 9 || key[0] != kMessagePrefix) return std::nullopt;
  return getBe64(key.data() + 1);
}

std::optional<uint32_t> parseQueueMetaKey(std::string_view key, uint8_t* priority) {
  if (key.size() != 6 || key[0] != kQueueMetaPrefix) return std::nullopt;
  *priority = static_cast<uint8_t>(key[5]);
  return getBe32(key.data() + 1);
}

std::optional<std::string> parseEndpointKey(std::string_view key) {
  if (key.empty() || key[0] != kEndpointPrefix) return std::nullopt;
  return std::string(key.substr(1));
}

std::optional<ExpiryKey> parseExpiryKey(std::string_view key) {
  if (key.size() != 22 || key[0] != kExpiryPrefix) return std::nullopt;
  return ExpiryKey{expiryFromOrdered(getBe64(key.data() + 1)), getBe64(key.data() + 9),
                   getBe32(key.data() + 17), static_cast<uint8_t>(key[21])};
}

void encodeQueueEntry(std::string& out, const QueueEntry& entry) {
  out.clear();
  putLe64(out, static_cast<uint64_t>(entry.expiry_ms));
  putLe64(out, static_cast<uint64_t>(entry.enqueued_ms));
  putLe32(out, entry.size);
}

std::optional<QueueEntry> decodeQueueEntry(std::string_view value) {
  if (value.size() != 20) return std::nullopt;
  return QueueEntry{static_cast<int64_t>(getLe64(value.data())),
                    static_cast<int64_t>(getLe64(value.data() + 8)), getLe32(value.data() + 16)};
}

void encodeRefs(std::string& out, const RefsRecord& record) {
  out.clear();
  putLe32(out, record.size);
  out.push_back(static_cast<char>(record.refs.size()));
  for (const Ref& r : record.refs) {
    putLe32(out, r.endpoint_id);
    out.push_back(static_cast<char>(r.priority | (r.indexed ? 0x80 : 0)));
    putLe64(out, static_cast<uint64_t>(r.expiry_ms));
  }
}

bool decodeRefs(std::string_view value, RefsRecord& out) {
  if (value.size() < 5) return false;
  out.size = getLe32(value.data());
  const size_t n = static_cast<unsigned char>(value[4]);
  if (value.size() != 5 + n * 13) return false;
  out.refs.clear();
  const char* p = value.data() + 5;
  for (size_t i = 0; i < n; ++i, p += 13) {
    const auto flags = static_cast<uint8_t>(p[4]);
    out.refs.push_back(Ref{getLe32(p), static_cast<uint8_t>(flags & 0x7f), static_cast<int64_t>(getLe64(p + 5)),
                           (flags & 0x80) != 0});
  }
  return true;
}

void encodeQueueMeta(std::string& out, const QueueMeta& meta) {
  out.clear();
  putLe64(out, meta.count);
  putLe64(out, meta.bytes);
  putLe64(out, meta.checkpoint);
  putLe64(out, meta.tail);
  putLe64(out, static_cast<uint64_t>(meta.max_expiry_ms));
}

std::optional<QueueMeta> decodeQueueMeta(std::string_view value) {
  if (value.size() != 40) return std::nullopt;
  return QueueMeta{getLe64(value.data()), getLe64(value.data() + 8), getLe64(value.data() + 16),
                   getLe64(value.data() + 24), static_cast<int64_t>(getLe64(value.data() + 32))};
}

void encodeTotals(std::string& out, const Totals& totals) {
  out.clear();
  putLe64(out, totals.messages);
  putLe64(out, totals.bytes);
  putLe64(out, totals.dropped_ttl);
  putLe64(out, totals.dropped_full);
}

std::optional<Totals> decodeTotals(std::string_view value) {
  if (value.size() != 32) return std::nullopt;
  return Totals{getLe64(value.data()), getLe64(value.data() + 8), getLe64(value.data() + 16),
                getLe64(value.data() + 24)};
}

void encodeFixed32(std::string& out, uint32_t v) {
  out.clear();
  putLe32(out, v);
}

std::optional<uint32_t> decodeFixed32(std::string_view value) {
  if (value.size() != 4) return std::nullopt;
  return getLe32(value.data());
}

}  // namespace edgehub::store::keys
