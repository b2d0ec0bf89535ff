#!/usr/bin/env bash
# Style rule 2: each third-party header stays behind its wall, and the library layering holds
# (core depends on nothing of ours; routing/store/transports only on core). Fails with the
# offending lines.
set -u
root="${1:-.}"
cd "$root" || exit 2
fail=0
check() {  # check DESCRIPTION PATTERN ALLOWED_REGEX
  local hits
  hits=$(grep -rnE --include='*.h' --include='*.cc' "$2" core routing store transports hub bench tests 2>/dev/null \
         | grep -vE "^($3)" || true)
  if [ -n "$hits" ]; then
    echo "layering violation: $1"
    echo "$hits"
    fail=1
  fi
}
check "<uv.h> outside core/loop/" '#include <uv\.h>' 'core/loop/'
check "RocksDB outside store/" '#include <rocksdb/' 'store/|tests/store/|bench/store/'
check "OpenSSL outside transports/" '#include <openssl/' 'transports/|tests/transports/'
check "libmosquitto outside transports/" '#include <mosquitto' 'transports/|tests/transports/'
check "simdjson outside routing/" '#include <simdjson' 'routing/|bench/routing/|tests/routing/'
check "nlohmann in a public header (keep it in .cc files)" '#include <nlohmann' '[^:]*\.cc:|core/config/json_util\.h:'
check "core depending on another library of ours" '#include "(routing|store|transports|hub)/' 'routing/|store/|transports/|hub/|bench/|tests/'
check "routing/store/transports depending on each other or on hub/" \
  '#include "(routing|store|transports|hub)/' 'routing/[^:]*:[0-9]+:#include "routing/|store/[^:]*:[0-9]+:#include "store/|transports/[^:]*:[0-9]+:#include "transports/|hub/|bench/|tests/'
if [ "$fail" -eq 0 ]; then echo "layering ok"; fi
exit "$fail"
