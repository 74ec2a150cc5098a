#!/usr/bin/env bash
# Installs promtool (for `promtool check rules` / `promtool test rules` on
# deploy/prometheus/alerts.yml) from Debian's `prometheus` package when it is missing.
# Idempotent: does nothing when promtool is already on PATH. Never starts the prometheus
# service: a policy-rc.d that denies every start is in place for the duration of the install.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  promtool --version 2>&1 | head -1
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-prometheus.sh: promtool missing and not root (no sudo); install Debian's prometheus package" >&2
    exit 1
  fi
fi
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  CREATED_POLICY=1
fi
cleanup() { if [ "$CREATED_POLICY" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
echo "installing Debian's prometheus package (for promtool)"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
promtool --version 2>&1 | head -1
