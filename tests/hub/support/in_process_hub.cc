#include "tests/hub/support/in_process_hub.h"

namespace edgehub::testing {

core::Result<HubOptions> inProcessHubOptions(const std::string& manifest_json, const core::IdentityConfig& identities,
                                             const std::string& data_dir, const std::string& durability) {
  HUB_ASSIGN_OR_RETURN(core::Manifest manifest, core::parseManifest(manifest_json));
  HubOptions o;
  o.manifest = std::move(manifest);
  o.identities = identities;
  o.data_dir = data_dir;
  o.io_threads = 2;
  o.mqtt_listen = "127.0.0.1:0";
  o.mqtts_listen = "";
  o.durability = durability;
  return o;
}

std::unique_ptr<MqttTestClient> connectModule(const std::string& address, const core::IdentityConfig& identities,
                                              const std::string& m) {
  auto c = MqttTestClient::open(address);
  if (!c || c->connect(identities.device_id + "/" + m, moduleUsername(identities, m),
                       moduleSasToken(identities, m)) != 0) {
    return nullptr;
  }
  return c;
}

}  // namespace edgehub::testing
