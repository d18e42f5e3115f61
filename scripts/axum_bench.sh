#!/usr/bin/env bash
# What serving wsio through axum costs, beside wsio's own `Acceptor` and beside axum's built-in
# `ws` (tokio-tungstenite) as the anchor, in ONE interleaved run: the three servers run at once,
# each in its own process, and every round measures each of them once per shape, in an order
# that rotates from round to round, so that the machine's drift (other jobs, thermal, the page
# cache) falls on all three alike. Prints a markdown table on stdout; the JSON reports of the
# load generator (examples/wsio_load) stay in $OUT (default: a temporary directory).
#
#   acceptor  examples/echo_server.rs: wsio's `Acceptor` on a bare `TcpListener`
#   wsio-axum examples/axum_echo.rs: wsio's `axum::WebSocketUpgrade` under `axum::serve`
#   axum-ws   examples/peer_echo_server.rs axum-ws: axum's own `ws` under `axum::serve`
#
# Shapes (permessage-deflate off, as axum's `ws` has none):
#   - upgrade: 2,000 connections opened at 1,000 a second, nearly idle once open (200 msg/s in
#     all): the connect + handshake time of each, p50 and p99;
#   - 100 connections x 64 B ping-pong, and 100 x 16 KiB: echoes per second, and the server
#     process's CPU time (user + system, from /proc) per echo over the measured window.
#
# Usage: scripts/axum_bench.sh                  # 3 rounds, 5 s per echo shape, ~3 min
#        ROUNDS=5 DURATION=10 scripts/axum_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-3}
duration=${DURATION:-5}
warmup=${WARMUP:-1}
upgrades=${UPGRADES:-2000}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
servers=(acceptor wsio-axum axum-ws)

cargo build --release --quiet --features axum \
    --example echo_server --example axum_echo --example peer_echo_server --example wsio_load
bin=target/release/examples

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

declare -A url pid
# start SERVER: starts its echo server on a free port and sets ${url[SERVER]}.
start() {
    local log="$out/$1.server.log"
    case "$1" in
        acceptor) "$bin/echo_server" 127.0.0.1:0 2>"$log" & ;;
        wsio-axum) "$bin/axum_echo" 127.0.0.1:0 2>"$log" & ;;
        axum-ws) "$bin/peer_echo_server" axum-ws 127.0.0.1:0 2>"$log" & ;;
    esac
    pids+=($!)
    pid[$1]=$!
    for _ in $(seq 200); do
        url[$1]=$(sed -n 's/^.*echo server on \(ws:\/\/.*\)$/\1\//p' "$log")
        [ -n "${url[$1]}" ] && return
        sleep 0.05
    done
    echo "axum_bench: the $1 echo server did not start" >&2
    exit 1
}

# The CPU time SERVER's process has used so far, in clock ticks (user + system).
ticks() { awk '{ print $14 + $15 }' "/proc/${pid[$1]}/stat"; }

# run SERVER NAME WARMUP DURATION ARGS...: one measurement, its report in $out/NAME.json and
# the server's CPU ticks over the measured window in $out/NAME.ticks. On a busy machine the
# rate moves with the other jobs; the server's CPU per echo much less.
run() {
    local server=$1 name=$2 warmup=$3 duration=$4
    shift 4
    echo "axum_bench: $name" >&2
    "$bin/wsio_load" "${url[$server]}" --compression off --loopback-only \
        --warmup "$warmup" --duration "$duration" \
        --json "$out/$name.json" "$@" >/dev/null 2>"$out/$name.log" &
    local load=$!
    sleep "$warmup"
    local before
    before=$(ticks "$server")
    sleep "$duration"
    echo $(($(ticks "$server") - before)) >"$out/$name.ticks"
    wait "$load" || {
        echo "axum_bench: $name failed:" >&2
        tail -3 "$out/$name.log" >&2
        exit 1
    }
}

for server in "${servers[@]}"; do start "$server"; done

# Long enough for every connection of the upgrade shape to be attempted before the run ends.
upgrade_warmup=$(python3 -c "print($upgrades / 1000 + 0.5)")
for round in $(seq "$rounds"); do
    for i in 0 1 2; do
        server=${servers[$(((i + round) % 3))]}
        run "$server" "$server-upgrade-$round" "$upgrade_warmup" 0.5 \
            --connections "$upgrades" --connect-rate 1000 --rate 200 --size 64
        run "$server" "$server-100x64-$round" "$warmup" "$duration" --connections 100 --size 64
        run "$server" "$server-100x16k-$round" "$warmup" "$duration" --connections 100 \
            --size 16384
    done
done

python3 - "$out" "$rounds" "$duration" "$upgrades" "$(getconf CLK_TCK)" "${servers[@]}" <<'PY'
import json, os, statistics, sys

out, rounds, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3]
upgrades, tick_us, servers = int(sys.argv[4]), 1e6 / int(sys.argv[5]), sys.argv[6:]
median = statistics.median

def report(server, shape, round):
    r = json.load(open(os.path.join(out, f"{server}-{shape}-{round}.json")))
    errors = sum(e["count"] for e in r["errors"].values())
    if errors:
        print(f"axum_bench: {server} {shape} round {round}: {errors} errors: {r['errors']}",
              file=sys.stderr)
    ticks = int(open(os.path.join(out, f"{server}-{shape}-{round}.ticks")).read())
    r["server_cpu_us_per_echo"] = ticks * tick_us / max(r["messages_received"], 1)
    return r

def us(v):
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"

runs = {
    (s, shape): [report(s, shape, r) for r in range(1, rounds + 1)]
    for s in servers
    for shape in ("upgrade", "100x64", "100x16k")
}

def rate(s, shape):
    return [r["messages_per_sec"] for r in runs[(s, shape)]]

def vs_acceptor(s, shape):
    # The median of the per-round ratios: each round's servers ran seconds apart.
    return median(a / b for a, b in zip(rate(s, shape), rate("acceptor", shape)))

def cpu(s, shape):
    return median(r["server_cpu_us_per_echo"] for r in runs[(s, shape)])

print("| server | upgrade p50 | upgrade p99 | 100 × 64 B msgs/s | vs Acceptor | server CPU/echo "
      "| 100 × 16 KiB msgs/s | vs Acceptor | server CPU/echo |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in servers:
    hs = [r["handshake_us"] for r in runs[(s, "upgrade")]]
    opened = min(r["connections"]["opened"] for r in runs[(s, "upgrade")])
    note = "" if opened == upgrades else f" ({opened} opened)"
    print(f"| {s} | {us(median(h['p50'] for h in hs))}{note} | {us(median(h['p99'] for h in hs))} "
          f"| {median(rate(s, '100x64')):,.0f} | {vs_acceptor(s, '100x64'):.2f}x "
          f"| {cpu(s, '100x64'):.1f} µs "
          f"| {median(rate(s, '100x16k')):,.0f} | {vs_acceptor(s, '100x16k'):.2f}x "
          f"| {cpu(s, '100x16k'):.1f} µs |")
print()
print(f"{rounds} interleaved rounds; medians of the rounds (ratios: median of per-round ratios); "
      f"{duration} s per echo shape; upgrade = TCP connect + WebSocket handshake.")
PY
