"""Review of issue 12: installing Hyperlane's package must not run its code or trust a corrupt copy.

`scripts/install-hyperlane.sh` fetches `@hyperlane-xyz/core` and writes its ABI and bytecode as
artifacts for the gas bench. Before the review it evaluated each factory's `_abi` literal with
node's `vm` (not a security boundary: a Promise job escapes its timeout and hangs `make setup`),
did not check the tarball against a pinned integrity, and called a corrupt install "already
installed" although `load_hyperlane_artifact` tells the operator to run `make tools` again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from adapters.evm.anvil import PROJECT_ROOT
from adapters.evm.hyperlane import HyperlaneNotInstalled, load_hyperlane_artifact

HELPER = PROJECT_ROOT / "scripts" / "hyperlane-artifacts.js"
INSTALL = PROJECT_ROOT / "scripts" / "install-hyperlane.sh"
FACTORIES = "package/dist/typechain/factories/contracts"
NAMES = (
    "Mailbox",
    "MerkleTreeHook",
    "TestPostDispatchHook",
    "StaticMessageIdMultisigIsmFactory",
    "StaticMessageIdMultisigIsm",
)
PACKAGE = "@hyperlane-xyz/core@12.1.0"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node (installed with the tools) is needed")

TYPECHAIN_ABI = """const _abi = [
    {
        inputs: [
            {
                internalType: "uint32",
                name: "_localDomain",
                type: "uint32",
            },
        ],
        stateMutability: "nonpayable",
        type: "constructor",
    },
];"""


def _helper(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    command = [str(NODE), str(HELPER), *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _package(tmp_path: Path, abi_literal: str) -> tuple[Path, Path]:
    """A fake unpacked package with one Mailbox factory; returns (work, out)."""
    work, out = tmp_path / "work", tmp_path / "out"
    factory = work / FACTORIES / "Mailbox__factory.js"
    factory.parent.mkdir(parents=True)
    out.mkdir()
    (work / "package" / "package.json").write_text('{"name": "@hyperlane-xyz/core", "version": "12.1.0"}')
    factory.write_text(f'import {{ Contract }} from "ethers";\n{abi_literal}\nconst _bytecode = "0x6001";\n')
    return work, out


def test_a_typechain_abi_literal_is_extracted_as_data(tmp_path: Path) -> None:
    work, out = _package(tmp_path, TYPECHAIN_ABI)
    result = _helper("extract", work, out, "12.1.0", "Mailbox__factory.js")
    assert result.returncode == 0, result.stderr
    artifact = json.loads((out / "Mailbox.json").read_text())
    assert artifact["package"] == PACKAGE and artifact["bytecode"] == "0x6001"
    assert artifact["abi"] == [
        {
            "inputs": [{"internalType": "uint32", "name": "_localDomain", "type": "uint32"}],
            "stateMutability": "nonpayable",
            "type": "constructor",
        }
    ]


@pytest.mark.parametrize(
    "payload",
    [
        # Escaped the vm timeout: the job runs after runInNewContext returned, forever.
        "Promise.resolve().then(() => { while (true) {} })",
        "(() => { throw new Error('ran') })()",
        "globalThis",
    ],
)
def test_code_in_the_abi_literal_is_refused_not_run(tmp_path: Path, payload: str) -> None:
    work, out = _package(tmp_path, f"const _abi = [\n    {payload}\n];")
    result = _helper("extract", work, out, "12.1.0", "Mailbox__factory.js")
    assert result.returncode == 1
    assert "not a plain data literal" in result.stderr
    assert not (out / "Mailbox.json").exists()


def test_a_tarball_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "hyperlane-xyz-core-12.1.0.tgz"
    tarball.write_bytes(b"a tarball someone swapped in")
    pinned = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    assert _helper("integrity", tarball, pinned).returncode == 0
    tarball.write_bytes(b"a tarball someone swapped in!")
    refused = _helper("integrity", tarball, pinned)
    assert refused.returncode == 1 and "integrity" in refused.stderr
    assert 'INTEGRITY="sha512-' in INSTALL.read_text()


def _installed_tree(tmp_path: Path) -> Path:
    """A copy of the two scripts with valid-looking artifacts installed, and a failing `npm`."""
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(INSTALL, root / "scripts" / INSTALL.name)
    shutil.copy(HELPER, root / "scripts" / HELPER.name)
    artifacts = root / ".tools" / "hyperlane" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / ".installed-12.1.0").touch()
    for name in NAMES:
        artifact = {"contract": name, "package": PACKAGE, "abi": [], "bytecode": "0x00"}
        (artifacts / f"{name}.json").write_text(json.dumps(artifact))
    stub = tmp_path / "bin" / "npm"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\necho 'npm called' >&2\nexit 3\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return root


def _install(root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    script = root / "scripts" / INSTALL.name
    return subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@pytest.mark.parametrize(
    "corrupt",
    ["{not json", '{"package": "@hyperlane-xyz/core@5.0.0", "abi": [], "bytecode": "0x00"}', ""],
)
def test_a_corrupt_install_is_reinstalled_not_called_installed(tmp_path: Path, corrupt: str) -> None:
    root = _installed_tree(tmp_path)
    assert "already installed" in _install(root, tmp_path).stdout
    (root / ".tools" / "hyperlane" / "artifacts" / "Mailbox.json").write_text(corrupt)
    result = _install(root, tmp_path)
    assert "already installed" not in result.stdout
    assert "npm called" in result.stderr and result.returncode != 0


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"package": "@hyperlane-xyz/core@12.1.0"}',
        '{"package": "@hyperlane-xyz/core@12.1.0", "abi": {}, "bytecode": "0x00"}',
        '{"package": "@hyperlane-xyz/core@12.1.0", "abi": [], "bytecode": 7}',
    ],
)
def test_an_artifact_without_abi_or_bytecode_names_make_tools(tmp_path: Path, text: str) -> None:
    """Before the review: AttributeError or KeyError at deploy time instead of the typed error."""
    (tmp_path / "Mailbox.json").write_text(text)
    with pytest.raises(HyperlaneNotInstalled, match="make tools"):
        load_hyperlane_artifact("Mailbox", tmp_path)


class _RevertingCall:
    def __init__(self, data: str) -> None:
        self.data = data

    def call(self) -> object:
        from web3.exceptions import ContractCustomError

        raise ContractCustomError(self.data, data=self.data)


def test_a_bls_reader_on_an_ecdsa_origin_is_not_an_rpc_outage() -> None:
    from types import SimpleNamespace

    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    from adapters.evm.committees import EvmCommitteeReader
    from relay.errors import ConfigurationError, TransientError

    data = (
        "0x"
        + (
            function_signature_to_4byte_selector("WrongCommitteeScheme(uint32,uint8)")
            + encode(["uint32", "uint8"], [1, 2])
        ).hex()
    )
    reader = EvmCommitteeReader.__new__(EvmCommitteeReader)
    reader.gateway = SimpleNamespace(
        functions=SimpleNamespace(currentCommittee=lambda origin: _RevertingCall(data))
    )
    reader.endpoint = SimpleNamespace(read_chain=lambda name, function: function())
    with pytest.raises(Exception) as raised:
        reader._call("currentCommittee", 1)
    assert not isinstance(raised.value, TransientError), raised.value
    assert isinstance(raised.value, ConfigurationError) and "scheme" in str(raised.value)


@pytest.mark.parametrize("where", ["missing/rows.json", "."])
def test_an_unwritable_json_path_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the review the path was first used after every row was measured (a lost run)."""
    import argparse

    from relay.tools.bench import gas

    def must_not_run(*arguments: object) -> int:
        raise AssertionError("the comparison ran with an unwritable --json path")

    monkeypatch.setattr(gas, "run_comparison", must_not_run)
    args = argparse.Namespace(committees="1", batches="1", json=tmp_path / where)
    assert gas.run(args) == 2
    assert "--json" in capsys.readouterr().err
