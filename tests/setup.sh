#!/usr/bin/env bash
# Installs what the end-to-end suite (package zkr-tests) needs on a fresh machine:
#   - Debian's `zookeeper` package: zkCli.sh (/usr/share/zookeeper/bin/zkCli.sh) for tests/zkcli.rs,
#     and the jars the shared apache-zookeeper tool runs when ZKR_E2E_TARGET=apache;
#   - a Python venv at tests/.venv with kazoo + pytest for tests/kazoo.rs, prometheus_client
#     (its text-format parser) for tests/metrics.rs, and pure-sasl (kazoo's SASL DIGEST-MD5
#     client), pyOpenSSL and pyjks (what kazoo's own test harness imports) for tests/security.rs;
#   - Debian's `chromium`, to render the checker's HTML reports in jepsen/tests (screenshots);
#   - Debian's `faketime` (libfaketime), for `jepsen test`'s clock faults (tests/jepsen_run.rs);
#   - `unshare`, `nsenter` (util-linux) and `mount`, for the full-disk test's tmpfs in a private
#     mount namespace (tests/disk_faults.rs); Debian's base system has them;
#   - Debian's `nftables` and `iproute2` (`nft`, `ip`), for `jepsen test`'s packet loss: rules in
#     a network namespace the tool makes (tests/jepsen_run.rs).
# Idempotent: skips what is already there. Needs root (apt-get) and a package registry.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ZKCLI=/usr/share/zookeeper/bin/zkCli.sh

if [ ! -x "$ZKCLI" ] || [ ! -f /usr/share/java/zookeeper.jar ]; then
  echo "setup: installing Debian package zookeeper (zkCli.sh)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper >/dev/null
fi
command -v java >/dev/null || {
  echo "setup: java missing; installing default-jre-headless" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null
}

if ! command -v chromium >/dev/null; then
  echo "setup: installing Debian package chromium (headless report screenshots)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ ! -f /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]; then
  echo "setup: installing Debian package faketime (libfaketime, jepsen clock faults)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
fi

if ! command -v unshare >/dev/null || ! command -v nsenter >/dev/null \
  || ! command -v mount >/dev/null; then
  echo "setup: installing Debian packages util-linux and mount (tests/disk_faults.rs)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux mount >/dev/null
fi

if ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
  echo "setup: installing Debian packages nftables and iproute2 (jepsen packet loss)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2 >/dev/null
fi

VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import kazoo, pytest, prometheus_client, puresasl, OpenSSL, jks' \
    2>/dev/null; then
  echo "setup: pip install kazoo pytest prometheus_client pure-sasl pyOpenSSL pyjks" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'kazoo==2.11.0' 'pytest>=8' \
    'prometheus_client>=0.20' 'pure-sasl==0.6.2' 'pyOpenSSL==24.2.1' 'pyjks==20.0.0'
fi
"$VENV/bin/python" -c 'import kazoo, pytest; print("setup: kazoo + pytest", pytest.__version__)'
test -x "$ZKCLI" && echo "setup: zkCli at $ZKCLI"
