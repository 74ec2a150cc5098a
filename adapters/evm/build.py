"""Compiles the Gateway contracts into `build/contracts/<Name>.json` with the pinned solcjs.

`python -m adapters.evm.build` (or `make contracts`) compiles every `contracts/*.sol` in one
standard-JSON run: solc 0.8.30, optimizer on, EVM version "prague" (the EIP-2537 precompiles).
Each artifact holds `abi`, `bytecode` and `deployedBytecode` (0x-prefixed hex). A stamp with the
hash of the sources, compiler version and settings makes a second run with unchanged sources a
no-op. `load_artifact(name)` is what other code calls; it compiles first when needed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from relay.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
BUILD_DIR = PROJECT_ROOT / "build" / "contracts"
SOLCJS_PATH = PROJECT_ROOT / ".tools" / "bin" / "solcjs"
SOLC_VERSION = "0.8.30"
COMPILER_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
STAMP_NAME = ".build-stamp.json"
_COMPILE_TIMEOUT_SECONDS = 600


class ContractBuildError(ConfigurationError):
    """solcjs is missing, failed, or reported compilation errors (listed in the message)."""


def read_sources(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, str]:
    """Every `.sol` file of `contracts_dir`, keyed by file name (the solc source unit name)."""
    return {path.name: path.read_text() for path in sorted(contracts_dir.glob("*.sol"))}


def compute_build_hash(sources: dict[str, str]) -> str:
    """A hash of everything that determines the artifacts: sources, compiler version, settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"solc": SOLC_VERSION, "settings": COMPILER_SETTINGS}, sort_keys=True).encode())
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return digest.hexdigest()


def build_contracts(
    *,
    force: bool = False,
    solcjs: Path = SOLCJS_PATH,
    contracts_dir: Path = CONTRACTS_DIR,
    build_dir: Path = BUILD_DIR,
) -> bool:
    """Compile all contracts unless the artifacts are already up to date.

    Returns True if it compiled, False if the stamp showed nothing changed. Safe to call from
    several processes at once (a file lock serialises them).
    """
    sources = read_sources(contracts_dir)
    if not sources:
        raise ContractBuildError(f"no .sol files in {contracts_dir}")
    build_hash = compute_build_hash(sources)
    build_dir.mkdir(parents=True, exist_ok=True)
    with _locked(build_dir / ".lock"):
        if not force and _is_up_to_date(build_dir, build_hash):
            return False
        artifacts = _collect_artifacts(_run_solcjs(solcjs, sources))
        for stale in build_dir.glob("*.json"):
            if stale.stem not in artifacts:
                stale.unlink()
        for artifact_name, artifact in artifacts.items():
            _write_atomically(build_dir / f"{artifact_name}.json", json.dumps(artifact, indent=1) + "\n")
        stamp = {"hash": build_hash, "artifacts": sorted(artifacts)}
        _write_atomically(build_dir / STAMP_NAME, json.dumps(stamp) + "\n")
    return True


def load_artifact(name: str, build_dir: Path = BUILD_DIR) -> dict[str, Any]:
    """The artifact of contract `name` (`abi`, `bytecode`, `deployedBytecode`), compiling on demand."""
    build_contracts(build_dir=build_dir)
    path = build_dir / f"{name}.json"
    if not path.exists():
        raise ContractBuildError(f"no contract named {name!r} in {CONTRACTS_DIR}")
    artifact: dict[str, Any] = json.loads(path.read_text())
    return artifact


def _run_solcjs(solcjs: Path, sources: dict[str, str]) -> dict[str, Any]:
    if not os.access(solcjs, os.X_OK):
        raise ContractBuildError(f"solcjs not found at {solcjs}; run `make tools` to install it")
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": COMPILER_SETTINGS,
    }
    # stdout goes to a file: solcjs (node) exits before a pipe has taken more than 64 KiB of it.
    # stdin comes from a file too: node reads a pipe without blocking and fails (EAGAIN) when the
    # sources are more than a pipe buffer and the writer has not caught up.
    with tempfile.TemporaryFile(mode="w+") as stdout, tempfile.TemporaryFile(mode="w+") as stdin:
        stdin.write(json.dumps(standard_input))
        stdin.seek(0)
        try:
            completed = subprocess.run(
                [str(solcjs), "--standard-json"],
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                timeout=_COMPILE_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ContractBuildError(f"could not run {solcjs}: {error}") from error
        stdout.seek(0)
        # Some solcjs versions print ">>>" notices before the JSON document.
        text = "".join(line for line in stdout if not line.startswith(">>>"))
    try:
        output: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as error:
        raise ContractBuildError(
            f"solcjs exited with {completed.returncode} without a JSON result: {completed.stderr.strip()[:2000]}"
        ) from error
    errors = [entry for entry in output.get("errors", []) if entry.get("severity") == "error"]
    if errors:
        details = "\n".join(entry.get("formattedMessage", entry.get("message", "")) for entry in errors)
        raise ContractBuildError(f"solc reported {len(errors)} error(s):\n{details}")
    return output


def _collect_artifacts(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    artifacts: dict[str, dict[str, Any]] = {}
    for source_name, contracts in output.get("contracts", {}).items():
        for contract_name, compiled in contracts.items():
            if contract_name in artifacts:
                raise ContractBuildError(
                    f"contract name {contract_name!r} is defined twice (again in {source_name})"
                )
            evm = compiled.get("evm", {})
            artifacts[contract_name] = {
                "contractName": contract_name,
                "sourceName": source_name,
                "compiler": f"solc {SOLC_VERSION}",
                "abi": compiled.get("abi", []),
                "bytecode": "0x" + evm.get("bytecode", {}).get("object", ""),
                "deployedBytecode": "0x" + evm.get("deployedBytecode", {}).get("object", ""),
            }
    return artifacts


def _is_up_to_date(build_dir: Path, build_hash: str) -> bool:
    """The stamp matches `build_hash` and every artifact it lists is still there."""
    try:
        stamp = json.loads((build_dir / STAMP_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if not isinstance(stamp, dict) or stamp.get("hash") != build_hash:
        return False
    return all((build_dir / f"{name}.json").exists() for name in stamp.get("artifacts", []))


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.evm.build", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="compile even if the sources are unchanged")
    arguments = parser.parse_args(argv)
    try:
        compiled = build_contracts(force=arguments.force)
    except ContractBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    state = "compiled" if compiled else "up to date"
    print(f"contracts {state}: {BUILD_DIR.relative_to(PROJECT_ROOT)}/ ({', '.join(sorted(read_sources()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
