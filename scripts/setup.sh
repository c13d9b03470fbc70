#!/usr/bin/env bash
# Idempotent set-up: Debian packages the tests need (when running as root and missing),
# a .venv with the project and its dev extras. Safe to run again; does nothing when done.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(bird2 gobgpd frr exabgp arping ndisc6 iputils-ping iproute2 nftables tcpdump procps golang-go golang-github-hashicorp-memberlist-dev prometheus)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    # The packaged daemons must not run on the host: tests start their own in namespaces.
    for svc in bird frr gobgpd exabgp prometheus; do
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
      service "$svc" stop >/dev/null 2>&1 || true
    done
  else
    echo "setup: missing Debian packages (run as root to install): ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
