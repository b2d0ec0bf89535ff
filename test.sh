#!/usr/bin/env bash
# Installs missing packages, builds, and runs the whole test suite with ctest.
#   ./test.sh           Release build in build/ (the same tree ./run.sh uses)
#   ./test.sh --asan    ASan+UBSan build in build-asan/
#   ./test.sh --tsan    ThreadSanitizer build in build-tsan/: the core suite (queues, loops,
#                       cross-thread post, the engine) and the hub suite (sessions handed
#                       between IO loops, cross-loop delivery), where the concurrency lives
# Extra arguments after the mode go to ctest (e.g. -R Manifest).
set -euo pipefail
cd "$(dirname "$0")"
source .ci/common.sh

mode=release
case "${1:-}" in
  --asan) mode=asan; shift ;;
  --tsan) mode=tsan; shift ;;
esac

hub_ensure_packages
case "$mode" in
  release) dir=build; hub_build "$dir" -DCMAKE_BUILD_TYPE=Release ;;
  asan) dir=build-asan; hub_build "$dir" -DCMAKE_BUILD_TYPE=Debug -DHUB_ASAN=ON ;;
  tsan) dir=build-tsan
        HUB_BUILD_TARGETS="core_tests hub_tests edgehub" hub_build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUB_TSAN=ON
        set -- -L "core|hub" "$@" ;;
esac

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 suppressions=$PWD/.ci/tsan.supp}"
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "$@"
