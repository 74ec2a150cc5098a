#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium` package) for the status-page browser test
# (tests/integration/test_status_page.py). Idempotent: does nothing when /usr/bin/chromium exists.
# Needs root (or sudo); no other download than the Debian package.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  "$CHROMIUM" --version 2>/dev/null | head -1 || echo "$CHROMIUM present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-chromium.sh: $CHROMIUM missing and not root (no sudo); install Debian's chromium package" >&2
    exit 1
  fi
fi
echo "installing Debian's chromium package (headless browser for the status-page test)"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version 2>/dev/null | head -1 || echo "$CHROMIUM installed"
