#include "transports/tls/dev_certs.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/transports/tls/tls_test_util.h"
#include "transports/tls/tls_context.h"

namespace edgehub::transports::tls {
namespace {

using core::StatusCode;
using testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::vector<X509Ptr> certsIn(const std::string& path) {
  std::vector<X509Ptr> out;
  const std::string pem = slurp(path);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.emplace_back(x);
  BIO_free(bio);
  ERR_clear_error();
  return out;
}

// X509_verify_cert of the chain file against the CA file alone, as a module would do it.
bool chainVerifies(const DevCertificates& certs, const std::string& host) {
  std::vector<X509Ptr> chain = certsIn(certs.server_cert_chain_path);
  std::vector<X509Ptr> ca = certsIn(certs.ca_path);
  if (chain.empty() || ca.size() != 1) return false;
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca[0].get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, chain[0].get(), untrusted);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), host.c_str(), 0);
  const bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  ERR_clear_error();
  return ok;
}

class DevCertsTest : public ::testing::Test {
 protected:
  std::string file(const char* name) const { return dir_.path() + "/certs/" + name; }
  std::string caKey() const { return file("edgehub-dev-ca.key.pem"); }

  TempDir dir_;
};

TEST_F(DevCertsTest, CreatesCaAndServerCertificate) {
  auto certs = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(certs.isOk()) << certs.status().toString();
  EXPECT_TRUE(certs->created_ca);
  EXPECT_TRUE(certs->issued_server_cert);
  EXPECT_EQ(certs->ca_path, devCaPath(dir_.path()));
  EXPECT_EQ(certs->ca_path, dir_.path() + "/certs/edgehub-dev-ca.pem");
  EXPECT_EQ(certs->server_cert_chain_path, file("edgehub-server.pem"));
  EXPECT_EQ(certs->server_key_path, file("edgehub-server.key.pem"));

  EXPECT_EQ(modeOf(dir_.path() + "/certs"), 0700u);
  EXPECT_EQ(modeOf(caKey()), 0600u);
  EXPECT_EQ(modeOf(certs->server_key_path), 0600u);
  EXPECT_EQ(access((certs->ca_path + ".tmp").c_str(), F_OK), -1) << "no temporary files left";

  // The CA: self-signed, CA:TRUE critical, keyCertSign|cRLSign, about 10 years, P-256.
  std::vector<X509Ptr> ca = certsIn(certs->ca_path);
  ASSERT_EQ(ca.size(), 1u);
  EXPECT_EQ(X509_check_ca(ca[0].get()), 1);
  EXPECT_NE(X509_get_extension_flags(ca[0].get()) & EXFLAG_SS, 0u);
  int critical = -1;
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(ca[0].get(), NID_basic_constraints, &critical, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_TRUE(bc->ca);
  EXPECT_EQ(critical, 1);
  BASIC_CONSTRAINTS_free(bc);
  EXPECT_EQ(X509_get_key_usage(ca[0].get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca[0].get()),
                           X509_get0_notAfter(ca[0].get())),
            1);
  EXPECT_GE(days, 3649);
  EVP_PKEY* ca_pub = X509_get0_pubkey(ca[0].get());
  EXPECT_EQ(EVP_PKEY_get_base_id(ca_pub), EVP_PKEY_EC);
  char curve[64] = {};
  EVP_PKEY_get_group_name(ca_pub, curve, sizeof(curve), nullptr);
  EXPECT_STREQ(curve, "prime256v1");

  // The server: leaf + CA, serverAuth, the default SANs, a 128-bit random serial.
  std::vector<X509Ptr> chain = certsIn(certs->server_cert_chain_path);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(X509_cmp(chain[1].get(), ca[0].get()), 0);
  X509* leaf = chain[0].get();
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_NE(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER, 0u);
  EXPECT_EQ(X509_check_host(leaf, "localhost", 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  EXPECT_EQ(X509_check_host(leaf, host, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr), 1);
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), nullptr);
  EXPECT_GT(BN_num_bits(serial), 64);
  EXPECT_LE(BN_num_bits(serial), 128);
  BN_free(serial);
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
  EXPECT_GE(days, 825);
  EXPECT_LE(days, 826);

  EXPECT_TRUE(chainVerifies(*certs, "localhost"));
  EXPECT_FALSE(chainVerifies(*certs, "elsewhere.example.com")) << "the check is meaningful";
}

TEST_F(DevCertsTest, SecondCallReusesFilesUnchanged) {
  auto first = ensureDevCertificates(dir_.path(), {"hub.local"});
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  const std::string ca = slurp(first->ca_path);
  const std::string ca_key = slurp(caKey());
  const std::string server = slurp(first->server_cert_chain_path);
  const std::string server_key = slurp(first->server_key_path);

  auto second = ensureDevCertificates(dir_.path(), {"hub.local"});
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_FALSE(second->created_ca);
  EXPECT_FALSE(second->issued_server_cert);
  EXPECT_EQ(slurp(second->ca_path), ca);
  EXPECT_EQ(slurp(caKey()), ca_key);
  EXPECT_EQ(slurp(second->server_cert_chain_path), server);
  EXPECT_EQ(slurp(second->server_key_path), server_key);

  // Fewer names than the certificate has are still covered.
  auto third = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(third.isOk());
  EXPECT_FALSE(third->issued_server_cert);
}

TEST_F(DevCertsTest, AddedNameReissuesServerCertificateFromSameCa) {
  auto first = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  const std::string ca = slurp(first->ca_path);
  const std::string ca_key = slurp(caKey());
  const std::string server = slurp(first->server_cert_chain_path);

  auto second = ensureDevCertificates(dir_.path(), {"gateway.example.com", "10.1.2.3"});
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_FALSE(second->created_ca);
  EXPECT_TRUE(second->issued_server_cert);
  EXPECT_EQ(slurp(second->ca_path), ca) << "modules that trust the CA keep working";
  EXPECT_EQ(slurp(caKey()), ca_key);
  EXPECT_NE(slurp(second->server_cert_chain_path), server);
  EXPECT_EQ(modeOf(second->server_key_path), 0600u);

  std::vector<X509Ptr> chain = certsIn(second->server_cert_chain_path);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(X509_check_host(chain[0].get(), "gateway.example.com", 0,
                            X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr),
            1);
  EXPECT_EQ(X509_check_ip_asc(chain[0].get(), "10.1.2.3", 0), 1) << "an IP literal is an IP SAN";
  EXPECT_NE(X509_check_host(chain[0].get(), "10.1.2.3", 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                            nullptr),
            1)
      << "and not a DNS SAN";
  EXPECT_TRUE(chainVerifies(*second, "gateway.example.com"));
}

TEST_F(DevCertsTest, ServerCertificateNearExpiryIsReissued) {
  const auto now = std::chrono::system_clock::now();
  auto first = ensureDevCertificates(dir_.path(), {}, now);
  ASSERT_TRUE(first.isOk());
  const std::string ca = slurp(first->ca_path);
  const std::string server = slurp(first->server_cert_chain_path);

  // 20 days before the server certificate expires: inside the 30-day renewal window.
  auto later = ensureDevCertificates(dir_.path(), {}, now + std::chrono::hours(24 * 805));
  ASSERT_TRUE(later.isOk()) << later.status().toString();
  EXPECT_TRUE(later->issued_server_cert);
  EXPECT_FALSE(later->created_ca);
  EXPECT_EQ(slurp(later->ca_path), ca);
  EXPECT_NE(slurp(later->server_cert_chain_path), server);
}

TEST_F(DevCertsTest, ServerKeyNotMatchingIsRepaired) {
  auto first = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(first.isOk());
  // As after a crash between writing the new key and the new certificate.
  std::ofstream(first->server_key_path, std::ios::trunc) << slurp(caKey());
  auto second = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_TRUE(second->issued_server_cert);
  auto context = TlsServerContext::create({second->server_cert_chain_path, second->server_key_path});
  EXPECT_TRUE(context.isOk()) << context.status().toString();
}

TEST_F(DevCertsTest, CorruptedCaIsAnErrorNamingTheFile) {
  auto first = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(first.isOk());
  const std::string server = slurp(first->server_cert_chain_path);
  std::ofstream(first->ca_path, std::ios::trunc) << "-----BEGIN CERTIFICATE-----\ngarbage\n";

  auto second = ensureDevCertificates(dir_.path(), {});
  ASSERT_FALSE(second.isOk());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  const std::string_view message = second.status().message();
  EXPECT_NE(message.find("development CA certificate '" + first->ca_path + "' is unusable"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("not replaced"), std::string::npos) << message;
  EXPECT_NE(message.find("does not parse"), std::string::npos) << message;
  EXPECT_EQ(slurp(first->ca_path), "-----BEGIN CERTIFICATE-----\ngarbage\n") << "left for the operator";
  EXPECT_EQ(slurp(first->server_cert_chain_path), server);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(DevCertsTest, MissingCaKeyIsAnError) {
  auto first = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(first.isOk());
  ASSERT_EQ(::unlink(caKey().c_str()), 0);
  auto second = ensureDevCertificates(dir_.path(), {});
  ASSERT_FALSE(second.isOk());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("key file is missing"), std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find(first->ca_path), std::string::npos);
}

TEST_F(DevCertsTest, ExpiredCaIsAnError) {
  const auto now = std::chrono::system_clock::now();
  ASSERT_TRUE(ensureDevCertificates(dir_.path(), {}, now).isOk());
  auto later = ensureDevCertificates(dir_.path(), {}, now + std::chrono::hours(24 * 3660));
  ASSERT_FALSE(later.isOk());
  EXPECT_NE(later.status().message().find("(expired)"), std::string::npos)
      << later.status().message();
}

TEST_F(DevCertsTest, BothCaFilesAbsentCreatesANewCa) {
  auto first = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(first.isOk());
  const std::string ca = slurp(first->ca_path);
  ASSERT_EQ(::unlink(first->ca_path.c_str()), 0);
  ASSERT_EQ(::unlink(caKey().c_str()), 0);
  auto second = ensureDevCertificates(dir_.path(), {});
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_TRUE(second->created_ca);
  EXPECT_TRUE(second->issued_server_cert) << "the old server certificate names the old CA";
  EXPECT_NE(slurp(second->ca_path), ca);
  EXPECT_TRUE(chainVerifies(*second, "localhost"));
}

TEST_F(DevCertsTest, InvalidExtraNameIsRejected) {
  auto certs = ensureDevCertificates(dir_.path(), {"bad name,DNS:evil"});
  ASSERT_FALSE(certs.isOk());
  EXPECT_EQ(certs.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(certs.status().message().find("bad name,DNS:evil"), std::string::npos);
  EXPECT_EQ(access(devCaPath(dir_.path()).c_str(), F_OK), -1) << "nothing written";
}

TEST_F(DevCertsTest, DevCaPathIsUnderCerts) {
  EXPECT_EQ(devCaPath("/var/lib/edgehub"), "/var/lib/edgehub/certs/edgehub-dev-ca.pem");
}

}  // namespace
}  // namespace edgehub::transports::tls
