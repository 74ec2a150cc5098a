#!/usr/bin/env bash
# Installs the PostgreSQL server binaries (initdb, postgres) from Debian's `postgresql` package
# when they are missing: the tests, `relay devnet --store postgres` and the benches start their
# own throw-away server with them (relay/tools/postgres.py). Idempotent: does nothing when initdb
# is on PATH or in /usr/lib/postgresql/<version>/bin. Never starts the packaged service: a
# policy-rc.d that denies every start is in place for the duration of the install.
set -euo pipefail
find_initdb() {
  if command -v initdb >/dev/null 2>&1; then command -v initdb; return 0; fi
  ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1
}
FOUND="$(find_initdb || true)"
if [ -n "$FOUND" ]; then
  "$FOUND" --version
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-postgres.sh: initdb missing and not root (no sudo); install Debian's postgresql package" >&2
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
echo "installing Debian's postgresql package (server binaries for the tests and the devnet)"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
FOUND="$(find_initdb || true)"
if [ -z "$FOUND" ]; then
  echo "install-postgres.sh: postgresql installed but no initdb found" >&2
  exit 1
fi
"$FOUND" --version
