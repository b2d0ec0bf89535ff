#include "core/twin/twin_service.h"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>

#include "core/log/logger.h"

namespace edgehub::core::twin {

namespace {

constexpr std::string_view kLog = "twin";

int64_t nowMs(const TimeSource& time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.systemTime().time_since_epoch()).count();
}

// Waits for the completions of the saves made at load (cold: once at start).
class SaveWaiter final : public StoreCompletion {
 public:
  explicit SaveWaiter(size_t n) : left_(n) {
    if (n == 0) done_.set_value();
  }
  void onStored(uint64_t, const Status& status) override {
    if (!status.isOk()) {
      std::lock_guard lock(mu_);
      if (first_error_.isOk()) first_error_ = status;
    }
    if (left_.fetch_sub(1) == 1) done_.set_value();
  }
  Status wait() {
    done_.get_future().wait();
    std::lock_guard lock(mu_);
    return first_error_;
  }

 private:
  std::atomic<size_t> left_;
  std::promise<void> done_;
  std::mutex mu_;
  Status first_error_;
};

}  // namespace

TwinService::TwinService(Engine& engine)
    : engine_(engine), shards_(engine.shardCount()), sides_(engine.shardCount()) {}

Status TwinService::load(const Manifest& manifest, const IdentityConfig& identities) {
  std::vector<std::pair<std::string, std::string>> stored;
  HUB_RETURN_IF_ERROR(engine_.store().loadTwins(stored));
  for (auto& [client_id, document] : stored) {
    auto twin = Twin::parse(document);
    if (!twin.isOk()) return twin.status().withContext("the stored twin of " + client_id);
    shards_[engine_.homeShardOf(client_id)][client_id].twin = std::move(twin).value();
  }
  const int64_t now = nowMs(engine_.time());
  std::vector<std::string> changed;
  for (const IdentityEntry& e : identities.identities) {
    const std::string client_id = e.identity.clientId();
    auto& shard = shards_[engine_.homeShardOf(client_id)];
    const bool fresh = shard.find(client_id) == shard.end();
    TwinEntry& entry = shard[client_id];
    if (fresh) changed.push_back(client_id);
    if (!e.identity.isModule() || e.identity.deviceId() != identities.device_id) continue;
    if (entry.twin.desiredFromCloud()) {
      // The cloud owns this desired section now; the manifest's copy only seeds a twin that has
      // never synced (the upstream refreshes it on every connect).
      continue;
    }
    for (const ModuleSpec& m : manifest.modules) {
      if (m.name != e.identity.moduleId()) continue;
      auto diff = entry.twin.setDesired(m.desired_properties, now);
      if (!diff.isOk()) return diff.status().withContext("the desired properties of module " + m.name);
      if (diff.value()) {
        if (!fresh) changed.push_back(client_id);
        HUB_LOG_INFO(kLog, "%s: desired properties from the manifest, $version %lld", client_id.c_str(),
                     static_cast<long long>(entry.twin.desiredVersion()));
      }
    }
  }
  // Written through the group commit like any twin; completions land on loop 0.
  SaveWaiter waiter(changed.size());
  for (const std::string& client_id : changed) {
    const TwinEntry& entry = shards_[engine_.homeShardOf(client_id)].at(client_id);
    engine_.store().saveTwin(client_id, entry.twin.serialize(), engine_.shard(0).loop(), waiter, 0);
  }
  return waiter.wait();
}

TwinEntry& TwinService::entry(uint32_t shard, const std::string& client_id) { return shards_[shard][client_id]; }

const TwinEntry* TwinService::find(uint32_t shard, std::string_view client_id) const {
  const auto& map = shards_[shard];
  auto it = map.find(std::string(client_id));
  return it == map.end() ? nullptr : &it->second;
}

Result<MessageRef> TwinService::changeNotification(MessageBuilder& builder, const Identity& sender, int64_t version,
                                                   std::string_view patch_json, uint64_t sequence, int64_t now_ms) {
  builder.reset();
  builder.setOrigin(sender);
  builder.setSequence(sequence);
  builder.setEnqueuedTimeMs(now_ms);
  builder.setSystem(SystemField::kMessageType, "twinChangeNotification");
  builder.setSystem(SystemField::kMessageSchema, "twinChangeNotification");
  builder.setSystem(SystemField::kContentType, "application/json");
  builder.setSystem(SystemField::kContentEncoding, "utf-8");
  builder.setSystem(SystemField::kConnectionDeviceId, sender.deviceId());
  builder.setSystem(SystemField::kConnectionModuleId, "$edgeHub");
  const std::string v = std::to_string(version);
  builder.addSystemExtra("version", v);
  builder.addSystemExtra("rpSenderDeviceId", sender.deviceId());
  if (sender.isModule()) builder.addSystemExtra("rpSenderModuleId", sender.moduleId());
  std::string body = "{\"version\":";
  body.append(v).append(",\"properties\":{\"reported\":").append(patch_json).append("}}");
  builder.setBody(body);
  return builder.finish();
}

}  // namespace edgehub::core::twin
