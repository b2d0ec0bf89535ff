#pragma once
// Identity configuration: which devices and modules may connect to the hub, and their keys.
//
// The identity file (`edgehub run --identities FILE`, and the generated <data>/identities.json)
// is JSON:
//   {"hubHostName": "myhub.azure-devices.net", "deviceId": "edge1",
//    "identities": [{"moduleId": "sensor", "primaryKey": "<base64>", "secondaryKey": "<base64>"},
//                   {"deviceId": "leaf1", "primaryKey": "<base64>"}]}
// An entry with "moduleId" is a module of the edge device (the top-level deviceId; an entry may
// repeat it in "deviceId" but not name another device). An entry without "moduleId" is a leaf
// device and needs "deviceId". Keys are base64 of 16-64 bytes; "secondaryKey" is optional.
// Unknown members are ignored. Errors name the JSON path ("identities[1].primaryKey: ...").
//
// Without a file the hub calls loadOrCreateIdentities(): a key for every module of the
// manifest, persisted in <data_dir>/identities.json (same format, mode 0600, written atomically),
// reused on restart, with keys added for modules new to the manifest. Entries of modules that
// left the manifest are kept, so a module that comes back keeps its key.
//
// Secrets: IdentityConfig::toString() and IdentityEntry::toString() never print keys. Only
// serializeIdentityConfig() and edgeHubConnectionString() output them, for files and for the
// operator who asked for a connection string.
//
// Thread-safety: plain value types and functions without shared state; the file functions must
// not run concurrently on the same path. Hot/cold: cold (startup, CLI).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/manifest.h"
#include "core/identity.h"
#include "core/status.h"

namespace edgehub::core {

// Defaults for a generated identity file (the hub runs without IoT Hub, so these only need to be
// stable: the SAS audience and the connection strings use them).
inline constexpr std::string_view kDefaultHubHostName = "localhost";
inline constexpr std::string_view kDefaultEdgeDeviceId = "edgehub-device";
// The file name under the data directory.
inline constexpr std::string_view kIdentitiesFileName = "identities.json";
// Size of a generated key, before base64 (IoT Hub generates 32-byte keys too).
inline constexpr size_t kGeneratedKeyBytes = 32;
inline constexpr size_t kMinKeyBytes = 16;
inline constexpr size_t kMaxKeyBytes = 64;
// Identity files above this size are rejected without being read.
inline constexpr size_t kMaxIdentityFileBytes = 16 * 1024 * 1024;

struct IdentityEntry {
  Identity identity;
  std::string primary_key;    // base64, as written (validated: decodes to 16-64 bytes)
  std::string secondary_key;  // base64, or empty when the entry has none

  // "/devices/edge1/modules/sensor (primary key, secondary key)": never the keys themselves.
  std::string toString() const;
};

struct IdentityConfig {
  std::string hub_host_name;  // the IoT Hub host name (SAS audience, "HostName=")
  std::string device_id;      // the edge device's id; module identities belong to it
  std::vector<IdentityEntry> identities;  // in file order; no identity twice

  // Looks up by MQTT client id ("{d}" or "{d}/{m}"); nullptr if unknown or malformed.
  const IdentityEntry* findByClientId(std::string_view client_id) const;
  const IdentityEntry* find(const Identity& identity) const;
  // The module identity of the edge device with this module id; nullptr if unknown.
  const IdentityEntry* findModule(std::string_view module_id) const;

  // A summary without keys, for logs.
  std::string toString() const;
};

// Parses and validates an identity file's text. Errors: kInvalidArgument listing every problem
// one per line, "<json path>: <reason>".
Result<IdentityConfig> parseIdentityConfig(std::string_view json_text);
// Reads and parses a file; errors name the file (kNotFound, kIoError, kInvalidArgument).
Result<IdentityConfig> loadIdentityFile(const std::string& path);

// The file format above (pretty-printed JSON). Contains the keys.
std::string serializeIdentityConfig(const IdentityConfig& config);
// Writes serializeIdentityConfig(config) to path atomically: a temporary file in the same
// directory with mode 0600, fsync, rename over path, fsync of the directory. Errors: kIoError.
Status writeIdentityFile(const std::string& path, const IdentityConfig& config);

// 32 random bytes from getrandom(2), base64. Errors: kIoError if the OS cannot provide them.
Result<std::string> generateKey();

struct IdentityDefaults {
  std::string hub_host_name = std::string(kDefaultHubHostName);
  std::string device_id = std::string(kDefaultEdgeDeviceId);
};

// Loads <data_dir>/identities.json if it exists (its hubHostName and deviceId win over
// `defaults`), adds a module identity with a generated primary and secondary key for every
// module of the manifest that has none, and writes the file back if anything was added (or
// creates it). data_dir must exist. Errors: kIoError (file system), kCorruption (the existing
// file is not a valid identity file; it is left untouched), kInvalidArgument (bad defaults).
Result<IdentityConfig> loadOrCreateIdentities(const std::string& data_dir,
                                              const Manifest& manifest,
                                              const IdentityDefaults& defaults = {});

// "HostName={hub};DeviceId={d};ModuleId={m};SharedAccessKey={primary key};GatewayHostName={gw}"
// for a module of the edge device. Returns an empty string if config has no such module.
// Contains the secret key: show it only to the operator who asked for it.
std::string edgeHubConnectionString(const IdentityConfig& config, std::string_view module_id,
                                    std::string_view gateway_host_name);

}  // namespace edgehub::core
