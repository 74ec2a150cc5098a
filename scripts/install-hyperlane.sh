#!/usr/bin/env bash
# Installs Hyperlane's compiled contracts (npm `@hyperlane-xyz/core`, pinned) into .tools/hyperlane/
# for `relay bench gas --against hyperlane`. Only the published ABI and creation bytecode are used:
# `npm pack` fetches the package tarball (no install scripts run, no dependencies), the typechain
# factories of the few contracts the bench deploys are extracted, and each factory's `_abi` array
# literal and `_bytecode` string are written as .tools/hyperlane/artifacts/<Contract>.json
# ({"contract", "abi", "bytecode", "package", "source"}). Idempotent; a no-op once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="@hyperlane-xyz/core"
VERSION=12.1.0
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
for contract in "${CONTRACTS[@]}"; do
  name="$(basename "$contract" __factory.js)"
  [ -f "$TARGET/artifacts/$name.json" ] || installed=0
done
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
members=("package/package.json")
for contract in "${CONTRACTS[@]}"; do members+=("$FACTORIES/$contract"); done
tar -xzf "$work/$tarball" -C "$work" "${members[@]}"
# The factories are ES modules importing ethers; only their two data literals are evaluated, in an
# empty sandbox (no require, no process).
node - "$work" "$TARGET/artifacts" "$VERSION" "${CONTRACTS[@]}" <<'EOF'
const fs = require("fs");
const path = require("path");
const vm = require("vm");
const [work, out, version, ...contracts] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(path.join(work, "package/package.json"), "utf8"));
if (pkg.version !== version) throw new Error(`expected version ${version}, got ${pkg.version}`);
for (const relative of contracts) {
  const file = path.join(work, "package/dist/typechain/factories/contracts", relative);
  const text = fs.readFileSync(file, "utf8");
  const abi = text.match(/^const _abi = (\[[\s\S]*?\n\]);$/m);
  const bytecode = text.match(/^const _bytecode = "(0x[0-9a-fA-F]+)";$/m);
  if (!abi || !bytecode) throw new Error(`no _abi/_bytecode literal in ${relative}`);
  const name = path.basename(relative).replace("__factory.js", "");
  const artifact = {
    contract: name,
    package: `${pkg.name}@${pkg.version}`,
    source: `dist/typechain/factories/contracts/${relative}`,
    abi: vm.runInNewContext(`(${abi[1]})`, Object.create(null), { timeout: 1000 }),
    bytecode: bytecode[1],
  };
  fs.writeFileSync(path.join(out, `${name}.json`), JSON.stringify(artifact));
}
EOF
touch "$STAMP"
echo "hyperlane $PACKAGE@$VERSION: $(ls "$TARGET/artifacts" | tr '\n' ' ')"
