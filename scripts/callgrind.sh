#!/usr/bin/env bash
# Instructions per message under `valgrind --tool=callgrind`, for this tree and optionally a base
# revision beside it: the noise-free measure of CPU per message (BENCHMARKS.md, "in instructions").
#
#   scripts/callgrind.sh [BASE_REV]
#
# Each case is run twice, with a short and a long count, and the difference is divided by the
# extra messages (or MiB), so that set-up and teardown cancel. Runs repeat within 0.05%.
# The base revision is checked out as a git worktree under target/callgrind/; one without
# examples/callgrind_echo.rs (before 5722e4e) is given this tree's, which then needs its
# `compression(None)` line taken out (a tree that old has no compression to turn off).
# Output files (for callgrind_annotate) are kept in target/callgrind/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/callgrind
out=$work/out
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }

trees=("now:$root")
if [ $# -ge 1 ]; then
    base=$(git rev-parse --short "$1")
    wt=$work/base-$base
    if [ ! -d "$wt" ]; then
        git worktree add --detach "$wt" "$base" >/dev/null
    fi
    # A base from before the harness gets this tree's; one that has it keeps its own, which
    # matches its own defaults (this tree's turns off permessage-deflate, which older trees
    # do not know).
    [ -f "$wt/examples/callgrind_echo.rs" ] || cp examples/callgrind_echo.rs "$wt/examples/"
    trees=("$base:$wt" "${trees[@]}")
fi

for t in "${trees[@]}"; do
    dir=${t#*:}
    (cd "$dir" && cargo build --quiet --release --example callgrind_echo \
        --target-dir "$work/target-${t%%:*}")
done

count() { # tree-tag case-tag args...
    local tag=$1 case=$2; shift 2
    local file=$out/$tag.$case.cg
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$work/target-$tag/release/examples/callgrind_echo" "$@" 2>"$out/$tag.$case.log"
    grep -E '^(summary|totals):' "$file" | head -1 | awk '{print $2}'
}

cases=("echo 64 1" "echo 64 16" "echo 1024 16" "echo 16384 16" "stream")
header="| case |"
rule="|---|"
for t in "${trees[@]}"; do header+=" ${t%%:*} |"; rule+="---:|"; done
[ ${#trees[@]} -eq 2 ] && { header+=" now / base |"; rule+="---:|"; }
echo "$header"
echo "$rule"
for c in "${cases[@]}"; do
    set -- $c
    row=""
    values=()
    for t in "${trees[@]}"; do
        tag=${t%%:*}
        if [ "$1" = stream ]; then
            label="stream, per MiB"
            short=$(count "$tag" stream_8 stream 8)
            long=$(count "$tag" stream_72 stream 72)
            per=$(( (long - short) / 64 ))
        else
            label="$2 B, $3 in flight"
            short=$(count "$tag" "echo_$2_$3_2000" echo "$2" "$3" 2000)
            long=$(count "$tag" "echo_$2_$3_12000" echo "$2" "$3" 12000)
            per=$(( (long - short) / 10000 ))
        fi
        values+=("$per")
        row+=" $per |"
    done
    if [ ${#values[@]} -eq 2 ]; then
        row+=" $(python3 -c "print(f'{${values[1]}/${values[0]}:.2f}x')") |"
    fi
    echo "| $label |$row"
done
