#!/usr/bin/env bash
# Installs missing packages, builds (Release) into build/, and starts the hub on the example
# manifest with its data in ./.edgehub. Extra arguments go to `edgehub run` (try --help).
set -euo pipefail
cd "$(dirname "$0")"
source .ci/common.sh
hub_ensure_packages
hub_build build -DCMAKE_BUILD_TYPE=Release
exec build/edgehub run --manifest examples/deployment.json --data .edgehub "$@"
