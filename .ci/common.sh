# Shared by ./run.sh and ./test.sh: install missing Debian packages, configure and build.
# Sourced, not executed. Idempotent: with everything installed and built it only checks.

HUB_PACKAGES=(
  g++ cmake ninja-build pkg-config ccache
  libuv1-dev libflatbuffers-dev flatbuffers-compiler librocksdb-dev libssl-dev libmosquitto-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsimdjson-dev nlohmann-json3-dev
  mosquitto mosquitto-clients
)

hub_ensure_packages() {
  local missing=()
  for p in "${HUB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Node.js and npm run the Azure IoT Node SDK tests; any install that provides both will do
  # (Debian's packages, or NodeSource's nodejs, which bundles npm).
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "edgehub: installing missing packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# hub_build DIR [extra cmake args...]: configure once (or when the arguments change), then build
# everything, or only the targets named in HUB_BUILD_TARGETS (space-separated).
hub_build() {
  local dir="$1"; shift
  local args=(-G Ninja -DHUB_WERROR=ON "$@")
  local stamp="$dir/.hub-configure-args"
  if [ ! -f "$dir/CMakeCache.txt" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${args[*]}" ]; then
    cmake -S . -B "$dir" "${args[@]}" >/dev/null
    echo "${args[*]}" > "$stamp"
  fi
  local targets=()
  for t in ${HUB_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
}
