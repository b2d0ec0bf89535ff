#include "store/keys.h"

#include <gtest/gtest.h>

#include <limits>
#include <set>

namespace edgehub::store::keys {
namespace {

TEST(StoreKeysTest, QueueKeysOrderBySequenceWithinAQueue) {
  std::string a, b, ub;
  queueKey(a, 7, 3, 255);
  queueKey(b, 7, 3, 256);
  EXPECT_LT(a, b);  // big-endian: numeric order is byte order
  queueUpperBound(ub, 7, 3);
  queueKey(b, 7, 3, std::numeric_limits<uint64_t>::max());
  EXPECT_LT(b, ub);
  queueKey(b, 7, 4, 0);
  EXPECT_EQ(b, ub);
  auto parsed = parseQueueKey(a);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->endpoint_id, 7u);
  EXPECT_EQ(parsed->priority, 3);
  EXPECT_EQ(parsed->sequence, 255u);
  EXPECT_FALSE(parseQueueKey("q123"));
}

TEST(StoreKeysTest, ExpiryKeysOrderBySignedTimeThenSequence) {
  std::string neg, zero, pos, pos2, bound;
  expiryKey(neg, -5, 9, 1, 1);
  expiryKey(zero, 0, 1, 1, 1);
  expiryKey(pos, 1000, 1, 1, 1);
  expiryKey(pos2, 1000, 2, 0, 0);
  EXPECT_LT(neg, zero);
  EXPECT_LT(zero, pos);
  EXPECT_LT(pos, pos2);
  expiryBound(bound, 1000);
  EXPECT_LT(zero, bound);
  EXPECT_LE(bound, pos);
  auto x = parseExpiryKey(neg);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->expiry_ms, -5);
  EXPECT_EQ(x->sequence, 9u);
}

TEST(StoreKeysTest, KindsDoNotShareAPrefix) {
  std::string m, r, q, x, meta, e, qm;
  messageKey(m, 1);
  refsKey(r, 1);
  queueKey(q, 1, 1, 1);
  expiryKey(x, 1, 1, 1, 1);
  metaKey(meta, kMetaFormat);
  endpointKey(e, "$upstream");
  queueMetaKey(qm, 1, 1);
  std::set<char> prefixes{m[0], r[0], q[0], x[0], meta[0], e[0], qm[0]};
  EXPECT_EQ(prefixes.size(), 7u);
  EXPECT_EQ(parseMessageKey(m), 1u);
  EXPECT_EQ(parseEndpointKey(e), "$upstream");
}

TEST(StoreKeysTest, ValuesRoundTrip) {
  std::string v;
  encodeQueueEntry(v, QueueEntry{-1, 1'700'000'000'000, 77});
  auto e = decodeQueueEntry(v);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->expiry_ms, -1);
  EXPECT_EQ(e->enqueued_ms, 1'700'000'000'000);
  EXPECT_EQ(e->size, 77u);

  RefsRecord rec{123, {{1, 0, std::numeric_limits<int64_t>::max()}, {9, 10, 42, true}}};
  encodeRefs(v, rec);
  RefsRecord back;
  ASSERT_TRUE(decodeRefs(v, back));
  EXPECT_EQ(back.size, 123u);
  ASSERT_EQ(back.refs.size(), 2u);
  EXPECT_EQ(back.refs[1].endpoint_id, 9u);
  EXPECT_EQ(back.refs[1].priority, 10);
  EXPECT_EQ(back.refs[1].expiry_ms, 42);
  EXPECT_TRUE(back.refs[1].indexed) << "the flag shares the priority byte";
  EXPECT_FALSE(back.refs[0].indexed);
  EXPECT_FALSE(decodeRefs(v.substr(0, v.size() - 1), back));

  encodeQueueMeta(v, QueueMeta{1, 2, 3, 4, -5});
  auto m = decodeQueueMeta(v);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->checkpoint, 3u);
  EXPECT_EQ(m->tail, 4u);
  EXPECT_EQ(m->max_expiry_ms, -5);
  EXPECT_FALSE(decodeQueueMeta(v.substr(0, 32))) << "the version-1 length is not accepted";
  encodeTotals(v, Totals{5, 6, 7, 8});
  EXPECT_EQ(decodeTotals(v)->bytes, 6u);
  EXPECT_EQ(decodeTotals(v)->dropped_full, 8u);
  EXPECT_FALSE(decodeTotals("short"));
}

}  // namespace
}  // namespace edgehub::store::keys
