#include "core/loop/host_lookup.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include "core/loop/timer.h"
#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using testing::makeLoop;

// Runs the loop until pred holds or 10 s pass; a 5 ms timer keeps runOnce() from blocking.
bool runUntil(Loop& loop, const std::function<bool()>& pred) {
  Timer wake(loop, [] {});
  wake.enable(std::chrono::milliseconds(5), std::chrono::milliseconds(5));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    loop.runOnce();
  }
  return true;
}

TEST(HostLookupTest, LocalhostResolvesAndTheAnswerComesOnTheLoopThread) {
  LoopPtr loop = makeLoop();
  std::optional<Status> result;
  std::thread::id answered_on;
  auto lookup = HostLookup::start(*loop, "localhost", {}, [&](const Status& s) {
    result = s;
    answered_on = std::this_thread::get_id();
  });
  ASSERT_TRUE(lookup.isOk()) << lookup.status().toString();
  ASSERT_TRUE(runUntil(*loop, [&] { return result.has_value(); }));
  EXPECT_TRUE(result->isOk()) << result->toString();
  EXPECT_EQ(answered_on, std::this_thread::get_id());
  lookup->reset();
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(HostLookupTest, TheResolversErrorIsReported) {
  LoopPtr loop = makeLoop();
  std::optional<Status> result;
  auto lookup = HostLookup::start(
      *loop, "upstream.example", [](const std::string& host) { return unavailable("cannot resolve '" + host + "': test"); },
      [&](const Status& s) { result = s; });
  ASSERT_TRUE(lookup.isOk());
  ASSERT_TRUE(runUntil(*loop, [&] { return result.has_value(); }));
  EXPECT_EQ(result->code(), StatusCode::kUnavailable);
  EXPECT_EQ(result->message(), "cannot resolve 'upstream.example': test");
  lookup->reset();
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(HostLookupTest, GetaddrinfoNamesTheHostItCannotResolve) {
  // RFC 6761: .invalid never resolves (without network access the resolver fails sooner still).
  const Status s = HostLookup::resolveWithGetaddrinfo("no-such-host.invalid");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("'no-such-host.invalid'"), std::string_view::npos) << s.toString();
}

// The owner gives up while the resolver still blocks (a DNS timeout): the loop runs on, closes,
// and the late answer goes nowhere.
TEST(HostLookupTest, AnAbandonedLookupNeverAnswersAndDoesNotHoldTheLoop) {
  LoopPtr loop = makeLoop();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto thread_done = std::make_shared<int>(0);
  std::weak_ptr<int> thread_alive = thread_done;
  bool answered = false;
  auto lookup = HostLookup::start(
      *loop, "slow.example",
      [released, keep = std::move(thread_done)](const std::string&) {
        released.wait();
        return Status::ok();
      },
      [&](const Status&) { answered = true; });
  ASSERT_TRUE(lookup.isOk());
  {
    bool ticked = false;
    Timer tick(*loop, [&] { ticked = true; });
    tick.enable(std::chrono::milliseconds(20));
    ASSERT_TRUE(runUntil(*loop, [&] { return ticked; }));  // the loop is not held by the lookup
  }
  lookup->reset();
  release.set_value();
  // The thread ends (its resolve function, and with it `keep`, are gone) after deciding not to post.
  ASSERT_TRUE(runUntil(*loop, [&] { return thread_alive.expired(); }));
  for (int i = 0; i < 3; ++i) loop->runNoWait();
  EXPECT_FALSE(answered);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(HostLookupTest, IpLiteralsNeedNoLookup) {
  EXPECT_TRUE(isIpLiteral("127.0.0.1"));
  EXPECT_TRUE(isIpLiteral("::1"));
  EXPECT_TRUE(isIpLiteral("2001:db8::7"));
  EXPECT_FALSE(isIpLiteral("localhost"));
  EXPECT_FALSE(isIpLiteral("myhub.azure-devices.net"));
  EXPECT_FALSE(isIpLiteral("127.0.0.1.nip.io"));
  EXPECT_FALSE(isIpLiteral(""));
}

}  // namespace
}  // namespace edgehub::core
