#!/usr/bin/env bash
# Fuzzes the sans-io parsers (fuzz/fuzz_targets/) with cargo-fuzz and libFuzzer, on stable Rust.
#
#   scripts/fuzz.sh [SECONDS]     run every target for SECONDS each (default 30)
#
# Prints, per target, the executions and the result; exits non-zero if any target failed
# (a panic, a failed invariant, a timeout or running out of memory). A failing input is saved
# in fuzz/artifacts/<target>/; replay it with
#   fuzz/target/x86_64-unknown-linux-gnu/release/<target> fuzz/artifacts/<target>/crash-...
#
# Why this works on stable: with `--sanitizer none`, cargo-fuzz instruments the code with -C
# flags only (`-Cpasses=sancov-module` and `-Cllvm-args=-sanitizer-coverage-*`, which stable
# rustc accepts) plus `--cfg fuzzing`; libFuzzer itself is C++ that libfuzzer-sys compiles with
# the system's C++ compiler. Only the sanitizers need a nightly-only flag (`-Zsanitizer=...`):
# FUZZ_SANITIZER=address sets RUSTC_BOOTSTRAP=1 so that stable accepts it (stable ships the
# sanitizer runtimes). The default is none: the targets check their own invariants and the
# code under test is almost all safe Rust, so speed wins: ASan runs four to five times slower
# here (header: 285k against 53k executions a second; decoder_splits: 11.7k against 2.6k).
# cargo-fuzz is pinned because a later version could pass other flags.
#
# The build is made once (`cargo fuzz build`, every target) and each target's binary is then
# run directly. Committed seeds are in fuzz/seeds/<target>/; what the fuzzer finds goes to
# fuzz/corpus/<target>/ (git-ignored), which later runs start from.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS per target]" >&2
    exit 2
fi
sanitizer="${FUZZ_SANITIZER:-none}"
cargo_fuzz_version="0.13.2"
targets=(header utf8 decoder_splits handshake_request handshake_response extensions connection_ops)

if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
    echo "==> installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi
# The plain build goes where `cargo fuzz run` looks; a sanitizer build gets its own directory
# so that switching does not rebuild everything.
target_dir="target"
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
    target_dir="target/sanitizer-$sanitizer"
fi

echo "==> building the fuzz targets (sanitizer: $sanitizer)"
(cd fuzz && cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir")
bin_dir="fuzz/$target_dir/x86_64-unknown-linux-gnu/release"

failed=()
printf '\n%-20s %12s %8s  %s\n' target executions exec/s result
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    log="$artifacts/fuzz.log"
    mkdir -p "$corpus" "$artifacts"
    status=0
    # One input may take at most 10 s; libFuzzer's -max_len defaults to 4096 bytes.
    "$bin_dir/$target" "$corpus" "fuzz/seeds/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    if [ "$status" -eq 0 ]; then
        result="ok"
    else
        failed+=("$target")
        input="$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)"
        result="FAILED (exit $status) input: ${input:-none saved}, log: $log"
    fi
    printf '%-20s %12s %8s  %s\n' "$target" "${runs:-?}" "${speed:-?}" "$result"
done

# A closing line that CI's test-count reader understands.
printf 'fuzz: %d passed, %d failed\n' $((${#targets[@]} - ${#failed[@]})) "${#failed[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    for target in "${failed[@]}"; do
        printf '\n==> %s: end of %s\n' "$target" "fuzz/artifacts/$target/fuzz.log"
        grep -v '^#[0-9]' "fuzz/artifacts/$target/fuzz.log" | tail -n 40
    done
    echo "fuzzing failed: ${failed[*]}" >&2
    exit 1
fi
