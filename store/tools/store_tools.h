#pragma once
// The `edgehub store stats` and `edgehub store peek` commands, as functions the CLI calls.
// Both open the store at <data_dir>/store read-only (no store thread, no writes, no LOG file)
// so they can inspect a stopped hub's data; they print to `out`, diagnostics to `err`, and
// return a process exit code (0 ok, 1 failure).
//
// Thread-safety: none needed (cold, called once from the CLI's main thread).
// Ownership: nothing is kept after the call returns.
#include <cstddef>
#include <iosfwd>
#include <string>

namespace edgehub::store {

// Per endpoint and priority class: count, bytes, age of the oldest message; then totals and
// drop counters.
int runStoreStats(const std::string& data_dir, std::ostream& out, std::ostream& err);

// Prints up to `n` messages queued for `endpoint_name` (canonical name, e.g. `$upstream` or
// `BrokeredEndpoint("/modules/m/inputs/i")`), highest priority class first, each with its
// sequence, enqueue time, origin, system and application properties, and body (text when it is
// UTF-8, base64 otherwise).
int runStorePeek(const std::string& data_dir, const std::string& endpoint_name, size_t n,
                 std::ostream& out, std::ostream& err);

// Prints the module twin of `client_id` ("{deviceId}/{moduleId}", or a leaf device's id) as the
// hub answers a twin GET: {"desired": {...}, "reported": {...}} with versions and metadata.
// Exit 1 when the store has no twin for it.
int runTwinShow(const std::string& data_dir, const std::string& client_id, std::ostream& out, std::ostream& err);

}  // namespace edgehub::store
