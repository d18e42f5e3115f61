#!/usr/bin/env bash
# Runs the Autobahn|Testsuite (../shared/autobahn) against wsio in both roles: the
# `autobahn_server` example as the server under test and `autobahn_client` as the client under
# test. Strict: a FAILED, NON-STRICT or MISSING case fails the run.
#
#   bash scripts/autobahn.sh            # both roles
#   bash scripts/autobahn.sh server     # one role
# Reports: $AUTOBAHN_REPORTS (default target/autobahn-reports).
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOBAHN_DIR="${AUTOBAHN_DIR:-../shared/autobahn}"
export AUTOBAHN_REPORTS="${AUTOBAHN_REPORTS:-$PWD/target/autobahn-reports}"
export AUTOBAHN_STRICT=1 AUTOBAHN_FAIL_ON="FAILED NON-STRICT"
export AUTOBAHN_AGENT="${AUTOBAHN_AGENT:-wsio}"
roles="${*:-server client}"

[ -d "$AUTOBAHN_DIR" ] || { echo "no $AUTOBAHN_DIR: clone the shared folder beside this repo" >&2; exit 2; }
bash "$AUTOBAHN_DIR/setup.sh" >/dev/null
cargo build --release --example autobahn_server --example autobahn_client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

status=0
for role in $roles; do
  case "$role" in
    server)
      port=$(free_port)
      target/release/examples/autobahn_server "127.0.0.1:$port" 2>/dev/null &
      server_pid=$!
      trap 'kill $server_pid 2>/dev/null || true' EXIT
      AUTOBAHN_SETUP=0 bash "$AUTOBAHN_DIR/run.sh" server-under-test "127.0.0.1:$port" || status=1
      kill "$server_pid" 2>/dev/null || true
      trap - EXIT
      ;;
    client)
      AUTOBAHN_SETUP=0 AUTOBAHN_PORT="$(free_port)" \
        bash "$AUTOBAHN_DIR/run.sh" client-under-test target/release/examples/autobahn_client || status=1
      ;;
    *) echo "unknown role $role (server or client)" >&2; exit 2 ;;
  esac
done
exit "$status"
