#include "transports/mqtt/server/tls_channel.h"

#include "transports/tls/dev_certs.h"
#include "transports/tls/tls_context.h"
#include "transports/tls/tls_session.h"

namespace edgehub::transports::mqtt {

namespace {

class TlsChannel final : public SecureChannel {
 public:
  explicit TlsChannel(tls::TlsServerContextSharedPtr context) : session_(std::move(context)) {}

  core::Status receive(std::span<const uint8_t> in, std::vector<uint8_t>& plaintext,
                       std::vector<uint8_t>& to_send) override {
    return session_.receive(in, plaintext, to_send);
  }
  core::Status send(std::span<const uint8_t> plaintext, std::vector<uint8_t>& to_send) override {
    return session_.send(std::span<const std::span<const uint8_t>>(&plaintext, 1), to_send);
  }
  void shutdown(std::vector<uint8_t>& to_send) override { session_.shutdown(to_send); }
  bool peerClosed() const override { return session_.peerClosed(); }

 private:
  tls::TlsSession session_;
};

}  // namespace

core::Result<SecureChannelFactory> makeTlsChannelFactory(const std::string& cert_chain_path,
                                                         const std::string& key_path) {
  HUB_ASSIGN_OR_RETURN(tls::TlsServerContextSharedPtr context,
                       tls::TlsServerContext::create(tls::TlsServerConfig{cert_chain_path, key_path}));
  return SecureChannelFactory([context]() -> std::unique_ptr<SecureChannel> {
    return std::make_unique<TlsChannel>(context);
  });
}

core::Result<DevTlsFiles> ensureDevTlsFiles(const std::string& data_dir, const std::vector<std::string>& names) {
  HUB_ASSIGN_OR_RETURN(tls::DevCertificates certs, tls::ensureDevCertificates(data_dir, names));
  return DevTlsFiles{certs.ca_path, certs.server_cert_chain_path, certs.server_key_path, certs.created_ca};
}

std::string devTlsCaPath(const std::string& data_dir) { return tls::devCaPath(data_dir); }

}  // namespace edgehub::transports::mqtt
