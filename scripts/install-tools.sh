#!/usr/bin/env bash
# Installs the project's external tools into .tools/ from the npm registry, pinned:
# anvil (local EVM chains) and solcjs (the Solidity compiler). Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
ANVIL_VERSION=1.7.1
SOLC_VERSION=0.8.30
mkdir -p .tools/bin
if [ ! -x .tools/node_modules/.bin/anvil ] || ! grep -q "\"version\": \"$SOLC_VERSION\"" .tools/node_modules/solc/package.json 2>/dev/null; then
  echo "installing anvil $ANVIL_VERSION and solc $SOLC_VERSION from the npm registry into .tools/"
  (cd .tools && npm install --no-audit --no-fund --silent --prefix . \
      "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION" "solc@$SOLC_VERSION" >/dev/null)
fi
ln -sf ../node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil .tools/bin/anvil
ln -sf ../node_modules/.bin/solcjs .tools/bin/solcjs
.tools/bin/anvil --version | head -1
echo "solcjs $(.tools/bin/solcjs --version)"
