#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/doc tests, Autobahn in both roles,
# then a short fuzzing run of the sans-io parsers.
# Installs what it needs (Autobahn's Python 2.7 toolchain) through ../shared/autobahn/setup.sh,
# and cargo-fuzz through scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo test"
cargo test --all-targets
cargo test --doc
step "Autobahn|Testsuite, server and client roles (strict)"
bash scripts/autobahn.sh
step "Fuzzing the sans-io parsers, 20 s per target (scripts/fuzz.sh)"
bash scripts/fuzz.sh 20
