// Fuzz-style robustness test: random and mutated conditions never crash or hang the parser and
// compiler; each yields a compiled route or an error, and compiled ones evaluate.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "routing/eval_context.h"
#include "routing/parser.h"
#include "tests/routing/test_util.h"

namespace edgehub::routing {
namespace {

// Deterministic xorshift PRNG: the same inputs on every run.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }

 private:
  uint64_t s_;
};

const std::vector<std::string> kPieces = {
    "key1", "$body.temp", "$body.arr[1]", "{$sys4}", "{ $body.obj.n }", "'str'", "\"dq\"", "'\\u0041'",
    "3", "-2.5", "0x1F", "1e5", "e5", "true", "false", "null", "undefined", "(", ")", ",", " AND ",
    " OR ", "NOT ", " = ", " <> ", " < ", " >= ", " + ", " - ", " * ", " / ", " % ", " || ", " ?? ",
    "as_number(", "lower(", "concat(", "substring(", "is_defined(", "twin_change_includes(", "/* c */",
    "/*", "*/", "@", ";", "[", "]", "'", "\"", "\\", "\n", "é", "😀", "$", "INTO", "WHERE", " ",
};

TEST(FuzzTest, RandomConditionsNeverCrash) {
  Rng rng(0x5eed1234abcdULL);
  testing::TestMessage msg;
  msg.prop("key1", "value1").prop("sys4", "x").json("{\"temp\":21.5,\"arr\":[1,2],\"obj\":{\"n\":5}}");
  const MessageView view = msg.view();
  EvalContext ctx;
  int compiled = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string cond;
    const size_t n = 1 + rng.below(12);
    for (size_t k = 0; k < n; ++k) cond += kPieces[rng.below(kPieces.size())];
    const std::string source = rng.below(4) == 0 ? "/twinChangeNotifications" : "/*";
    auto r = compileRoute("FROM " + source + " WHERE " + cond + " INTO $upstream");
    if (r.isOk()) {
      ++compiled;
      ctx.beginMessage(view);
      const TriState t = r->condition.evaluate(view, ctx);
      EXPECT_TRUE(t == TriState::kTrue || t == TriState::kFalse || t == TriState::kUndefined);
    } else {
      EXPECT_EQ(r.status().code(), core::StatusCode::kInvalidArgument);
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  EXPECT_GT(compiled, 100);  // the generator does produce valid conditions
}

TEST(FuzzTest, MutatedRoutesNeverCrash) {
  const std::vector<std::string> seeds = {
      "FROM /messages/modules/m1/outputs/* WHERE as_number(temp) > 30 AND $body.a[0] = 'x' INTO BrokeredEndpoint(\"/modules/f/inputs/i\")",
      "SELECT * FROM /twinChangeNotifications WHERE twin_change_includes(properties.reported.x) INTO $upstream",
      "FROM /* WHERE (key1 ?? 'd') = 'v' OR NOT is_null($body.n) /* c */ INTO $upstream",
  };
  Rng rng(42);
  int ok = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string s = seeds[rng.below(seeds.size())];
    const size_t edits = 1 + rng.below(4);
    for (size_t e = 0; e < edits && !s.empty(); ++e) {
      const size_t pos = rng.below(s.size());
      switch (rng.below(4)) {
        case 0: s.erase(pos, 1 + rng.below(3)); break;
        case 1: s.insert(pos, 1, static_cast<char>(rng.below(256))); break;
        case 2: s[pos] = static_cast<char>(rng.below(128)); break;
        default: s.insert(pos, kPieces[rng.below(kPieces.size())]); break;
      }
    }
    RouteError err;
    auto r = compileRoute(s, &err);
    if (r.isOk()) {
      ++ok;
    } else {
      EXPECT_GE(err.line, 1u);
      EXPECT_GE(err.column, 1u);
      EXPECT_FALSE(err.reason.empty());
    }
  }
  EXPECT_GT(ok, 0);
}

TEST(FuzzTest, PathologicalNestingIsAnErrorNotACrash) {
  for (const std::string unit : {"(", "NOT ", "- ", "lower(", "{", "-(", "concat('a', "}) {
    std::string cond;
    while (cond.size() < 65536) cond += unit;
    RouteError err;
    auto r = compileRoute("FROM /* WHERE " + cond + " INTO $upstream", &err);
    EXPECT_FALSE(r.isOk()) << unit;
  }
}

}  // namespace
}  // namespace edgehub::routing
