#include "core/config/identities.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <utility>

#include "core/base64.h"
#include "core/config/json_util.h"

namespace edgehub::core {
namespace {

using config_internal::childPath;
using config_internal::describeJson;
using config_internal::Json;

constexpr size_t kMaxHostNameLength = 255;

std::string indexPath(std::string_view path, size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

// Host names end up inside connection strings ("HostName=...;"), so ';', '=', whitespace and
// control characters would corrupt them.
bool isValidHostName(std::string_view host) {
  if (host.empty() || host.size() > kMaxHostNameLength) return false;
  for (char c : host) {
    const auto u = static_cast<unsigned char>(c);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok || u >= 0x80) return false;
  }
  return true;
}

// Reads a required (or optional) string member; reports wrong types.
const std::string* stringMember(const Json& object, std::string_view key, std::string_view path,
                                bool required, std::vector<std::string>& problems) {
  const auto it = object.find(key);
  if (it == object.end()) {
    if (required) problems.push_back(childPath(path, key) + ": required");
    return nullptr;
  }
  if (!it->is_string()) {
    problems.push_back(childPath(path, key) + ": must be a string, got " + describeJson(*it));
    return nullptr;
  }
  return &it->get_ref<const std::string&>();
}

// Never echoes the key: a misplaced secret must not end up in a log through an error message.
bool checkKey(const std::string& key, const std::string& path, std::vector<std::string>& problems) {
  Result<std::string> bytes = base64Decode(key);
  if (!bytes.isOk()) {
    problems.push_back(path + ": " + std::string(bytes.status().message()));
    return false;
  }
  if (bytes->size() < kMinKeyBytes || bytes->size() > kMaxKeyBytes) {
    problems.push_back(path + ": key must decode to 16-64 bytes, got " +
                       std::to_string(bytes->size()));
    return false;
  }
  return true;
}

Status checkedDirFsync(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ioError("cannot open directory '" + dir + "': " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ioError("cannot fsync directory '" + dir + "': " + std::strerror(err));
  return Status::ok();
}

std::string parentDirectory(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ioError(std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

}  // namespace

std::string IdentityEntry::toString() const {
  std::string out = identity.toString();
  out += secondary_key.empty() ? " (primary key)" : " (primary key, secondary key)";
  return out;
}

const IdentityEntry* IdentityConfig::find(const Identity& identity) const {
  for (const IdentityEntry& entry : identities) {
    if (entry.identity == identity) return &entry;
  }
  return nullptr;
}

const IdentityEntry* IdentityConfig::findByClientId(std::string_view client_id) const {
  Result<Identity> identity = Identity::parseClientId(client_id);
  if (!identity.isOk()) return nullptr;
  return find(*identity);
}

const IdentityEntry* IdentityConfig::findModule(std::string_view module_id) const {
  for (const IdentityEntry& entry : identities) {
    if (entry.identity.isModule() && entry.identity.deviceId() == device_id &&
        entry.identity.moduleId() == module_id) {
      return &entry;
    }
  }
  return nullptr;
}

std::string IdentityConfig::toString() const {
  std::string out = "hub " + hub_host_name + ", device " + device_id + ", " +
                    std::to_string(identities.size()) + " identities";
  for (const IdentityEntry& entry : identities) {
    out += "\n  " + entry.toString();
  }
  return out;
}

Result<IdentityConfig> parseIdentityConfig(std::string_view json_text) {
  try {
    std::vector<std::string> duplicates;
    HUB_ASSIGN_OR_RETURN(Json root, config_internal::parseJson(json_text, kMaxIdentityFileBytes,
                                                               "identity file", &duplicates));
    if (!root.is_object()) {
      return invalidArgument("identity file: must be a JSON object, got " + describeJson(root));
    }
    std::vector<std::string> problems;
    for (const std::string& path : duplicates) {
      problems.push_back(path + ": duplicate member name (the later value would replace the "
                                "earlier)");
    }
    IdentityConfig config;
    if (const std::string* host = stringMember(root, "hubHostName", "", true, problems)) {
      if (!isValidHostName(*host)) {
        problems.push_back("hubHostName: invalid host name " + describeJson(*root.find("hubHostName")));
      } else {
        config.hub_host_name = *host;
      }
    }
    bool device_ok = false;
    if (const std::string* device = stringMember(root, "deviceId", "", true, problems)) {
      Result<Identity> id = Identity::makeDevice(*device);
      if (!id.isOk()) {
        problems.push_back("deviceId: " + std::string(id.status().message()));
      } else {
        config.device_id = *device;
        device_ok = true;
      }
    }
    const auto list = root.find("identities");
    if (list == root.end()) {
      problems.push_back("identities: required (an array, may be empty)");
    } else if (!list->is_array()) {
      problems.push_back("identities: must be an array, got " + describeJson(*list));
    } else {
      std::set<Identity> seen;
      for (size_t i = 0; i < list->size(); ++i) {
        const Json& item = (*list)[i];
        const std::string path = indexPath("identities", i);
        if (!item.is_object()) {
          problems.push_back(path + ": must be an object, got " + describeJson(item));
          continue;
        }
        const size_t before = problems.size();
        const std::string* module_id = stringMember(item, "moduleId", path, false, problems);
        const bool has_module = item.contains("moduleId");
        const std::string* device_id = stringMember(item, "deviceId", path, !has_module, problems);
        std::optional<Identity> identity;
        if (has_module && module_id != nullptr) {
          if (device_id != nullptr && device_ok && *device_id != config.device_id) {
            problems.push_back(childPath(path, "deviceId") + ": a module entry belongs to the "
                               "edge device '" + config.device_id + "', got " +
                               describeJson(*item.find("deviceId")));
          } else if (!Identity::isValidModuleId(*module_id)) {
            problems.push_back(childPath(path, "moduleId") + ": " +
                               std::string(Identity::makeModule("d", *module_id).status().message()));
          } else if (device_ok) {
            identity = Identity::module(config.device_id, *module_id);
          }
        } else if (!has_module && device_id != nullptr) {
          Result<Identity> id = Identity::makeDevice(*device_id);
          if (!id.isOk()) {
            problems.push_back(childPath(path, "deviceId") + ": " +
                               std::string(id.status().message()));
          } else if (device_ok && *device_id == config.device_id) {
            problems.push_back(childPath(path, "deviceId") + ": a leaf device cannot use the edge "
                               "device's own id '" + config.device_id + "'");
          } else {
            identity = *id;
          }
        }
        IdentityEntry entry{identity.value_or(Identity::device("x")), {}, {}};
        if (const std::string* key = stringMember(item, "primaryKey", path, true, problems)) {
          if (checkKey(*key, childPath(path, "primaryKey"), problems)) entry.primary_key = *key;
        }
        if (const std::string* key = stringMember(item, "secondaryKey", path, false, problems)) {
          if (checkKey(*key, childPath(path, "secondaryKey"), problems)) entry.secondary_key = *key;
        }
        if (identity && !seen.insert(*identity).second) {
          problems.push_back(path + ": duplicate identity " + identity->toString());
          continue;
        }
        if (problems.size() == before && identity) config.identities.push_back(std::move(entry));
      }
    }
    if (!problems.empty()) return invalidArgument(config_internal::joinLines(problems));
    return config;
  } catch (const std::exception& e) {
    // Every access above is type-checked first; reaching this is a bug, not bad input.
    return internalError(std::string("identity file parser: unexpected exception: ") + e.what());
  }
}

Result<IdentityConfig> loadIdentityFile(const std::string& path) {
  HUB_ASSIGN_OR_RETURN(std::string text, config_internal::readSmallFile(
                                             path, kMaxIdentityFileBytes, "identity file"));
  Result<IdentityConfig> config = parseIdentityConfig(text);
  if (!config.isOk()) {
    return Status(config.status().code(), "identity file '" + path + "' is invalid:\n" +
                                              std::string(config.status().message()));
  }
  return config;
}

std::string serializeIdentityConfig(const IdentityConfig& config) {
  Json root = Json::object();
  root["hubHostName"] = config.hub_host_name;
  root["deviceId"] = config.device_id;
  Json list = Json::array();
  for (const IdentityEntry& entry : config.identities) {
    Json item = Json::object();
    if (entry.identity.isModule()) {
      item["moduleId"] = entry.identity.moduleId();
    } else {
      item["deviceId"] = entry.identity.deviceId();
    }
    item["primaryKey"] = entry.primary_key;
    if (!entry.secondary_key.empty()) item["secondaryKey"] = entry.secondary_key;
    list.push_back(std::move(item));
  }
  root["identities"] = std::move(list);
  // Ids and keys are ASCII by construction, so dump() cannot meet invalid UTF-8 and throw.
  return root.dump(2) + "\n";
}

Status writeIdentityFile(const std::string& path, const IdentityConfig& config) {
  const std::string data = serializeIdentityConfig(config);
  const std::string dir = parentDirectory(path);
  std::string tmp = path + ".tmp.XXXXXX";
  // mkstemp creates the file with mode 0600, so the keys are never readable by others, not even
  // between creation and rename.
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return ioError("cannot create a temporary file next to '" + path + "': " +
                   std::strerror(errno));
  }
  Status status = writeAll(fd, data);
  if (status.isOk() && ::fchmod(fd, S_IRUSR | S_IWUSR) != 0) status = ioError(std::strerror(errno));
  if (status.isOk() && ::fsync(fd) != 0) status = ioError(std::strerror(errno));
  if (::close(fd) != 0 && status.isOk()) status = ioError(std::strerror(errno));
  if (status.isOk() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ioError(std::strerror(errno));
  }
  if (!status.isOk()) {
    ::unlink(tmp.c_str());
    return ioError("cannot write identity file '" + path + "': " + std::string(status.message()));
  }
  // The rename is durable only once the directory entry is on disk.
  return checkedDirFsync(dir);
}

Result<std::string> generateKey() {
  unsigned char bytes[kGeneratedKeyBytes];
  size_t filled = 0;
  while (filled < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + filled, sizeof bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ioError(std::string("getrandom failed: ") + std::strerror(errno));
    }
    filled += static_cast<size_t>(n);
  }
  return base64Encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

Result<IdentityConfig> loadOrCreateIdentities(const std::string& data_dir,
                                              const Manifest& manifest,
                                              const IdentityDefaults& defaults) {
  const std::string path = data_dir + "/" + std::string(kIdentitiesFileName);
  IdentityConfig config;
  bool changed = false;
  Result<IdentityConfig> existing = loadIdentityFile(path);
  if (existing.isOk()) {
    config = std::move(existing).value();
  } else if (existing.status().code() == StatusCode::kNotFound) {
    if (!isValidHostName(defaults.hub_host_name)) {
      return invalidArgument("invalid default hub host name '" + defaults.hub_host_name + "'");
    }
    if (!Identity::isValidDeviceId(defaults.device_id)) {
      return invalidArgument("invalid default device id '" + defaults.device_id + "'");
    }
    config.hub_host_name = defaults.hub_host_name;
    config.device_id = defaults.device_id;
    changed = true;
  } else if (existing.status().code() == StatusCode::kInvalidArgument) {
    // Our own file no longer parses: do not overwrite it (its keys may still be recoverable).
    return corruption(std::string(existing.status().message()));
  } else {
    return existing.status();
  }
  for (const ModuleSpec& module : manifest.modules) {
    if (config.findModule(module.name) != nullptr) continue;
    HUB_ASSIGN_OR_RETURN(std::string primary, generateKey());
    HUB_ASSIGN_OR_RETURN(std::string secondary, generateKey());
    // Manifest module names are validated module ids (parseManifest).
    config.identities.push_back(
        IdentityEntry{Identity::module(config.device_id, module.name), std::move(primary),
                      std::move(secondary)});
    changed = true;
  }
  // The hub's own identity: the operator's key for `edgehub method invoke`.
  if (config.findModule(kEdgeHubModuleId) == nullptr) {
    HUB_ASSIGN_OR_RETURN(std::string primary, generateKey());
    HUB_ASSIGN_OR_RETURN(std::string secondary, generateKey());
    config.identities.push_back(IdentityEntry{Identity::module(config.device_id, std::string(kEdgeHubModuleId)),
                                              std::move(primary), std::move(secondary)});
    changed = true;
  }
  if (changed) HUB_RETURN_IF_ERROR(writeIdentityFile(path, config));
  return config;
}

std::string edgeHubConnectionString(const IdentityConfig& config, std::string_view module_id,
                                    std::string_view gateway_host_name) {
  const IdentityEntry* entry = config.findModule(module_id);
  if (entry == nullptr) return std::string();
  std::string out = "HostName=" + config.hub_host_name + ";DeviceId=" + config.device_id +
                    ";ModuleId=" + std::string(module_id) + ";SharedAccessKey=" +
                    entry->primary_key;
  if (!gateway_host_name.empty()) out += ";GatewayHostName=" + std::string(gateway_host_name);
  return out;
}

}  // namespace edgehub::core
