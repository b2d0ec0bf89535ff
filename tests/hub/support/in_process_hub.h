#pragma once
// Test support: the options of a Hub run inside the test process (two IO loops, plain MQTT on
// 127.0.0.1:0, no TLS listener) and a module connection to it, shared by the in-process hub tests.
#include <memory>
#include <string>

#include "core/config/identities.h"
#include "hub/hub.h"
#include "tests/hub/support/mqtt_test_client.h"

namespace edgehub::testing {

// Options for a hub on `manifest_json` with `identities` in `data_dir`. Errors: the manifest's.
core::Result<HubOptions> inProcessHubOptions(const std::string& manifest_json, const core::IdentityConfig& identities,
                                             const std::string& data_dir, const std::string& durability = "async");

// Connects to `address` as module `m` of `identities` with a fresh SAS token; nullptr when the
// connection or the CONNECT fails.
std::unique_ptr<MqttTestClient> connectModule(const std::string& address, const core::IdentityConfig& identities,
                                              const std::string& m);

}  // namespace edgehub::testing
