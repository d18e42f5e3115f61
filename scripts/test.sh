#!/usr/bin/env bash
# The whole test suite: formatting, lints, the import graph, unit/integration/doc tests, the
# optional features and the TLS feature combinations, a 60-s soak, Autobahn in both roles,
# then a short fuzzing run of the sans-io layers. Installs what it needs: the real peers of
# tests/real_peers.rs (Python websockets, Node ws) through scripts/install-peers.sh, Chromium
# through scripts/install-browser.sh, tinyproxy and microsocks (tests/proxy.rs) through
# scripts/install-proxies.sh, Autobahn's Python 2.7 toolchain through ../shared/autobahn/setup.sh,
# cargo-fuzz through scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings (default features, then all of them)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --all-features -- -D warnings
step "cargo doc, warnings denied (broken links, bad HTML): default and all features"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --all-features
step "import graph: no cycle between files, proto/ and handshake/ are leaves"
python3 scripts/check_imports.py
step "real peers for tests/real_peers.rs (Python websockets, Node ws)"
bash scripts/install-peers.sh
bash scripts/install-browser.sh
bash scripts/install-proxies.sh
step "cargo test"
cargo test --all-targets
cargo test --doc
step "cargo test of the optional features (serde: typed messages; tracing: spans and events)"
cargo test --features serde --test typed_messages --test messages
cargo test --features serde --doc
cargo test --features tracing --test tracing
step "hyper and axum upgrades (HTTP/1.1 and RFC 8441 over h2), and each feature built on its own"
cargo test --features axum --test upgrade_hyper --test axum
cargo check --no-default-features --features hyper
cargo check --no-default-features --features axum
step "TLS features: every combination builds; the ws://-only build has no TLS crate and works"
cargo clippy --all-targets --no-default-features -- -D warnings
cargo check --no-default-features --features ring
cargo check --no-default-features --features aws-lc-rs,webpki-roots
cargo check --no-default-features --features ring,native-roots
cargo check --no-default-features --features native-roots
bash scripts/check_tls_free.sh
cargo test --no-default-features --lib --test tls_free --test client_connect \
    --test connection_info --test stream_layers
# aws-lc-rs as the provider (it wins over ring with --all-features) and the OS trust store.
cargo test --all-features --lib tls::
cargo test --all-features --test tls --test native_roots
step "Soak, CI length: 10,000 held connections, 1,000 echoing, 500 churn/s for 60 s (examples/soak)"
# The unoptimised build, on the library cargo test just built (cargo test builds examples as
# test harnesses, not as target/debug/examples/soak); the 10-minute run is
# `cargo run --release --example soak`.
cargo build --example soak
# 10,000 held connections need about 12,100 open files per process; a machine whose hard limit
# is lower runs as many as it can hold (and says so) rather than failing on the limit.
held=10000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 12100 ]; then
    held=$((hard - 2100))
    echo "soak: open-file hard limit $hard: $held held connections instead of 10,000"
fi
target/debug/examples/soak --duration 60 --messages-per-sec 500 --connections "$held"
step "Autobahn|Testsuite, server and client roles (strict)"
bash scripts/autobahn.sh
step "Fuzzing the sans-io parsers, 20 s per target (scripts/fuzz.sh)"
bash scripts/fuzz.sh 20
