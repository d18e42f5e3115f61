#!/usr/bin/env bash
# Runs the Autobahn|Testsuite (../shared/autobahn) against wsio in both roles: the
# `autobahn_server` example as the server under test and `autobahn_client` as the client under
# test, with permessage-deflate negotiated (12.* and 13.* included). Strict: a FAILED,
# NON-STRICT, UNIMPLEMENTED or MISSING case fails the run.
#
#   bash scripts/autobahn.sh            # both roles, at once (one wstest process each)
#   bash scripts/autobahn.sh server     # one role
#   AUTOBAHN_FULL=1 bash scripts/autobahn.sh   # all 517 cases
#
# Without AUTOBAHN_FULL, the compression cases with the largest messages (12.*.9, 12.*.10,
# 12.*.14-18 and the same in 13.*: 1000 messages of 64 KiB to 1 MiB each) are left out: the
# suite's Python compresses and inflates them at a few MB/s, which takes about 11 of the 14
# minutes a full role needs on a 2-core machine (wsio's own share is about a tenth of that).
# Every other case, 133 of the 216 compression cases among them, runs in CI.
# Reports: $AUTOBAHN_REPORTS (default target/autobahn-reports).
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOBAHN_DIR="${AUTOBAHN_DIR:-../shared/autobahn}"
export AUTOBAHN_REPORTS="${AUTOBAHN_REPORTS:-$PWD/target/autobahn-reports}"
export AUTOBAHN_STRICT=1 AUTOBAHN_FAIL_ON="FAILED NON-STRICT UNIMPLEMENTED"
export AUTOBAHN_AGENT="${AUTOBAHN_AGENT:-wsio}"
roles="${*:-server client}"

if [ "${AUTOBAHN_FULL:-0}" != 1 ]; then
  large=""
  for group in 12.1 12.2 12.3 12.4 12.5 13.1 13.2 13.3 13.4 13.5 13.6 13.7; do
    for n in 9 10 14 15 16 17 18; do large="$large $group.$n"; done
  done
  export AUTOBAHN_EXCLUDE="${AUTOBAHN_EXCLUDE:-$large}"
fi

[ -d "$AUTOBAHN_DIR" ] || { echo "no $AUTOBAHN_DIR: clone the shared folder beside this repo" >&2; exit 2; }
bash "$AUTOBAHN_DIR/setup.sh" >/dev/null
cargo build --release --example autobahn_server --example autobahn_client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
logs="$AUTOBAHN_REPORTS/logs"
mkdir -p "$logs"

run_role() {
  case "$1" in
    server)
      port=$(free_port)
      target/release/examples/autobahn_server "127.0.0.1:$port" 2>/dev/null &
      server_pid=$!
      local status=0
      AUTOBAHN_SETUP=0 bash "$AUTOBAHN_DIR/run.sh" server-under-test "127.0.0.1:$port" || status=$?
      kill "$server_pid" 2>/dev/null || true
      return "$status"
      ;;
    client)
      AUTOBAHN_SETUP=0 AUTOBAHN_PORT="$(free_port)" \
        bash "$AUTOBAHN_DIR/run.sh" client-under-test target/release/examples/autobahn_client
      ;;
    *) echo "unknown role $1 (server or client)" >&2; return 2 ;;
  esac
}

# Each role's wstest is one single-threaded Python process: both run at once, on two cores.
pids=()
for role in $roles; do
  run_role "$role" >"$logs/$role.log" 2>&1 &
  pids+=("$!")
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
trap - EXIT
for role in $roles; do
  echo "==> autobahn, wsio as the $role"
  cat "$logs/$role.log"
done
exit "$status"
