#include "tests/hub/support/mqtt_test_client.h"

#include <ctime>

#include "core/base64.h"
#include "transports/auth/sas_token.h"

namespace edgehub::testing {

std::string moduleUsername(const core::IdentityConfig& config, const std::string& module_id) {
  return config.hub_host_name + "/" + config.device_id + "/" + module_id + "/?api-version=2021-04-12";
}

std::string moduleSasToken(const core::IdentityConfig& config, const std::string& module_id, int64_t lifetime_secs,
                           bool secondary) {
  const core::IdentityEntry* e = config.findModule(module_id);
  if (e == nullptr) return "";
  const std::string resource = config.hub_host_name + "%2Fdevices%2F" + config.device_id + "%2Fmodules%2F" + module_id;
  return transports::auth::makeSasToken(resource, secondary ? e->secondary_key : e->primary_key,
                                        static_cast<int64_t>(::time(nullptr)) + lifetime_secs);
}

core::IdentityConfig testIdentities(const std::vector<std::string>& modules, const std::string& device_id,
                                    const std::string& hub_host) {
  core::IdentityConfig c;
  c.hub_host_name = hub_host;
  c.device_id = device_id;
  char tag = 0;
  for (const std::string& m : modules) {
    // Distinct keys per module, so that one module's key never opens another.
    c.identities.push_back(core::IdentityEntry{core::Identity::module(device_id, m),
                                               core::base64Encode(std::string(32, static_cast<char>('A' + tag))),
                                               core::base64Encode(std::string(32, static_cast<char>('a' + tag)))});
    ++tag;
  }
  return c;
}

}  // namespace edgehub::testing
