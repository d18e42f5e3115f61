#!/usr/bin/env bash
# Installs the real proxy servers that tests/proxy.rs starts: Debian's `tinyproxy` (HTTP CONNECT,
# with and without Basic authentication) and `microsocks` (SOCKS5, with and without
# username/password). Each test starts its own process on a free loopback port with its own
# config; nothing here starts a service. Idempotent and quiet: when both are there it only prints
# their paths. Needs apt-get (as root, or sudo) and the Debian package mirror.
set -euo pipefail

need=()
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need+=(tinyproxy)
command -v microsocks >/dev/null 2>&1 || [ -x /usr/bin/microsocks ] || need+=(microsocks)

if [ ${#need[@]} -gt 0 ]; then
    echo "install-proxies: apt-get install ${need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    # A fresh machine may have no package lists yet: update only when the install needs it.
    if ! { $sudo apt-get install -y -qq "${need[@]}" >"$log" 2>&1 \
        || { $sudo apt-get update -qq >>"$log" 2>&1 \
            && $sudo apt-get install -y -qq "${need[@]}" >>"$log" 2>&1; }; }; then
        cat "$log" >&2
        echo "install-proxies: failed: apt-get install ${need[*]} (log above)" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi

for program in tinyproxy microsocks; do
    path=$(command -v "$program" 2>/dev/null || true)
    [ -n "$path" ] || { [ -x "/usr/bin/$program" ] && path=/usr/bin/$program; }
    if [ -z "$path" ]; then
        echo "install-proxies: failed: $program is missing after installing its package" >&2
        exit 1
    fi
    echo "install-proxies: $program at $path"
done
