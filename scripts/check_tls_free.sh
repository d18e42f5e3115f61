#!/bin/sh
# The ws://-only build (`default-features = false`) must have no TLS crate among its normal
# dependencies: fails, naming them, if rustls, tokio-rustls, ring, aws-lc, webpki or a root store
# crate appears in `cargo tree --no-default-features -e normal`.
set -eu
cd "$(dirname "$0")/.."
tree=$(cargo tree --no-default-features -e normal --prefix none)
found=$(printf '%s\n' "$tree" \
    | grep -E '^(rustls|tokio-rustls|ring|aws-lc|webpki|rustls-webpki|rustls-native-certs|rustls-pki-types|openssl)' \
    | sort -u || true)
if [ -n "$found" ]; then
    echo "TLS crates in the --no-default-features build:" >&2
    printf '%s\n' "$found" >&2
    exit 1
fi
echo "no TLS crate in the --no-default-features build ($(printf '%s\n' "$tree" | sort -u | wc -l) crates)"
