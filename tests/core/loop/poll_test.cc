#include "core/loop/poll.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using testing::makeLoop;

class Pipe {
 public:
  Pipe() { EXPECT_EQ(::pipe(fds_), 0); }
  ~Pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int readFd() const { return fds_[0]; }
  int writeFd() const { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

class RecordingPoll : public PollCallbacks {
 public:
  explicit RecordingPoll(Loop& loop, int fd) : loop_(loop), fd_(fd) {}
  void onPollReady(uint32_t events, const Status& status) override {
    EXPECT_TRUE(status.isOk()) << status.toString();
    events_ |= events;
    if (events & kPollReadable) {
      char c = 0;
      EXPECT_EQ(::read(fd_, &c, 1), 1);
      byte_ = c;
      loop_.stop();
    }
  }
  uint32_t events_ = 0;
  char byte_ = 0;

 private:
  Loop& loop_;
  int fd_;
};

TEST(PollTest, ReadableWhenPipeHasData) {
  LoopPtr loop = makeLoop();
  {
    Pipe pipe;
    RecordingPoll callbacks(*loop, pipe.readFd());
    Result<PollPtr> poll = Poll::create(*loop, pipe.readFd(), callbacks);
    ASSERT_TRUE(poll.isOk()) << poll.status().toString();
    ASSERT_TRUE(poll.value()->start(kPollReadable).isOk());
    ASSERT_EQ(::write(pipe.writeFd(), "x", 1), 1);
    loop->run();
    EXPECT_TRUE(callbacks.events_ & kPollReadable);
    EXPECT_EQ(callbacks.byte_, 'x');
    poll.value().reset();  // Before the fds close (Pipe's destructor).
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(PollTest, WritableEndIsWritable) {
  LoopPtr loop = makeLoop();
  {
    Pipe pipe;
    struct Cb : PollCallbacks {
      Loop* loop;
      uint32_t events = 0;
      void onPollReady(uint32_t ev, const Status& status) override {
        EXPECT_TRUE(status.isOk());
        events = ev;
        loop->stop();
      }
    } cb;
    cb.loop = loop.get();
    Result<PollPtr> poll = Poll::create(*loop, pipe.writeFd(), cb);
    ASSERT_TRUE(poll.isOk());
    ASSERT_TRUE(poll.value()->start(kPollWritable).isOk());
    loop->run();
    EXPECT_EQ(cb.events, static_cast<uint32_t>(kPollWritable));
    poll.value().reset();
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// Stopping/destroying a Poll whose fd is ready must not deliver the pending event.
TEST(PollTest, DestroyWhileReadyDeliversNothing) {
  LoopPtr loop = makeLoop();
  {
    Pipe pipe;
    RecordingPoll callbacks(*loop, pipe.readFd());
    Result<PollPtr> poll = Poll::create(*loop, pipe.readFd(), callbacks);
    ASSERT_TRUE(poll.isOk());
    ASSERT_TRUE(poll.value()->start(kPollReadable).isOk());
    ASSERT_EQ(::write(pipe.writeFd(), "x", 1), 1);
    poll.value().reset();
    loop->runNoWait();
    EXPECT_EQ(callbacks.events_, 0u);
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(PollTest, InvalidFdFails) {
  LoopPtr loop = makeLoop();
  struct Cb : PollCallbacks {
    void onPollReady(uint32_t, const Status&) override {}
  } cb;
  Result<PollPtr> poll = Poll::create(*loop, -1, cb);
  EXPECT_FALSE(poll.isOk());
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core
