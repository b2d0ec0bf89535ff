#pragma once
// Helpers for the store tests: temporary directories, messages, a completion that records what
// arrives (and on which thread), and waiting on conditions with a deadline.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/engine/message_store.h"
#include "core/identity.h"
#include "core/loop/loop.h"
#include "core/message/message.h"

namespace edgehub::store::testing {

inline constexpr int64_t kEnqueuedMs = 1'700'000'000'000;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string();
    tmpl.append("/store_test_XXXXXX");
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    const char* p = ::mkdtemp(buf.data());
    path_ = p != nullptr ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    // Also whatever a repair moved aside next to it.
    for (const auto& e : std::filesystem::directory_iterator(
             std::filesystem::path(path_).parent_path(), ec)) {
      const std::string name = e.path().string();
      if (name.rfind(path_, 0) == 0 && name != path_) std::filesystem::remove_all(e.path(), ec);
    }
  }
  const std::string& path() const { return path_; }
  std::string sub(std::string_view name) const {
    std::string p = path_;
    p.append("/").append(name);
    return p;
  }

 private:
  std::string path_;
};

inline core::MessageRef makeMessage(uint64_t sequence, std::string_view body,
                                    int64_t enqueued_ms = kEnqueuedMs) {
  core::MessageBuilder b;
  b.reset();
  b.setSequence(sequence);
  b.setEnqueuedTimeMs(enqueued_ms);
  b.setOrigin(core::Identity::module("edge-device", "sensor"));
  std::string id = "msg-";
  id.append(std::to_string(sequence));
  b.setSystem(core::SystemField::kMessageId, id);
  b.setSystem(core::SystemField::kContentType, "application/json");
  b.addProperty("alert", "true");
  b.addProperty("nothing", std::nullopt);
  b.setBody(body);
  return b.finish().value();
}

inline core::EndpointInfo moduleEndpoint(const std::string& module, const std::string& input) {
  core::EndpointInfo e;
  e.kind = core::EndpointInfo::Kind::kModuleInput;
  e.module_id = module;
  e.input = input;
  e.name = "BrokeredEndpoint(\"/modules/";
  e.name.append(module).append("/inputs/").append(input).append("\")");
  return e;
}

inline core::EndpointInfo upstreamEndpoint() {
  core::EndpointInfo e;
  e.name = "$upstream";
  return e;
}

// Records completions; onStored() runs on the reply loop's thread.
class RecordingCompletion final : public core::StoreCompletion {
 public:
  // Checked on every completion (runs on the loop thread), e.g. "is on the loop, is readable".
  std::function<void(uint64_t token, const core::Status&)> check;

  void onStored(uint64_t token, const core::Status& status) override {
    if (check) check(token, status);
    std::lock_guard lock(mu_);
    statuses_[token] = status;
    ++count_;
    cv_.notify_all();
  }
  // Waits until `n` completions arrived (false at the deadline).
  bool waitFor(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return count_;
  }
  core::Status status(uint64_t token) {
    std::lock_guard lock(mu_);
    auto it = statuses_.find(token);
    return it == statuses_.end() ? core::notFound("no completion") : it->second;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, core::Status> statuses_;
  size_t count_ = 0;
};

// Polls `pred` until it holds or the deadline passes. For state only observable by polling
// (store counters); the deadline bounds a broken test and decides nothing.
inline bool waitUntil(const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace edgehub::store::testing
