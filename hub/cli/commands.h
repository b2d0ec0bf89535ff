#pragma once
// The `edgehub` command line: subcommands, flags, exit codes.
//   0  success
//   1  the command ran and failed (invalid manifest, cannot bind, route cases failed, ...)
//   2  usage error: unknown subcommand or flag, missing or bad flag value (one line on stderr)
//
// Thread-safety: call from the main thread only. `run` blocks until SIGINT or SIGTERM.
#include <iosfwd>
#include <string>
#include <vector>

namespace edgehub::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// `args` excludes the program name. Output goes to `out`, diagnostics to `err`.
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// main(): converts argv and calls runCli with std::cout / std::cerr.
int runMain(int argc, char** argv);

}  // namespace edgehub::cli
