#!/usr/bin/env bash
# Installs the real WebSocket peers that tests/real_peers.rs runs against:
#   - Python `websockets` (version pinned in tests/peers/python/requirements.txt) into the
#     virtualenv tests/peers/python/.venv;
#   - Node `ws` (pinned in tests/peers/node/package.json and package-lock.json) into
#     tests/peers/node/node_modules.
# Idempotent: when both are already there at the pinned versions it only checks and exits.
# Needs python3 (with venv) and node/npm on PATH, and the PyPI and npm registries.
set -euo pipefail
cd "$(dirname "$0")/.."

py_dir=tests/peers/python
node_dir=tests/peers/node
venv="$py_dir/.venv"

# The pinned version, from the one line of requirements.txt that names it.
py_want=$(sed -n 's/^websockets==\([^ ]*\).*/\1/p' "$py_dir/requirements.txt")
node_want=$(node -p "require('./$node_dir/package.json').dependencies.ws")

py_have() { "$venv/bin/python" -c 'import websockets; print(websockets.__version__)' 2>/dev/null || true; }
node_have() { (cd "$node_dir" && node -p "require('ws/package.json').version" 2>/dev/null) || true; }

if [ "$(py_have)" != "$py_want" ]; then
    echo "install-peers: Python websockets $py_want into $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$py_dir/requirements.txt"
fi

# npm ci installs exactly the lock file; a node_modules from another lock is replaced.
if [ "$(node_have)" != "$node_want" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
    echo "install-peers: Node ws $node_want into $node_dir/node_modules"
    if [ -f "$node_dir/package-lock.json" ]; then
        (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    else
        (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error)
    fi
fi

py_got=$(py_have)
node_got=$(node_have)
if [ "$py_got" != "$py_want" ] || [ "$node_got" != "$node_want" ]; then
    echo "install-peers: failed (websockets '$py_got', want $py_want; ws '$node_got', want $node_want)" >&2
    exit 1
fi
echo "install-peers: websockets $py_got ($("$venv/bin/python" --version 2>&1)), ws $node_got (node $(node --version))"
