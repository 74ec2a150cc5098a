"""The layering contracts in `.importlinter` cover every module, and the checker really checks.

`make lint` runs `lint-imports` on the contracts. These tests keep the contracts honest as the code
grows: each top-level module of `relay` must be classified (core or tool), the pure verifier's
contract must forbid every other project module, and a deliberately broken contract must fail.
"""

from __future__ import annotations

import configparser
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import relay

ROOT = Path(__file__).resolve().parents[2]
# Outside the core: may import adapters (they start chains, send transactions, print for people).
TOOLS = {"relay.cli", "relay.client", "relay.tools", "relay.__main__"}
# What the pure verifier may import besides itself.
VERIFY_MAY_IMPORT = {"relay.errors", "relay.verify"}


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser


def listed(section: str, key: str) -> set[str]:
    return {line.strip() for line in contracts()[section][key].splitlines() if line.strip()}


def top_level_modules() -> set[str]:
    return {f"relay.{info.name}" for info in pkgutil.iter_modules(relay.__path__)}


def test_every_relay_module_is_core_or_tool() -> None:
    core = listed("importlinter:contract:core-without-adapters", "source_modules")
    modules = top_level_modules()
    assert not core & TOOLS
    assert modules - core - TOOLS == set(), "classify new modules in .importlinter (core) or TOOLS here"
    assert core - top_level_modules() == set(), "the contract names a module that does not exist"


def test_the_verifier_contract_forbids_every_other_project_module() -> None:
    forbidden = listed("importlinter:contract:verify-is-pure", "forbidden_modules")
    assert top_level_modules() - VERIFY_MAY_IMPORT - forbidden == set()
    assert "adapters" in forbidden


def test_a_broken_contract_is_reported(tmp_path: Path) -> None:
    """The checker sees real imports: the relayer does use the store, so forbidding it must fail."""
    config = tmp_path / "broken.ini"
    config.write_text(
        "[importlinter]\nroot_packages =\n    relay\n\n"
        "[importlinter:contract:broken]\nname = the relayer without a store\ntype = forbidden\n"
        "source_modules =\n    relay.relayer\nforbidden_modules =\n    relay.store\n"
    )
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert executable is not None, "import-linter is a dev dependency (setup.cfg): run `make setup`"
    result = subprocess.run(
        [executable, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and "relay.relayer" in result.stdout
