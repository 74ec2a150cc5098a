// Helper of scripts/install-hyperlane.sh; evaluates none of the package's code.
//   node hyperlane-artifacts.js integrity <tarball> <sha512-...>   exit 1 unless the tarball's
//       npm integrity (sha512, base64) is the pinned one
//   node hyperlane-artifacts.js extract <work> <out> <version> <factory>...   writes
//       <out>/<Contract>.json ({"contract", "abi", "bytecode", "package", "source"}) from each
//       typechain factory's `_abi` array literal (rewritten to JSON and read with JSON.parse:
//       anything but data is refused) and `_bytecode` string
//   node hyperlane-artifacts.js check <out> <package@version> <name>...   exit 1 unless each
//       <out>/<name>.json parses and names the package (a corrupt install is reinstalled)
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

function fail(message) {
  process.stderr.write(`hyperlane-artifacts: ${message}\n`);
  process.exit(1);
}

function integrity(tarball, expected) {
  const actual = "sha512-" + crypto.createHash("sha512").update(fs.readFileSync(tarball)).digest("base64");
  if (actual !== expected) fail(`${path.basename(tarball)}: integrity ${actual}, expected ${expected}`);
}

// typechain's `_abi` literal is JSON but for unquoted keys and trailing commas.
function abiLiteralToJson(literal) {
  const json = literal
    .replace(/^(\s*)([A-Za-z_$][A-Za-z0-9_$]*):/gm, '$1"$2":')
    .replace(/,(\s*[\]}])/g, "$1");
  return JSON.parse(json);
}

function extract(work, out, version, contracts) {
  const pkg = JSON.parse(fs.readFileSync(path.join(work, "package/package.json"), "utf8"));
  if (pkg.version !== version) fail(`expected version ${version}, got ${pkg.version}`);
  for (const relative of contracts) {
    const file = path.join(work, "package/dist/typechain/factories/contracts", relative);
    const text = fs.readFileSync(file, "utf8");
    const abi = text.match(/^const _abi = (\[[\s\S]*?\n\]);$/m);
    const bytecode = text.match(/^const _bytecode = "(0x[0-9a-fA-F]+)";$/m);
    if (!abi || !bytecode) fail(`no _abi/_bytecode literal in ${relative}`);
    let parsed;
    try {
      parsed = abiLiteralToJson(abi[1]);
    } catch (error) {
      fail(`the _abi of ${relative} is not a plain data literal: ${error.message}`);
    }
    if (!Array.isArray(parsed)) fail(`the _abi of ${relative} is not an array`);
    const name = path.basename(relative).replace("__factory.js", "");
    const artifact = {
      contract: name,
      package: `${pkg.name}@${pkg.version}`,
      source: `dist/typechain/factories/contracts/${relative}`,
      abi: parsed,
      bytecode: bytecode[1],
    };
    fs.writeFileSync(path.join(out, `${name}.json`), JSON.stringify(artifact));
  }
}

function check(out, expectedPackage, names) {
  for (const name of names) {
    let artifact;
    try {
      artifact = JSON.parse(fs.readFileSync(path.join(out, `${name}.json`), "utf8"));
    } catch (error) {
      fail(`${name}.json unreadable: ${error.message}`);
    }
    const ok =
      artifact !== null &&
      artifact.package === expectedPackage &&
      Array.isArray(artifact.abi) &&
      typeof artifact.bytecode === "string" &&
      /^0x[0-9a-fA-F]+$/.test(artifact.bytecode);
    if (!ok) fail(`${name}.json is not an artifact of ${expectedPackage}`);
  }
}

const [command, ...args] = process.argv.slice(2);
if (command === "integrity" && args.length === 2) integrity(args[0], args[1]);
else if (command === "extract" && args.length >= 3) extract(args[0], args[1], args[2], args.slice(3));
else if (command === "check" && args.length >= 2) check(args[0], args[1], args.slice(2));
else fail("usage: integrity <tarball> <sha512-...> | extract <work> <out> <version> <factory>... | check <out> <package@version> <name>...");
