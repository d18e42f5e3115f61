#!/usr/bin/env bash
# Installs the headless browser that tests/browser.rs drives: Debian's `chromium` package, which
# puts the browser at /usr/bin/chromium. Idempotent: when it is already there it only prints the
# version. Needs apt-get (as root, or sudo) and the Debian package mirror.
set -euo pipefail

chromium=/usr/bin/chromium

if [ ! -x "$chromium" ]; then
    echo "install-browser: apt-get install chromium"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: update only when the install needs it.
    $sudo apt-get install -y chromium \
        || { $sudo apt-get update && $sudo apt-get install -y chromium; }
fi

if [ ! -x "$chromium" ]; then
    echo "install-browser: failed: $chromium is missing after installing the chromium package" >&2
    exit 1
fi
# The Debian launcher script prints a harmless shell warning on some machines: keep only the
# version line.
echo "install-browser: $("$chromium" --version 2>/dev/null)"
