#include "transports/tls/tls_session.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "tests/transports/tls/tls_test_util.h"
#include "transports/tls/dev_certs.h"
#include "transports/tls/tls_context.h"

namespace edgehub::transports::tls {
namespace {

using core::StatusCode;
using testing::bytesOf;
using testing::pumpHandshake;
using testing::TempDir;
using testing::TestClient;

// Counts the TLS records in a ciphertext stream (5-byte header: type, version, length).
size_t countRecords(const std::vector<uint8_t>& bytes) {
  size_t count = 0;
  size_t at = 0;
  while (at + 5 <= bytes.size()) {
    const size_t length = (size_t{bytes[at + 3]} << 8) | bytes[at + 4];
    at += 5 + length;
    ++count;
  }
  return at == bytes.size() ? count : 0;
}

std::vector<uint8_t> pattern(size_t size) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(i * 31 + (i >> 8));
  return out;
}

class TlsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = ensureDevCertificates(dir_.path(), {});
    ASSERT_TRUE(certs.isOk()) << certs.status().toString();
    certs_ = *certs;
    auto context = TlsServerContext::create(
        TlsServerConfig{certs_.server_cert_chain_path, certs_.server_key_path});
    ASSERT_TRUE(context.isOk()) << context.status().toString();
    context_ = *context;
  }

  // A completed handshake with a client checking "localhost".
  void connect(TestClient& client, TlsSession& server) {
    std::vector<uint8_t> plain;
    ASSERT_TRUE(pumpHandshake(client, server, plain).isOk());
    ASSERT_TRUE(client.handshakeDone());
    ASSERT_TRUE(server.handshakeComplete());
    ASSERT_TRUE(plain.empty());
  }

  // Server -> client: everything the client decrypts from `ciphertext`.
  static std::vector<uint8_t> clientReceives(TestClient& client,
                                             const std::vector<uint8_t>& ciphertext) {
    client.feed(ciphertext);
    return client.readAll();
  }

  TempDir dir_;
  DevCertificates certs_;
  TlsServerContextSharedPtr context_;
};

TEST_F(TlsSessionTest, HandshakeVerifiesDevCertificateForLocalhost) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  EXPECT_FALSE(server.handshakeComplete());
  EXPECT_EQ(server.protocolVersion(), "");
  connect(client, server);
  EXPECT_EQ(client.verifyResult(), X509_V_OK);
  EXPECT_EQ(server.protocolVersion(), "TLSv1.3");
  EXPECT_FALSE(server.cipherName().empty());
  EXPECT_FALSE(server.wantsClose());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsSessionTest, HandshakeVerifiesDevCertificateForLoopbackIp) {
  TestClient client(certs_.ca_path, "127.0.0.1", true);
  TlsSession server(context_);
  connect(client, server);
  EXPECT_EQ(client.verifyResult(), X509_V_OK);
}

TEST_F(TlsSessionTest, ClientRejectsNameNotInCertificate) {
  // Proves the client's hostname check is live, so the two tests above mean something.
  TestClient client(certs_.ca_path, "not-this-hub.example.com", false);
  TlsSession server(context_);
  std::vector<uint8_t> plain;
  (void)pumpHandshake(client, server, plain);
  EXPECT_FALSE(client.handshakeDone());
  EXPECT_EQ(client.verifyResult(), X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_F(TlsSessionTest, Tls12ClientIsAccepted) {
  TestClient client(certs_.ca_path, "localhost", false, TLS1_2_VERSION);
  TlsSession server(context_);
  connect(client, server);
  EXPECT_EQ(server.protocolVersion(), "TLSv1.2");
  EXPECT_EQ(std::string(SSL_get_cipher_name(client.ssl())), server.cipherName());
  EXPECT_EQ(SSL_get_current_compression(client.ssl()), nullptr);
}

TEST_F(TlsSessionTest, ApplicationDataBothWays) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  connect(client, server);

  client.write(bytesOf("CONNECT packet"));
  std::vector<uint8_t> plain, out;
  ASSERT_TRUE(server.receive(client.takeOutput(), plain, out).isOk());
  EXPECT_EQ(plain, bytesOf("CONNECT packet"));

  const std::vector<uint8_t> header = bytesOf("PUBLISH header|");
  const std::vector<uint8_t> payload = bytesOf("payload");
  const std::span<const uint8_t> parts[] = {header, payload};
  std::vector<uint8_t> ciphertext;
  ASSERT_TRUE(server.send(parts, ciphertext).isOk());
  EXPECT_EQ(countRecords(ciphertext), 1u) << "header and payload share one record";
  EXPECT_EQ(clientReceives(client, ciphertext), bytesOf("PUBLISH header|payload"));
}

TEST_F(TlsSessionTest, ManySmallBuffersAreCoalescedIntoOneRecord) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  connect(client, server);
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<std::span<const uint8_t>> parts;
  std::vector<uint8_t> expected;
  for (int i = 0; i < 200; ++i) buffers.push_back(bytesOf("packet" + std::to_string(i) + ";"));
  for (const auto& b : buffers) {
    parts.emplace_back(b);
    expected.insert(expected.end(), b.begin(), b.end());
  }
  ASSERT_LT(expected.size(), TlsSession::kMaxRecordPlaintext);
  std::vector<uint8_t> ciphertext;
  ASSERT_TRUE(server.send(parts, ciphertext).isOk());
  EXPECT_EQ(countRecords(ciphertext), 1u);
  EXPECT_EQ(clientReceives(client, ciphertext), expected);
}

TEST_F(TlsSessionTest, LargeMessagesBothWays) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  connect(client, server);
  const std::vector<uint8_t> big = pattern(300 * 1024);

  // Client -> server: 300 KiB arrives whole.
  client.write(big);
  std::vector<uint8_t> plain, out;
  ASSERT_TRUE(server.receive(client.takeOutput(), plain, out).isOk());
  EXPECT_EQ(plain, big);

  // Server -> client: a small header and the big payload, in the minimum number of records.
  const std::vector<uint8_t> header = bytesOf("hdr");
  const std::span<const uint8_t> parts[] = {header, big};
  std::vector<uint8_t> ciphertext;
  ASSERT_TRUE(server.send(parts, ciphertext).isOk());
  const size_t total = header.size() + big.size();
  EXPECT_EQ(countRecords(ciphertext),
            (total + TlsSession::kMaxRecordPlaintext - 1) / TlsSession::kMaxRecordPlaintext);
  std::vector<uint8_t> expected = header;
  expected.insert(expected.end(), big.begin(), big.end());
  EXPECT_EQ(clientReceives(client, ciphertext), expected);
}

TEST_F(TlsSessionTest, OneByteFragmentedDelivery) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  std::vector<uint8_t> plain;
  const std::vector<uint8_t> message = bytesOf("fragmented but whole");
  int rounds = 0;
  bool sent_data = false;
  while (rounds++ < 20 && !(sent_data && plain.size() >= message.size())) {
    client.handshakeStep();
    if (client.handshakeDone() && !sent_data) {
      client.write(message);
      sent_data = true;
    }
    const std::vector<uint8_t> bytes = client.takeOutput();
    std::vector<uint8_t> to_client;
    for (uint8_t byte : bytes) {
      ASSERT_TRUE(server.receive(std::span<const uint8_t>(&byte, 1), plain, to_client).isOk());
    }
    client.feed(to_client);
  }
  EXPECT_TRUE(client.handshakeDone());
  EXPECT_TRUE(server.handshakeComplete());
  EXPECT_EQ(plain, message);
}

TEST_F(TlsSessionTest, ManyRecordsInOneChunk) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  connect(client, server);
  std::vector<uint8_t> expected;
  for (int i = 0; i < 100; ++i) {
    const std::vector<uint8_t> piece = bytesOf("record-" + std::to_string(i) + "|");
    client.write(piece);  // one SSL_write = one record
    expected.insert(expected.end(), piece.begin(), piece.end());
  }
  const std::vector<uint8_t> chunk = client.takeOutput();
  ASSERT_EQ(countRecords(chunk), 100u);
  std::vector<uint8_t> plain, out;
  ASSERT_TRUE(server.receive(chunk, plain, out).isOk());
  EXPECT_EQ(plain, expected);
}

TEST_F(TlsSessionTest, HandshakeAndApplicationDataInOneChunk) {
  // A TLS 1.3 client may send its Finished and its first data together.
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  std::vector<uint8_t> plain, to_client;
  client.handshakeStep();
  ASSERT_TRUE(server.receive(client.takeOutput(), plain, to_client).isOk());
  client.feed(to_client);
  ASSERT_EQ(client.handshakeStep(), SSL_ERROR_NONE);
  client.write(bytesOf("early MQTT CONNECT"));
  to_client.clear();
  ASSERT_TRUE(server.receive(client.takeOutput(), plain, to_client).isOk());
  EXPECT_TRUE(server.handshakeComplete());
  EXPECT_EQ(plain, bytesOf("early MQTT CONNECT"));
}

TEST_F(TlsSessionTest, PlaintextSentBeforeHandshakeArrivesAfter) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  const std::vector<uint8_t> first = bytesOf("queued-1;");
  const std::vector<uint8_t> second = bytesOf("queued-2");
  const std::span<const uint8_t> parts1[] = {first};
  const std::span<const uint8_t> parts2[] = {second};
  std::vector<uint8_t> early;
  ASSERT_TRUE(server.send(parts1, early).isOk());
  ASSERT_TRUE(server.send(parts2, early).isOk());
  EXPECT_TRUE(early.empty()) << "nothing can be encrypted before the handshake";
  EXPECT_EQ(server.pendingPlaintextBytes(), first.size() + second.size());

  std::vector<uint8_t> plain;
  ASSERT_TRUE(pumpHandshake(client, server, plain).isOk());
  EXPECT_EQ(server.pendingPlaintextBytes(), 0u);
  EXPECT_EQ(client.readAll(), bytesOf("queued-1;queued-2"));
}

TEST_F(TlsSessionTest, Tls11ClientIsRefusedWithProtocolError) {
  TestClient client(certs_.ca_path, "localhost", false, TLS1_1_VERSION);
  TlsSession server(context_);
  client.handshakeStep();
  const std::vector<uint8_t> hello = client.takeOutput();
  ASSERT_FALSE(hello.empty());
  std::vector<uint8_t> plain, alert;
  const core::Status status = server.receive(hello, plain, alert);
  ASSERT_FALSE(status.isOk());
  EXPECT_EQ(status.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(status.message().find("TLS handshake failed"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("unsupported protocol"), std::string::npos) << status.message();
  EXPECT_EQ(status.message().find("plain MQTT"), std::string::npos) << "it did speak TLS";
  EXPECT_FALSE(alert.empty()) << "the protocol_version alert goes to the client";
  EXPECT_TRUE(server.failed());
  EXPECT_TRUE(server.wantsClose());
  EXPECT_EQ(ERR_peek_error(), 0u) << "the error queue must not leak to the next connection";

  // The client learns why from the alert.
  client.feed(alert);
  EXPECT_NE(client.handshakeStep(), SSL_ERROR_NONE);
  EXPECT_FALSE(client.handshakeDone());

  // A failed session refuses further use instead of touching OpenSSL again.
  EXPECT_EQ(server.receive(hello, plain, alert).code(), StatusCode::kFailedPrecondition);
  const std::span<const uint8_t> parts[] = {hello};
  EXPECT_EQ(server.send(parts, alert).code(), StatusCode::kFailedPrecondition);
}

TEST_F(TlsSessionTest, PlainMqttConnectOnTlsPortIsAnError) {
  TlsSession server(context_);
  // An MQTT 3.1.1 CONNECT, as a client that forgot TLS would send it.
  const std::vector<uint8_t> connect_packet = {0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
                                               0x02, 0x00, 0x3c, 0x00, 0x04, 'd',  'e', 'v', '1'};
  std::vector<uint8_t> plain, out;
  const core::Status status = server.receive(connect_packet, plain, out);
  ASSERT_FALSE(status.isOk());
  EXPECT_EQ(status.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(status.message().find("TLS handshake failed: "), std::string::npos);
  EXPECT_NE(status.message().find("plain MQTT"), std::string::npos) << status.message();
  EXPECT_TRUE(plain.empty());
  EXPECT_TRUE(server.wantsClose());
  EXPECT_EQ(ERR_peek_error(), 0u);

  // Another connection on the same thread is unaffected.
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession other(context_);
  connect(client, other);
}

TEST_F(TlsSessionTest, GarbageAfterHandshakeIsARecordError) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  connect(client, server);
  // A well-formed application-data header with a body that fails authentication.
  std::vector<uint8_t> forged = {0x17, 0x03, 0x03, 0x00, 0x20};
  forged.resize(forged.size() + 0x20, 0xab);
  std::vector<uint8_t> plain, out;
  const core::Status status = server.receive(forged, plain, out);
  ASSERT_FALSE(status.isOk());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("TLS record error"), std::string::npos) << status.message();
  EXPECT_TRUE(plain.empty());
  EXPECT_FALSE(out.empty()) << "a bad_record_mac alert";
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsSessionTest, PeerCloseNotifyIsReported) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  connect(client, server);
  client.write(bytesOf("last words"));
  client.shutdown();
  std::vector<uint8_t> plain, out;
  ASSERT_TRUE(server.receive(client.takeOutput(), plain, out).isOk());
  EXPECT_EQ(plain, bytesOf("last words")) << "data before close_notify is delivered";
  EXPECT_TRUE(server.peerClosed());
  EXPECT_TRUE(server.wantsClose());
  EXPECT_FALSE(server.failed());

  // Our own close_notify completes the closure on the client.
  std::vector<uint8_t> closing;
  server.shutdown(closing);
  ASSERT_FALSE(closing.empty());
  bool closed = false;
  client.feed(closing);
  client.readAll(&closed);
  EXPECT_TRUE(closed);
}

TEST_F(TlsSessionTest, ServerShutdownSendsCloseNotifyOnce) {
  TestClient client(certs_.ca_path, "localhost", false);
  TlsSession server(context_);
  connect(client, server);
  std::vector<uint8_t> closing;
  server.shutdown(closing);
  ASSERT_FALSE(closing.empty());
  EXPECT_TRUE(server.wantsClose());
  const size_t size = closing.size();
  server.shutdown(closing);
  EXPECT_EQ(closing.size(), size) << "close_notify is sent once";

  bool closed = false;
  client.feed(closing);
  client.readAll(&closed);
  EXPECT_TRUE(closed);

  const std::vector<uint8_t> late = bytesOf("too late");
  const std::span<const uint8_t> parts[] = {late};
  std::vector<uint8_t> out;
  EXPECT_EQ(server.send(parts, out).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(out.empty());
}

TEST_F(TlsSessionTest, ShutdownBeforeHandshakeWritesNothing) {
  TlsSession server(context_);
  std::vector<uint8_t> out;
  server.shutdown(out);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(server.wantsClose());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace edgehub::transports::tls
