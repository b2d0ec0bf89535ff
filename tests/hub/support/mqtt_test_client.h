#pragma once
// Test support: the blocking MQTT client (transports/mqtt/blocking_client.h) under its test
// name, and the dialect credentials of test identities.
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/config/identities.h"
#include "transports/mqtt/blocking_client.h"

namespace edgehub::testing {

using ReceivedPacket = transports::mqtt::ReceivedPacket;
using MqttTestClient = transports::mqtt::BlockingClient;

// Credentials of the IoT Hub dialect for a module of `config`.
std::string moduleUsername(const core::IdentityConfig& config, const std::string& module_id);
std::string moduleSasToken(const core::IdentityConfig& config, const std::string& module_id,
                           int64_t lifetime_secs = 3600, bool secondary = false);
// An identity config with modules named in `modules` (fixed, valid keys).
core::IdentityConfig testIdentities(const std::vector<std::string>& modules, const std::string& device_id = "dev1",
                                    const std::string& hub_host = "myhub.azure-devices.net");

}  // namespace edgehub::testing
