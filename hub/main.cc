// The `edgehub` binary: a thin layer over the library (hub/hub.h) and its CLI.
#include "hub/cli/commands.h"

int main(int argc, char** argv) { return edgehub::cli::runMain(argc, argv); }
