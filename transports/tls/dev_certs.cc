#include "transports/tls/dev_certs.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <utility>

#include "transports/tls/file_util.h"
#include "transports/tls/openssl_error.h"

namespace edgehub::transports::tls {
namespace {

constexpr const char* kCaFile = "edgehub-dev-ca.pem";
constexpr const char* kCaKeyFile = "edgehub-dev-ca.key.pem";
constexpr const char* kServerFile = "edgehub-server.pem";
constexpr const char* kServerKeyFile = "edgehub-server.key.pem";

constexpr int kCaDays = 3650;
// 825 days: the longest lifetime Apple platforms accept for a TLS server certificate from a
// private CA; shorter is pointless churn for a development certificate that renews itself.
constexpr int kServerDays = 825;
// A server certificate that expires sooner than this is re-issued at start.
constexpr long kRenewBeforeSeconds = 30L * 24 * 3600;
// Certificates start an hour in the past, so that a module whose clock is a little behind
// does not reject a certificate created a moment ago.
constexpr long kBackdateSeconds = 3600;

struct Deleter {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(GENERAL_NAME* p) const { GENERAL_NAME_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Deleter>;

struct SanName {
  std::string value;
  bool is_ip;
};

bool isIpLiteral(const std::string& name) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, name.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buffer) == 1;
}

bool isDnsName(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

void addName(std::vector<SanName>& names, std::string value) {
  const bool is_ip = isIpLiteral(value);
  for (const SanName& existing : names) {
    if (existing.is_ip == is_ip && existing.value == value) return;
  }
  names.push_back(SanName{std::move(value), is_ip});
}

core::Result<std::vector<SanName>> requiredNames(const std::vector<std::string>& extra_names) {
  std::vector<SanName> names;
  addName(names, "localhost");
  char host[256] = {};
  // A hostname that is not a valid DNS name cannot go into a SAN; localhost and the IPs still
  // cover local modules, and the operator can pass real names as extra names.
  if (gethostname(host, sizeof(host) - 1) == 0 && isDnsName(host)) addName(names, host);
  addName(names, "127.0.0.1");
  addName(names, "::1");
  for (const std::string& name : extra_names) {
    if (!isIpLiteral(name) && !isDnsName(name)) {
      return core::invalidArgument("TLS certificate name '" + name +
                                   "' is neither an IP address nor a DNS name");
    }
    addName(names, name);
  }
  return names;
}

core::Status certError(std::string_view context) {
  return opensslError(core::StatusCode::kInternal, context);
}

std::string pemOf(X509* cert) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  HUB_RELEASE_ASSERT(bio != nullptr && PEM_write_bio_X509(bio.get(), cert) == 1,
                     "PEM_write_bio_X509 failed");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string pemOf(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  HUB_RELEASE_ASSERT(bio != nullptr && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr,
                                                                0, nullptr, nullptr) == 1,
                     "PEM_write_bio_PrivateKey failed");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::vector<Ptr<X509>> parseCerts(const std::string& pem) {
  std::vector<Ptr<X509>> out;
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  HUB_RELEASE_ASSERT(bio != nullptr, "BIO_new_mem_buf failed");
  for (;;) {
    Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  return out;
}

Ptr<EVP_PKEY> parseKey(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  HUB_RELEASE_ASSERT(bio != nullptr, "BIO_new_mem_buf failed");
  return Ptr<EVP_PKEY>(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

core::Result<Ptr<EVP_PKEY>> generateKey() {
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) return certError("generating an EC P-256 key");
  return key;
}

core::Status setRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return certError("RAND_bytes");
  bytes[0] |= 0x01;  // Never zero (RFC 5280 wants a positive serial).
  Ptr<BIGNUM> bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return certError("setting the certificate serial");
  }
  return core::Status::ok();
}

core::Status addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return certError(std::string("adding extension ") + OBJ_nid2sn(nid));
  }
  return core::Status::ok();
}

core::Status addSubjectAltNames(X509* cert, const std::vector<SanName>& names) {
  Ptr<GENERAL_NAMES> sans(GENERAL_NAMES_new());
  HUB_RELEASE_ASSERT(sans != nullptr, "GENERAL_NAMES_new failed");
  for (const SanName& name : names) {
    Ptr<GENERAL_NAME> gn(GENERAL_NAME_new());
    HUB_RELEASE_ASSERT(gn != nullptr, "GENERAL_NAME_new failed");
    if (name.is_ip) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.value.c_str());
      if (ip == nullptr) return certError("encoding IP SAN " + name.value);
      GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, ip);
    } else {
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      HUB_RELEASE_ASSERT(dns != nullptr, "ASN1_IA5STRING_new failed");
      if (ASN1_STRING_set(dns, name.value.data(), static_cast<int>(name.value.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        return certError("encoding DNS SAN " + name.value);
      }
      GENERAL_NAME_set0_value(gn.get(), GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(sans.get(), gn.get()) == 0) return certError("building the SAN");
    (void)gn.release();
  }
  // Not critical: the subject is non-empty (RFC 5280 4.2.1.6).
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return certError("adding subjectAltName");
  }
  return core::Status::ok();
}

core::Status setName(X509_NAME* name, const char* common_name) {
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("edgehub"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(common_name), -1, -1,
                                 0) != 1) {
    return certError("building the certificate name");
  }
  return core::Status::ok();
}

struct Issued {
  Ptr<X509> cert;
  Ptr<EVP_PKEY> key;
};

// A new key and a certificate for it. issuer == nullptr: self-signed CA.
core::Result<Issued> issue(std::time_t now, X509* issuer, EVP_PKEY* issuer_key,
                           const std::vector<SanName>* names) {
  const bool is_ca = issuer == nullptr;
  HUB_ASSIGN_OR_RETURN(Ptr<EVP_PKEY> key, generateKey());
  Ptr<X509> cert(X509_new());
  HUB_RELEASE_ASSERT(cert != nullptr, "X509_new failed");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return certError("X509_set_version");
  HUB_RETURN_IF_ERROR(setRandomSerial(cert.get()));
  std::time_t t = now;
  if (X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -kBackdateSeconds, &t) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), is_ca ? kCaDays : kServerDays, 0, &t) ==
          nullptr) {
    return certError("setting the validity period");
  }
  // A certificate that outlives its CA would fail verification in its last days anyway; cap
  // it so that its expiry (and the 30-day renewal) tracks the real end of the chain.
  if (!is_ca && ASN1_TIME_compare(X509_get0_notAfter(cert.get()), X509_get0_notAfter(issuer)) > 0 &&
      X509_set1_notAfter(cert.get(), X509_get0_notAfter(issuer)) != 1) {
    return certError("capping the validity period");
  }
  HUB_RETURN_IF_ERROR(setName(X509_get_subject_name(cert.get()),
                              is_ca ? "edgehub development CA" : "edgehub server"));
  X509* signer = is_ca ? cert.get() : issuer;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    return certError("building the certificate");
  }
  if (is_ca) {
    HUB_RETURN_IF_ERROR(addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE"));
    HUB_RETURN_IF_ERROR(
        addExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    HUB_RETURN_IF_ERROR(addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE"));
    // ECDSA keys sign the handshake; keyEncipherment is for RSA key transport only.
    HUB_RETURN_IF_ERROR(addExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature"));
    HUB_RETURN_IF_ERROR(addExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth"));
    HUB_RETURN_IF_ERROR(addSubjectAltNames(cert.get(), *names));
  }
  HUB_RETURN_IF_ERROR(addExtension(cert.get(), signer, NID_subject_key_identifier, "hash"));
  HUB_RETURN_IF_ERROR(
      addExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), is_ca ? key.get() : issuer_key, EVP_sha256()) <= 0) {
    return certError("signing the certificate");
  }
  return Issued{std::move(cert), std::move(key)};
}

bool covers(X509* leaf, const std::vector<SanName>& names) {
  for (const SanName& name : names) {
    const int rc =
        name.is_ip ? X509_check_ip_asc(leaf, name.value.c_str(), 0)
                   : X509_check_host(leaf, name.value.data(), name.value.size(),
                                     X509_CHECK_FLAG_NO_WILDCARDS |
                                         X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                                     nullptr);
    if (rc != 1) return false;
  }
  return true;
}

bool verifiesAgainst(X509* leaf, X509* ca, std::time_t now) {
  Ptr<X509_STORE> store(X509_STORE_new());
  Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) != 1) {
    return false;
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, now);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  return X509_verify_cert(ctx.get()) == 1;
}

// Whether the existing server files can be kept as they are.
core::Result<bool> serverReusable(const std::string& cert_path, const std::string& key_path,
                                  X509* ca, std::time_t now, const std::vector<SanName>& names) {
  HUB_ASSIGN_OR_RETURN(std::optional<std::string> chain_pem,
                       readFileIfExists(cert_path, "dev server certificate"));
  HUB_ASSIGN_OR_RETURN(std::optional<std::string> key_pem,
                       readFileIfExists(key_path, "dev server key"));
  if (!chain_pem || !key_pem) return false;
  std::vector<Ptr<X509>> chain = parseCerts(*chain_pem);
  Ptr<EVP_PKEY> key = parseKey(*key_pem);
  if (chain.size() != 2 || !key) return false;
  X509* leaf = chain[0].get();
  if (X509_check_private_key(leaf, key.get()) != 1) return false;
  // The chain must end with *this* CA, so a client that trusts only it can build the chain.
  if (X509_cmp(chain[1].get(), ca) != 0) return false;
  if (!verifiesAgainst(leaf, ca, now)) return false;
  std::time_t renew_at = now + kRenewBeforeSeconds;
  if (X509_cmp_time(X509_get0_notAfter(leaf), &renew_at) <= 0) return false;
  return covers(leaf, names);
}

// Why an existing CA cannot be used, or nullopt when it can.
std::optional<std::string> caProblem(X509* ca, EVP_PKEY* key, std::time_t now) {
  if (X509_check_ca(ca) < 1) return "not a CA certificate";
  if (X509_check_private_key(ca, key) != 1) return "the CA key does not match it";
  if (X509_cmp_time(X509_get0_notAfter(ca), &now) <= 0) return "expired";
  if (X509_verify(ca, key) != 1) return "its self-signature does not verify";
  return std::nullopt;
}

core::Status caUnusable(const std::string& ca_path, const std::string& key_path,
                        std::string_view problem) {
  std::string message = "development CA certificate '";
  message.append(ca_path);
  message.append("' is unusable (");
  message.append(problem);
  message.append("). Modules may trust this CA, so it is not replaced automatically: restore it, "
                 "or delete '");
  message.append(ca_path);
  message.append("' and '");
  message.append(key_path);
  message.append("' to create a new CA that every module must then trust");
  return core::failedPrecondition(std::move(message));
}

}  // namespace

std::string devCaPath(const std::string& data_dir) { return data_dir + "/certs/" + kCaFile; }

core::Result<DevCertificates> ensureDevCertificates(const std::string& data_dir,
                                                    const std::vector<std::string>& extra_names) {
  return ensureDevCertificates(data_dir, extra_names, std::chrono::system_clock::now());
}

core::Result<DevCertificates> ensureDevCertificates(const std::string& data_dir,
                                                    const std::vector<std::string>& extra_names,
                                                    core::SystemTime now_time) {
  ErrorQueueGuard guard;
  const std::time_t now = std::chrono::system_clock::to_time_t(now_time);
  HUB_ASSIGN_OR_RETURN(std::vector<SanName> names, requiredNames(extra_names));

  const std::string dir = data_dir + "/certs";
  DevCertificates out;
  out.ca_path = devCaPath(data_dir);
  out.server_cert_chain_path = dir + "/" + kServerFile;
  out.server_key_path = dir + "/" + kServerKeyFile;
  const std::string ca_key_path = dir + "/" + kCaKeyFile;

  HUB_RETURN_IF_ERROR(ensureDirectory(data_dir, 0700));
  HUB_RETURN_IF_ERROR(ensureDirectory(dir, 0700));

  HUB_ASSIGN_OR_RETURN(std::optional<std::string> ca_pem,
                       readFileIfExists(out.ca_path, "development CA certificate"));
  Ptr<X509> ca;
  Ptr<EVP_PKEY> ca_key;
  if (!ca_pem) {
    HUB_ASSIGN_OR_RETURN(Issued created, issue(now, nullptr, nullptr, nullptr));
    // The key first: the certificate appearing is what makes the CA exist (see the header).
    HUB_RETURN_IF_ERROR(writeFileAtomically(ca_key_path, pemOf(created.key.get()), 0600));
    ca_pem = pemOf(created.cert.get());
    HUB_RETURN_IF_ERROR(writeFileAtomically(out.ca_path, *ca_pem, 0644));
    ca = std::move(created.cert);
    ca_key = std::move(created.key);
    out.created_ca = true;
  } else {
    HUB_ASSIGN_OR_RETURN(std::optional<std::string> key_pem,
                         readFileIfExists(ca_key_path, "development CA key"));
    if (!key_pem) return caUnusable(out.ca_path, ca_key_path, "its key file is missing");
    std::vector<Ptr<X509>> certs = parseCerts(*ca_pem);
    if (certs.empty()) return caUnusable(out.ca_path, ca_key_path, "it does not parse as PEM");
    if (certs.size() > 1) {
      return caUnusable(out.ca_path, ca_key_path, "it holds more than one certificate");
    }
    ca = std::move(certs[0]);
    ca_key = parseKey(*key_pem);
    if (!ca_key) return caUnusable(out.ca_path, ca_key_path, "its key file does not parse");
    if (auto problem = caProblem(ca.get(), ca_key.get(), now)) {
      return caUnusable(out.ca_path, ca_key_path, *problem);
    }
  }

  if (!out.created_ca) {
    HUB_ASSIGN_OR_RETURN(bool reusable, serverReusable(out.server_cert_chain_path,
                                                       out.server_key_path, ca.get(), now, names));
    if (reusable) return out;
  }
  HUB_ASSIGN_OR_RETURN(Issued server, issue(now, ca.get(), ca_key.get(), &names));
  // Key first, then the chain: a crash in between leaves a key that does not match the old
  // certificate, which the next start detects and repairs by issuing again.
  HUB_RETURN_IF_ERROR(writeFileAtomically(out.server_key_path, pemOf(server.key.get()), 0600));
  HUB_RETURN_IF_ERROR(
      writeFileAtomically(out.server_cert_chain_path, pemOf(server.cert.get()) + *ca_pem, 0644));
  out.issued_server_cert = true;
  return out;
}

}  // namespace edgehub::transports::tls
