#pragma once
// TwinService: the module twins of a hub (issue 06), kept in memory where their modules' sessions
// run and persisted in the message store's group commit.
//
// Partitioning. A twin is touched only by its own identity (dialect section 11.3: only the twin's
// identity may read or patch it), whose session runs on the identity's home loop, so the twins are
// partitioned by home shard and each partition is used only on its loop: no locks. load() fills
// every partition before the loops take connections.
//
// Durability. A reported patch changes the in-memory twin at once (so a GET that follows sees it)
// and the caller then asks the store to write the whole document (MessageStore::saveTwin) and
// answers 204 from the completion, so an acknowledged patch is as durable as an acknowledged
// message. Saves of one identity are queued in order on one loop, so the last write is the
// newest document.
//
// The two sides of a twin. A module's twin requests and method calls reach its home loop from
// two directions: the module (the MQTT server's session) and the cloud (the upstream bridge,
// which is homed on the same loop). They never know each other; each registers its half here per
// shard (ModuleSide, CloudSide) and finds the other through the service, on that loop.
//
// Thread-safety: the per-shard methods REQUIRE the shard's loop thread; load() runs before the
// loops serve clients, on the caller's thread.
// Ownership: owns the twins; `engine` must outlive it. The sides are borrowed: each must detach
// (attach with nullptr) before it is destroyed.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config/identities.h"
#include "core/config/manifest.h"
#include "core/engine/engine.h"
#include "core/twin/twin.h"

namespace edgehub::core::twin {

struct TwinEntry {
  Twin twin;
  // The desired $version last sent to the module as a patch, or seen by it in a GET: a module that
  // subscribes to desired patches with an older one gets the whole desired section (catch-up).
  int64_t desired_version_seen = 0;
};

// The module half, implemented by the MQTT server on each loop. Calls REQUIRE that loop.
class ModuleSide {
 public:
  // The twin's desired section changed (the cloud's patch or its whole section after a
  // reconnect). A session of `client_id` subscribed to desired patches gets `patch_json` (with
  // "$version") now; one that is not catches up when it subscribes.
  virtual void onDesiredChanged(const std::string& client_id, int64_t version, const std::string& patch_json) = 0;
  using MethodDone = std::function<void(int status, std::string payload)>;
  // Calls a method of a connected module on this loop; `done` runs exactly once on this loop
  // (possibly before invokeMethod returns: 404 if the module is not connected or not
  // subscribed to method requests), with the module's status and payload, or 504 when
  // `timeout` passes first. `done` must not call invokeMethod.
  virtual void invokeMethod(const std::string& client_id, const std::string& method, std::string payload,
                            std::chrono::milliseconds timeout, MethodDone done) = 0;

 protected:
  ~ModuleSide() = default;
};

// The cloud half, implemented by the upstream bridge of each loop. Calls REQUIRE that loop.
class CloudSide {
 public:
  // A reported patch of `client_id` is durable (its module had the 204): send it upstream.
  virtual void onReportedStored(const std::string& client_id) = 0;
  // A module session of `client_id` opened or closed on this loop: while one is open, the
  // identity's upstream link stays up so that the cloud can reach it (desired patches, methods).
  virtual void onModulePresence(const std::string& client_id, bool connected) = 0;

 protected:
  ~CloudSide() = default;
};

class TwinService {
 public:
  explicit TwinService(Engine& engine);

  // Loads the stored twins, creates the missing twins of the identity config's modules and
  // applies the manifest's desired properties (modulesContent.{module}.properties.desired): a
  // changed desired section bumps its $version. Writes what changed and waits for the writes.
  // Errors: the store's (kIoError, kDataLoss for a damaged twin).
  Status load(const Manifest& manifest, const IdentityConfig& identities);

  // The twin of a client id homed on `shard`; created empty if it has none (a leaf device).
  // REQUIRES: shard == engine.homeShardOf(client_id), on that shard's loop.
  TwinEntry& entry(uint32_t shard, const std::string& client_id);
  const TwinEntry* find(uint32_t shard, std::string_view client_id) const;

  // The twin change notification of an accepted reported patch (routing-language.md section 12,
  // dialect section 5): messageType/messageSchema twinChangeNotification, version,
  // rpSenderDeviceId, rpSenderModuleId, connectionModuleId $edgeHub, JSON body
  // {"version": v, "properties": {"reported": <patch>}}. Origin: the patching identity, so an
  // upstream route sends it under that identity.
  // The sides of `shard` (nullptr: none). attach*() REQUIRE the shard's loop thread (or no loop
  // running yet); so do the getters.
  void attachModuleSide(uint32_t shard, ModuleSide* side) { sides_[shard].modules = side; }
  void attachCloudSide(uint32_t shard, CloudSide* side) { sides_[shard].cloud = side; }
  ModuleSide* moduleSide(uint32_t shard) const { return sides_[shard].modules; }
  CloudSide* cloudSide(uint32_t shard) const { return sides_[shard].cloud; }

  static Result<MessageRef> changeNotification(MessageBuilder& builder, const Identity& sender, int64_t version,
                                               std::string_view patch_json, uint64_t sequence, int64_t now_ms);

 private:
  struct Sides {
    ModuleSide* modules = nullptr;
    CloudSide* cloud = nullptr;
  };
  Engine& engine_;
  std::vector<std::unordered_map<std::string, TwinEntry>> shards_;
  std::vector<Sides> sides_;
};

}  // namespace edgehub::core::twin
