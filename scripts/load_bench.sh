#!/usr/bin/env bash
# Runs the load generator (examples/wsio_load) against wsio's examples/echo_server, the echo
# servers of examples/peer_echo_server.rs (tokio-tungstenite, tokio-websockets, fastwebsockets)
# and Node `ws` and Python `websockets` (tests/peers/), each in its own process, in the issue's
# three shapes, and prints a markdown table on stdout:
#   - 100 connections x 64 B ping-pong (closed loop, 1 in flight: uWebSockets' load_test shape);
#   - 500 connections x 16 KiB ping-pong;
#   - 1 connection x 64 B at a fixed rate (open loop), for latency without coordinated omission;
#   - 10,000 connections x 64 B ping-pong, opened at 5,000 a second during a longer warm-up.
# permessage-deflate is off, as most published figures are. The JSON reports stay in
# $OUT (default: a temporary directory).
#
# Usage: scripts/load_bench.sh            # 5 s per shape after 1 s of warm-up, ~3 min
#        DURATION=10 RATE=5000 SERVERS="wsio fastwebsockets" scripts/load_bench.sh
# Client and server share the machine: the CPU column says how busy the client was.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-5}
warmup=${WARMUP:-1}
rate=${RATE:-1000}
servers=${SERVERS:-wsio tokio-tungstenite tokio-websockets fastwebsockets node-ws python-websockets}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

cargo build --release --quiet --example echo_server --example peer_echo_server --example wsio_load
case " $servers " in
*" node-ws "* | *" python-websockets "*) bash scripts/install-peers.sh >&2 ;;
esac
bin=target/release/examples

server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# start SERVER: starts its echo server on a free port and sets $url.
start() {
    local log="$out/$1.server.log"
    # Node `ws` and Python `websockets` (tests/peers/, echo-server --forever: many
    # connections, no per-message log) print "listening PORT"; the Rust servers print their URL.
    local peer_args=(echo-server --port 0 --forever --timeout 3600)
    case "$1" in
        wsio) "$bin/echo_server" 127.0.0.1:0 2>"$log" & ;;
        node-ws) node tests/peers/node/peer.js "${peer_args[@]}" >"$log" 2>&1 & ;;
        python-websockets)
            tests/peers/python/.venv/bin/python tests/peers/python/peer.py "${peer_args[@]}" \
                >"$log" 2>&1 &
            ;;
        *) "$bin/peer_echo_server" "$1" 127.0.0.1:0 2>"$log" & ;;
    esac
    server_pid=$!
    for _ in $(seq 200); do
        url=$(sed -n 's/^.*echo server on \(ws:\/\/.*\)$/\1\//p' "$log")
        port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$log")
        [ -n "$port" ] && url="ws://127.0.0.1:$port/"
        [ -n "$url" ] && return
        sleep 0.05
    done
    echo "load_bench: the $1 echo server did not start" >&2
    exit 1
}

# shape NAME ARGS...: one run, its report in $out/NAME.json.
shape() {
    local name=$1
    shift
    echo "load_bench: $name" >&2
    "$bin/wsio_load" "$url" --compression off --warmup "${SHAPE_WARMUP:-$warmup}" \
        --duration "$duration" \
        --loopback-only --json "$out/$name.json" "$@" >/dev/null 2>"$out/$name.log" || {
        echo "load_bench: $name failed:" >&2
        tail -3 "$out/$name.log" >&2
        exit 1
    }
}

for server in $servers; do
    start "$server"
    shape "$server-100x64" --connections 100 --size 64
    shape "$server-500x16k" --connections 500 --size 16384
    shape "$server-1x64-rate" --connections 1 --size 64 --rate "$rate"
    SHAPE_WARMUP=$((warmup + 2)) shape "$server-10000x64" --connections 10000 \
        --connect-rate 5000 --size 64
    cleanup
    server_pid=
done

python3 - "$out" "$duration" $servers <<'PY'
import json, os, sys

out, duration, servers = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = [
    (server, shape, f"{server}-{suffix}")
    for server in servers
    for shape, suffix in [
        ("100 × 64 B ping-pong", "100x64"),
        ("500 × 16 KiB ping-pong", "500x16k"),
        (None, "1x64-rate"),
        ("10,000 × 64 B ping-pong", "10000x64"),
    ]
]

def us(v):
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"

print(f"| server | shape | msgs/s | MiB/s echoed | p50 | p99 | p99.9 | client CPU |")
print(f"|---|---|---:|---:|---:|---:|---:|---:|")
for server, shape, name in rows:
    r = json.load(open(os.path.join(out, name + ".json")))
    if shape is None:
        shape = f"1 × 64 B at {r['rate']:.0f} msg/s"
    lat = r["latency_us"]
    errors = sum(e["count"] for e in r["errors"].values())
    note = f" ({errors} errors)" if errors else ""
    cpu = r["cpu"]
    print(
        f"| {server} | {shape}{note} | {r['messages_per_sec']:,.0f} "
        f"| {r['received_bytes_per_sec'] / 2**20:.1f} | {us(lat['p50'])} | {us(lat['p99'])} "
        f"| {us(lat['p99_9'])} | {cpu['percent']:.0f}% of {cpu['cores']} |"
    )
print()
print(f"{duration} s per shape, permessage-deflate off; client and server on one machine.")
PY
