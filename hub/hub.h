#pragma once
// edgehub::Hub — the embedding API. One Hub is one running edge hub: its IO loops, listeners
// and (with later issues) its store, routes and upstream, created from one HubOptions value.
// The standalone binary (`edgehub run`) is a thin layer over exactly this class; an edge runtime
// that embeds the hub uses the same calls. docs/embedding.md describes the contract.
//
// Lifetime: create() validates the options and prepares state on disk (data directory,
// identities) but starts no thread. start() starts the hub's own threads and binds its
// listeners before returning. stop() stops accepting, finishes what is in flight, closes every
// handle and joins every thread; it is idempotent. The destructor calls stop(), so destroying
// a Hub is always safe.
//
// Thread-safety: create(), start(), stop() and the accessors may be called from any one
// thread at a time (the owner's); they are not for concurrent use. No callback of the Hub runs
// on the caller's thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/identities.h"
#include "core/config/manifest.h"
#include "core/status.h"

namespace edgehub {

struct HubOptions {
  // The validated deployment manifest (core::loadManifestFile / core::parseManifest).
  core::Manifest manifest;
  // Identities and keys. Without a value, the hub generates a key for every module of the
  // manifest and persists it under data_dir (see core/config/identities.h).
  std::optional<core::IdentityConfig> identities;
  // Where the hub keeps its state. Created if missing.
  std::string data_dir = ".edgehub";
  // Number of IO loops; 0 means one per core.
  unsigned io_threads = 0;
  // Plain MQTT listener "host:port" (port 0 = any free port); empty disables it.
  std::string mqtt_listen = "127.0.0.1:1883";
};

class Hub {
 public:
  // Validates options and prepares the data directory. Errors: kInvalidArgument (bad options),
  // kIoError (data directory or identity file not usable).
  static core::Result<std::unique_ptr<Hub>> create(HubOptions options);

  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  ~Hub();

  // Starts the IO loops and binds the listeners. Errors leave the hub stopped.
  core::Status start();
  // Stops everything and joins the hub's threads. Idempotent; safe before start().
  void stop();

  bool running() const;
  // The bound listener addresses ("127.0.0.1:40123"), valid after a successful start().
  std::vector<std::string> listeningAddresses() const;
  // The identities in force (loaded or generated).
  const core::IdentityConfig& identities() const;
  const HubOptions& options() const;

 private:
  class Impl;
  explicit Hub(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgehub
