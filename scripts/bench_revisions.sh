#!/usr/bin/env bash
# wsio before and after a change, end to end: benches/compare in its interleaved mode, run
# alternately from a base revision's tree and from this one, each run normalised by raw TCP in
# the same run (the same code in both trees), so that the machine's drift cancels.
#
#   scripts/bench_revisions.sh BASE_REV [RUNS] [FILTER...]
#
# RUNS (default 6) runs of each tree, alternating (and alternating which goes first); each is `WSIO_BENCH_ROUNDS=10 cargo bench
# --bench compare -- FILTER...` (FILTER: case name parts, default every case). Prints, per case,
# the median over the runs of wsio / raw TCP for each tree, and now / base. Logs of every run
# are kept in target/bench-revisions/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BASE_REV [RUNS] [FILTER...]" >&2; exit 2; }
root=$PWD
base=$(git rev-parse --short "$1")
runs=${2:-6}
shift $(( $# >= 2 ? 2 : 1 ))
work=$root/target/bench-revisions
mkdir -p "$work"
wt=$work/base-$base
[ -d "$wt" ] || git worktree add --detach "$wt" "$base" >/dev/null

bench() { # tree-dir target-dir log
    (cd "$1" && WSIO_BENCH_ROUNDS=10 cargo bench --quiet --bench compare \
        --target-dir "$2" -- "${filters[@]}") >"$3" 2>&1
}
filters=("$@")
echo "building both trees"
(cd "$wt" && cargo bench --quiet --bench compare --no-run --target-dir "$work/target-base") \
    >"$work/build-base.log" 2>&1
cargo bench --quiet --bench compare --no-run --target-dir "$work/target-now" \
    >"$work/build-now.log" 2>&1
for i in $(seq 1 "$runs"); do
    echo "run $i of $runs"
    # Which tree goes first alternates, so that neither always runs on a warmer machine.
    if (( i % 2 )); then
        bench "$wt" "$work/target-base" "$work/base.$i.log"
        bench "$root" "$work/target-now" "$work/now.$i.log"
    else
        bench "$root" "$work/target-now" "$work/now.$i.log"
        bench "$wt" "$work/target-base" "$work/base.$i.log"
    fi
done
python3 - "$work" "$runs" "$base" <<'PY'
import re, statistics, sys
work, runs, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def ratios(path):
    # The headline table: | case | wsio | best peer | wsio / best peer | raw TCP | wsio / raw | target |
    out = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 7 and re.fullmatch(r'[\d.]+x', cells[5]):
            out.setdefault(cells[0], float(cells[5][:-1]))
    return out
tree = {t: [ratios(f"{work}/{t}.{i}.log") for i in range(1, runs + 1)] for t in ("base", "now")}
cases = [c for c in tree["now"][0] if all(c in r for t in tree.values() for r in t)]
print(f"\n| case | {base}: wsio / raw | now: wsio / raw | now / base |")
print("|---|---:|---:|---:|")
for c in cases:
    b = statistics.median(r[c] for r in tree["base"])
    n = statistics.median(r[c] for r in tree["now"])
    print(f"| {c} | {b:.2f}x | {n:.2f}x | {n / b:.2f}x |")
print(f"\nmedians over {runs} alternating runs of each tree, 10 interleaved rounds a run")
PY
