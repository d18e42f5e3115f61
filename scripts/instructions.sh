#!/usr/bin/env bash
# Instructions per echoed message for wsio and the three peers (tokio-tungstenite,
# fastwebsockets, tokio-websockets), counted by `valgrind --tool=callgrind`: the noise-free
# measure of CPU per message that the performance targets are written in (BENCHMARKS.md, "CPU per
# message against the peers").
#
#   scripts/instructions.sh [CASE...]      # CASE: SIZE:INFLIGHT, default 64:1 64:16 1024:16 16384:16
#
# One process holds a client and a server of the same library on loopback TCP, on a
# current-thread runtime, each library with its default settings (examples/callgrind_echo.rs,
# whose connections are benches/compare/conn.rs's). Each case runs with 2,000 and 12,000
# messages and the difference is divided by 10,000, so that set-up and teardown cancel; counts
# repeat within 0.05 % from run to run whatever else the machine is doing. The last column is
# wsio's count over the lowest peer's. Output files (for callgrind_annotate) are kept in
# target/callgrind/peers/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed" >&2; exit 2; }
out=target/callgrind/peers
mkdir -p "$out"
cargo build --quiet --release --example callgrind_echo
bin=target/release/examples/callgrind_echo

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(64:1 64:16 1024:16 16384:16)
libs=(tokio-tungstenite fastwebsockets tokio-websockets wsio)

count() { # lib size inflight n
    local file=$out/$1.$2.$3.$4.cg
    valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" echo "$2" "$3" "$4" "$1" \
        2>"$out/$1.$2.$3.$4.log"
    grep -E '^(summary|totals):' "$file" | head -1 | awk '{print $2}'
}

header="| case |"
rule="|---|"
for lib in "${libs[@]}"; do header+=" $lib |"; rule+="---:|"; done
echo "$header wsio / best peer |"
echo "$rule---:|"
for c in "${cases[@]}"; do
    size=${c%%:*} inflight=${c##*:}
    row="| $size B, $inflight in flight |"
    values=()
    for lib in "${libs[@]}"; do
        short=$(count "$lib" "$size" "$inflight" 2000)
        long=$(count "$lib" "$size" "$inflight" 12000)
        per=$(( (long - short) / 10000 ))
        values+=("$per")
        row+=" $(printf "%'d" "$per") |"
    done
    ratio=$(IFS=,; python3 -c "v=[${values[*]}]; print(f'{v[-1]/min(v[:-1]):.2f}x')")
    echo "$row $ratio |"
done
