#include "core/loop/tcp.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/core/loop/loop_test_util.h"

namespace edgehub::core {
namespace {

using testing::makeLoop;

ConstBytes bytesOf(std::string_view s) {
  return ConstBytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Records everything; optional hooks let a test react.
class Recorder : public TcpConnectionCallbacks {
 public:
  void onConnected(const Status& status) override {
    connected_status = status;
    ++connected_calls;
    if (on_connected) on_connected();
  }
  void onData(ConstBytes data) override {
    received.append(reinterpret_cast<const char*>(data.data()), data.size());
    if (on_data) on_data();
  }
  void onWriteDone() override {
    ++write_done_calls;
    if (on_write_done) on_write_done();
  }
  void onClosed(const Status& reason) override {
    closed_reason = reason;
    ++closed_calls;
    if (on_closed) on_closed();
  }

  Status connected_status;
  int connected_calls = 0;
  std::string received;
  int write_done_calls = 0;
  Status closed_reason;
  int closed_calls = 0;
  MoveOnlyFn on_connected, on_data, on_write_done, on_closed;
};

class Acceptor : public TcpListenerCallbacks {
 public:
  void onAccept(TcpConnectionPtr connection) override {
    accepted.push_back(std::move(connection));
    if (on_accept) on_accept();
  }
  void onAcceptError(const Status& status) override { ADD_FAILURE() << status.toString(); }
  std::vector<TcpConnectionPtr> accepted;
  MoveOnlyFn on_accept;
};

TEST(TcpTest, ListenerOnPortZeroReportsBoundPort) {
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Result<TcpListenerPtr> listener = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(listener.isOk()) << listener.status().toString();
    EXPECT_EQ(listener.value()->localAddress().host, "127.0.0.1");
    EXPECT_NE(listener.value()->localAddress().port, 0);
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(TcpTest, BindingABusyPortFails) {
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Result<TcpListenerPtr> first = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(first.isOk());
    Result<TcpListenerPtr> second =
        TcpListener::create(*loop, {"127.0.0.1", first.value()->localAddress().port}, acceptor);
    ASSERT_FALSE(second.isOk());
    EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists) << second.status().toString();
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(TcpTest, NonNumericHostIsRejected) {
  LoopPtr loop = makeLoop();
  Acceptor acceptor;
  Result<TcpListenerPtr> listener = TcpListener::create(*loop, {"localhost", 0}, acceptor);
  ASSERT_FALSE(listener.isOk());
  EXPECT_EQ(listener.status().code(), StatusCode::kInvalidArgument);
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// Client connects, sends "ping" as two gathered buffers; server echoes "pong:<data>"; client
// closes after reading; server sees a clean EOF.
TEST(TcpTest, ClientAndServerExchangeBytes) {
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Recorder server;
    Recorder client;
    Result<TcpListenerPtr> listener = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(listener.isOk()) << listener.status().toString();

    acceptor.on_accept = [&] {
      TcpConnection& conn = *acceptor.accepted.back();
      EXPECT_EQ(conn.peerAddress().host, "127.0.0.1");
      conn.setCallbacks(server);
      EXPECT_TRUE(conn.startReading().isOk());
    };
    server.on_data = [&] {
      if (server.received.size() < 4) return;
      const ConstBytes parts[] = {bytesOf("pong:"), bytesOf(server.received)};
      EXPECT_TRUE(acceptor.accepted.back()->write(parts).isOk());
    };
    server.on_closed = [&] { loop->stop(); };

    Result<TcpConnectionPtr> conn =
        TcpConnection::connect(*loop, listener.value()->localAddress(), client);
    ASSERT_TRUE(conn.isOk()) << conn.status().toString();
    TcpConnection& c = *conn.value();
    EXPECT_TRUE(c.write(bytesOf("early")).code() == StatusCode::kFailedPrecondition);
    client.on_connected = [&] {
      ASSERT_TRUE(client.connected_status.isOk()) << client.connected_status.toString();
      EXPECT_TRUE(c.setNoDelay(true).isOk());
      EXPECT_TRUE(c.startReading().isOk());
      const ConstBytes parts[] = {bytesOf("pi"), bytesOf("ng")};
      EXPECT_TRUE(c.write(parts).isOk());
    };
    client.on_data = [&] {
      if (client.received.size() == 9) c.close();
    };
    loop->run();

    EXPECT_EQ(client.connected_calls, 1);
    EXPECT_EQ(server.received, "ping");
    EXPECT_EQ(client.received, "pong:ping");
    EXPECT_EQ(client.closed_calls, 1);
    EXPECT_TRUE(client.closed_reason.isOk());
    EXPECT_EQ(server.closed_calls, 1);
    EXPECT_TRUE(server.closed_reason.isOk()) << server.closed_reason.toString();  // Clean EOF.
    EXPECT_TRUE(c.write(bytesOf("late")).code() == StatusCode::kFailedPrecondition);
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(TcpTest, ConnectToClosedPortReportsError) {
  LoopPtr loop = makeLoop();
  {
    uint16_t port = 0;
    {
      // Find a port that is free right now by binding and closing a listener.
      Acceptor acceptor;
      Result<TcpListenerPtr> l = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
      ASSERT_TRUE(l.isOk());
      port = l.value()->localAddress().port;
    }
    loop->runNoWait();  // Let the listener's close finish.
    Recorder client;
    client.on_closed = [&] { loop->stop(); };
    Result<TcpConnectionPtr> conn = TcpConnection::connect(*loop, {"127.0.0.1", port}, client);
    ASSERT_TRUE(conn.isOk());
    loop->run();
    EXPECT_EQ(client.connected_calls, 1);
    EXPECT_FALSE(client.connected_status.isOk());
    EXPECT_EQ(client.connected_status.code(), StatusCode::kUnavailable)
        << client.connected_status.toString();
    EXPECT_EQ(client.closed_calls, 1);
    EXPECT_FALSE(client.closed_reason.isOk());
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// The server writes far more than the socket buffers hold while the client is not reading, so
// uv_try_write is partial and the pooled uv_write_t path must carry the rest, in order; then the
// client reads everything and onWriteDone fires once the backlog drains.
TEST(TcpTest, LargeWriteFallsBackToQueuedWriteAndPreservesOrder) {
  constexpr std::size_t kChunk = 256 * 1024;
  constexpr int kChunks = 32;  // 8 MiB: well above loopback socket buffers.
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Recorder server;
    Recorder client;
    Result<TcpListenerPtr> listener = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(listener.isOk());
    std::size_t max_buffered = 0;
    acceptor.on_accept = [&] {
      TcpConnection& conn = *acceptor.accepted.back();
      conn.setCallbacks(server);
      std::vector<uint8_t> chunk(kChunk);
      for (int i = 0; i < kChunks; ++i) {
        for (std::size_t j = 0; j < kChunk; ++j) chunk[j] = static_cast<uint8_t>((i * 7 + j) % 251);
        ASSERT_TRUE(conn.write(ConstBytes(chunk)).isOk());
        max_buffered = std::max(max_buffered, conn.bufferedBytes());
      }
    };
    Result<TcpConnectionPtr> conn =
        TcpConnection::connect(*loop, listener.value()->localAddress(), client);
    ASSERT_TRUE(conn.isOk());
    client.on_connected = [&] { EXPECT_TRUE(conn.value()->startReading().isOk()); };
    client.on_data = [&] {
      if (client.received.size() == kChunk * kChunks) loop->stop();
    };
    loop->run();
    EXPECT_GT(max_buffered, 0u) << "test did not exercise the fallback path";
    EXPECT_GE(server.write_done_calls, 1);
    EXPECT_EQ(acceptor.accepted.back()->bufferedBytes(), 0u);
    ASSERT_EQ(client.received.size(), kChunk * kChunks);
    bool ok = true;
    for (int i = 0; i < kChunks && ok; ++i) {
      for (std::size_t j = 0; j < kChunk; ++j) {
        if (static_cast<uint8_t>(client.received[i * kChunk + j]) !=
            static_cast<uint8_t>((i * 7 + j) % 251)) {
          ok = false;
          break;
        }
      }
    }
    EXPECT_TRUE(ok) << "bytes arrived corrupted or out of order";
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// Destroying a connection while a queued write is in flight: the write completes with
// UV_ECANCELED after the owner is gone; the request must be freed without touching the owner.
TEST(TcpTest, DestroyConnectionWithWriteInFlight) {
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Recorder server;
    Recorder client;
    Result<TcpListenerPtr> listener = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(listener.isOk());
    std::size_t buffered = 0;
    acceptor.on_accept = [&] {
      TcpConnection& conn = *acceptor.accepted.back();
      conn.setCallbacks(server);
      std::vector<uint8_t> big(8 * 1024 * 1024, 0xAB);
      ASSERT_TRUE(conn.write(ConstBytes(big)).isOk());
      buffered = conn.bufferedBytes();
      acceptor.accepted.clear();  // Destroy with the write pending.
      loop->stop();
    };
    Result<TcpConnectionPtr> conn =
        TcpConnection::connect(*loop, listener.value()->localAddress(), client);
    ASSERT_TRUE(conn.isOk());
    loop->run();
    EXPECT_GT(buffered, 0u) << "test did not have a write in flight";
    EXPECT_EQ(server.closed_calls, 0) << "no callback after destruction";
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// close() with a write in flight: the cancelled write is absorbed, onClosed fires once, OK.
TEST(TcpTest, CloseWithWriteInFlightReportsClosedOnce) {
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Recorder server;
    Recorder client;
    Result<TcpListenerPtr> listener = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(listener.isOk());
    acceptor.on_accept = [&] {
      TcpConnection& conn = *acceptor.accepted.back();
      conn.setCallbacks(server);
      std::vector<uint8_t> big(8 * 1024 * 1024, 0xCD);
      ASSERT_TRUE(conn.write(ConstBytes(big)).isOk());
      EXPECT_GT(conn.bufferedBytes(), 0u);
      conn.close();
      conn.close();  // Idempotent.
      EXPECT_TRUE(conn.isClosing());
      EXPECT_EQ(server.closed_calls, 0) << "onClosed is never re-entrant";
    };
    server.on_closed = [&] {
      // Destroying the connection from inside onClosed is allowed.
      acceptor.accepted.clear();
      loop->stop();
    };
    Result<TcpConnectionPtr> conn =
        TcpConnection::connect(*loop, listener.value()->localAddress(), client);
    ASSERT_TRUE(conn.isOk());
    loop->run();
    EXPECT_EQ(server.closed_calls, 1);
    EXPECT_TRUE(server.closed_reason.isOk());
    EXPECT_EQ(server.write_done_calls, 0);
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

// A connection handed to deferredDelete from inside its own onData.
TEST(TcpTest, DeferredDeleteFromOwnCallback) {
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Recorder server;
    Recorder client;
    Result<TcpListenerPtr> listener = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(listener.isOk());
    acceptor.on_accept = [&] {
      acceptor.accepted.back()->setCallbacks(server);
      EXPECT_TRUE(acceptor.accepted.back()->startReading().isOk());
    };
    server.on_data = [&] {
      loop->deferredDelete(std::move(acceptor.accepted.back()));
      acceptor.accepted.pop_back();
    };
    client.on_connected = [&] { EXPECT_TRUE(true); };
    client.on_closed = [&] { loop->stop(); };  // Server side vanished: client sees EOF.
    Result<TcpConnectionPtr> conn =
        TcpConnection::connect(*loop, listener.value()->localAddress(), client);
    ASSERT_TRUE(conn.isOk());
    client.on_connected = [&] {
      EXPECT_TRUE(conn.value()->startReading().isOk());
      EXPECT_TRUE(conn.value()->write(bytesOf("bye")).isOk());
    };
    loop->run();
    EXPECT_EQ(server.received, "bye");
    EXPECT_EQ(client.closed_calls, 1);
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

}  // namespace
}  // namespace edgehub::core

namespace edgehub::core {
namespace {

// The server side of a connection is released (as the MQTT server does when it moves a
// connection to its identity's home loop) and adopted again: the peer notices nothing, and
// bytes it sent in between are read by the new owner.
TEST(TcpTest, ReleasedSocketIsAdoptedWithoutThePeerNoticing) {
  LoopPtr loop = makeLoop();
  {
    Acceptor acceptor;
    Recorder first;
    Recorder second;
    Recorder client;
    auto listener = TcpListener::create(*loop, {"127.0.0.1", 0}, acceptor);
    ASSERT_TRUE(listener.isOk());
    TcpConnectionPtr adopted;
    acceptor.on_accept = [&] {
      acceptor.accepted.back()->setCallbacks(first);
      EXPECT_TRUE(acceptor.accepted.back()->startReading().isOk());
    };
    first.on_data = [&] {
      TcpConnection& conn = *acceptor.accepted.back();
      auto fd = conn.releaseSocket();
      ASSERT_TRUE(fd.isOk()) << fd.status().toString();
      EXPECT_TRUE(conn.releaseSocket().status().code() == StatusCode::kFailedPrecondition);
      auto again = TcpConnection::adopt(*loop, fd.value());
      ASSERT_TRUE(again.isOk());
      adopted = std::move(again).value();
      adopted->setCallbacks(second);
      EXPECT_TRUE(adopted->startReading().isOk());
      EXPECT_TRUE(adopted->write(bytesOf("adopted")).isOk());
    };
    auto conn = TcpConnection::connect(*loop, listener.value()->localAddress(), client);
    ASSERT_TRUE(conn.isOk());
    client.on_connected = [&] {
      EXPECT_TRUE(conn.value()->startReading().isOk());
      EXPECT_TRUE(conn.value()->write(bytesOf("one")).isOk());
    };
    client.on_data = [&] {
      if (client.received == "adopted") {
        EXPECT_TRUE(conn.value()->write(bytesOf("two")).isOk());
      }
    };
    second.on_data = [&] {
      if (second.received == "two") loop->stop();
    };
    loop->run();
    EXPECT_EQ(first.received, "one");
    EXPECT_EQ(first.closed_calls, 0) << "a released connection reports nothing";
    EXPECT_EQ(second.received, "two");
    EXPECT_EQ(client.closed_calls, 0) << "the peer saw no close";
    conn.value().reset();
    adopted.reset();
    acceptor.accepted.clear();
  }
  EXPECT_LOOP_CLOSES_CLEANLY(loop);
}

TEST(TcpTest, SocketAddressesParseAndFormat) {
  auto v4 = parseSocketAddress("127.0.0.1:1883");
  ASSERT_TRUE(v4.isOk());
  EXPECT_EQ(v4.value().port, 1883);
  EXPECT_EQ(formatSocketAddress(v4.value()), "127.0.0.1:1883");
  auto v6 = parseSocketAddress("[::1]:0");
  ASSERT_TRUE(v6.isOk());
  EXPECT_EQ(formatSocketAddress(v6.value()), "[::1]:0");
  EXPECT_FALSE(parseSocketAddress("localhost:1883").isOk()) << "no DNS";
  EXPECT_FALSE(parseSocketAddress("127.0.0.1:99999").isOk());
  EXPECT_FALSE(parseSocketAddress("127.0.0.1").isOk());
}

}  // namespace
}  // namespace edgehub::core
