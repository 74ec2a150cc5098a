#!/usr/bin/env bash
# Installs Hyperlane's compiled contracts (npm `@hyperlane-xyz/core`, pinned) into .tools/hyperlane/
# for `relay bench gas --against hyperlane`. Only the published ABI and creation bytecode are used:
# `npm pack` fetches the package tarball (no install scripts run, no dependencies), checked against
# its pinned npm integrity (sha512); the typechain
# factories of the few contracts the bench deploys are extracted, and each factory's `_abi` array
# literal (read as JSON, never evaluated) and `_bytecode` string are written as
# .tools/hyperlane/artifacts/<Contract>.json
# ({"contract", "abi", "bytecode", "package", "source"}). Idempotent; a no-op once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="@hyperlane-xyz/core"
VERSION=12.1.0
# `npm view @hyperlane-xyz/core@12.1.0 dist.integrity`
INTEGRITY="sha512-8kl5+zuir0nKHXfeo2ssySvB2P3eVdTYAJX24O9+lpFFA9BUytYVFPCcJ+8fxX0OAY4HICBOUt/OB180j+EABg=="
TARGET=.tools/hyperlane
STAMP="$TARGET/artifacts/.installed-$VERSION"
FACTORIES=package/dist/typechain/factories/contracts
CONTRACTS=(
  "Mailbox__factory.js"
  "hooks/MerkleTreeHook__factory.js"
  "test/TestPostDispatchHook__factory.js"
  "isms/multisig/StaticMultisigIsm.sol/StaticMessageIdMultisigIsmFactory__factory.js"
  "isms/multisig/StaticMultisigIsm.sol/StaticMessageIdMultisigIsm__factory.js"
)
installed=1
[ -f "$STAMP" ] || installed=0
names=()
for contract in "${CONTRACTS[@]}"; do names+=("$(basename "$contract" __factory.js)"); done
# A missing, truncated or foreign artifact means reinstalling (hyperlane.py says: run `make tools`).
if [ "$installed" = 1 ] && ! node scripts/hyperlane-artifacts.js check "$TARGET/artifacts" "$PACKAGE@$VERSION" "${names[@]}" 2>/dev/null; then
  installed=0
fi
if [ "$installed" = 1 ]; then
  echo "hyperlane $PACKAGE@$VERSION already installed in $TARGET/artifacts"
  exit 0
fi
echo "installing $PACKAGE@$VERSION (published ABI and bytecode) from the npm registry into $TARGET/"
rm -rf "$TARGET"
mkdir -p "$TARGET/artifacts"
work="$(mktemp -d "$TARGET/download.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tarball="$(cd "$work" && npm pack --silent --ignore-scripts "$PACKAGE@$VERSION" | tail -1)"
# The registry's tarball must be the one pinned here (the bench deploys its bytecode as Hyperlane's).
node scripts/hyperlane-artifacts.js integrity "$work/$tarball" "$INTEGRITY"
members=("package/package.json")
for contract in "${CONTRACTS[@]}"; do members+=("$FACTORIES/$contract"); done
tar -xzf "$work/$tarball" -C "$work" "${members[@]}"
# The factories are ES modules importing ethers: none of their code is evaluated; the helper reads
# the `_abi` literal as JSON (JSON.parse) and the `_bytecode` string.
node scripts/hyperlane-artifacts.js extract "$work" "$TARGET/artifacts" "$VERSION" "${CONTRACTS[@]}"
touch "$STAMP"
echo "hyperlane $PACKAGE@$VERSION: $(ls "$TARGET/artifacts" | tr '\n' ' ')"
