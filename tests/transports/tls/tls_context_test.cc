#include "transports/tls/tls_context.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <fstream>
#include <string>

#include "tests/transports/tls/tls_test_util.h"
#include "transports/tls/dev_certs.h"

namespace edgehub::transports::tls {
namespace {

using core::StatusCode;
using testing::TempDir;

class TlsServerContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = ensureDevCertificates(dir_.path(), {});
    ASSERT_TRUE(certs.isOk()) << certs.status().toString();
    certs_ = *certs;
  }
  std::string caKeyPath() const { return dir_.path() + "/certs/edgehub-dev-ca.key.pem"; }

  TempDir dir_;
  DevCertificates certs_;
};

TEST_F(TlsServerContextTest, LoadsDevCertificates) {
  auto context = TlsServerContext::create({certs_.server_cert_chain_path, certs_.server_key_path});
  ASSERT_TRUE(context.isOk()) << context.status().toString();
  EXPECT_EQ((*context)->config().key_path, certs_.server_key_path);
}

TEST_F(TlsServerContextTest, MissingCertificateFileNamesIt) {
  const std::string missing = dir_.path() + "/nope.pem";
  auto context = TlsServerContext::create({missing, certs_.server_key_path});
  ASSERT_FALSE(context.isOk());
  EXPECT_EQ(context.status().code(), StatusCode::kNotFound);
  EXPECT_NE(context.status().message().find(missing), std::string::npos)
      << context.status().message();
  EXPECT_NE(context.status().message().find("No such file"), std::string::npos);
}

TEST_F(TlsServerContextTest, MissingKeyFileNamesIt) {
  const std::string missing = dir_.path() + "/nope.key.pem";
  auto context = TlsServerContext::create({certs_.server_cert_chain_path, missing});
  ASSERT_FALSE(context.isOk());
  EXPECT_EQ(context.status().code(), StatusCode::kNotFound);
  EXPECT_NE(context.status().message().find("TLS private key '" + missing + "'"),
            std::string::npos)
      << context.status().message();
}

TEST_F(TlsServerContextTest, KeyNotMatchingCertificateIsRejected) {
  // The CA's key is a valid key, just not the server certificate's.
  auto context = TlsServerContext::create({certs_.server_cert_chain_path, caKeyPath()});
  ASSERT_FALSE(context.isOk());
  EXPECT_EQ(context.status().code(), StatusCode::kInvalidArgument);
  const std::string_view message = context.status().message();
  EXPECT_NE(message.find(caKeyPath()), std::string::npos) << message;
  EXPECT_NE(message.find("does not match the certificate '" + certs_.server_cert_chain_path),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("key values mismatch"), std::string::npos) << message;
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsServerContextTest, GarbageCertificateFileIsRejected) {
  const std::string garbage = dir_.path() + "/garbage.pem";
  std::ofstream(garbage) << "this is not PEM\n";
  auto context = TlsServerContext::create({garbage, certs_.server_key_path});
  ASSERT_FALSE(context.isOk());
  EXPECT_EQ(context.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(context.status().message().find(garbage), std::string::npos);
  EXPECT_NE(context.status().message().find("no PEM certificate"), std::string::npos)
      << context.status().message();
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsServerContextTest, EncryptedOrGarbageKeyIsRejected) {
  const std::string garbage = dir_.path() + "/garbage.key.pem";
  std::ofstream(garbage) << "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  auto context = TlsServerContext::create({certs_.server_cert_chain_path, garbage});
  ASSERT_FALSE(context.isOk());
  EXPECT_EQ(context.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(context.status().message().find(garbage), std::string::npos)
      << context.status().message();
}

}  // namespace
}  // namespace edgehub::transports::tls
