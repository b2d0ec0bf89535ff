#pragma once
// `edgehub bench`: the command line of the end-to-end load generator (bench/loadgen/loadgen.h).
// Parsing lives here, next to the other commands, so that bench/loadgen/ needs nothing of hub/
// (hub_hub links hub::loadgen, never the other way round).
//
// Thread-safety: main thread only; blocks for the whole run. Exit codes as in commands.h:
// 0 every target ran and the delivery check passed, 1 a run failed or the check failed,
// 2 usage error.
#include <iosfwd>
#include <string>
#include <vector>

namespace edgehub::cli {

// `args` are those after `edgehub bench`.
int runBenchCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace edgehub::cli
