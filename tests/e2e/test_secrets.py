"""No secret of the devnet (BLS keys, transaction keys, the operator token, TLS private keys) ever
appears in a log, a metrics page, a config file or an error message.

Runs on the shared session devnet after the other end-to-end modules, so the logs it greps hold
their outages, attacks and restarts too. It also provokes the error paths that handle a secret
(a wrong operator token, a retry with the right one) before it reads.
"""

from __future__ import annotations

import re
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from relay.tools.devnet import Devnet

_PEM_BODY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(.*?)-----END", re.S)


def secret_files(devnet: Devnet) -> list[Path]:
    """Every file the devnet wrote as a secret (mode 0600 under keys/), signed-checkpoint logs aside."""
    assert devnet.run_dir is not None
    found = []
    for path in sorted((devnet.run_dir / "keys").rglob("*")):
        if not path.is_file() or path.suffix == ".jsonl":
            continue
        if stat.S_IMODE(path.stat().st_mode) & 0o077 == 0:
            found.append(path)
    return found


def needles(path: Path) -> Iterator[str]:
    """The forms in which the secret in `path` could leak: as written, and re-encoded."""
    text = path.read_text()
    pem = _PEM_BODY.search(text)
    if pem is not None:
        # Any one line of the key's base64 body is enough to count as a leak.
        yield from (line for line in pem.group(1).split() if len(line) >= 32)
        return
    value = text.strip()
    yield value
    bare = value.removeprefix("0x")
    if bare != value:
        yield bare
    if re.fullmatch(r"[0-9a-fA-F]+", bare):
        number = int(bare, 16)
        yield str(number)  # decimal, e.g. a BLS secret scalar printed as an int
        yield number.to_bytes(32, "big").hex()
        yield repr(number.to_bytes(32, "big"))[2:-1]  # as a bytes literal


def haystacks(devnet: Devnet, errors: list[str]) -> Iterator[tuple[str, str]]:
    assert devnet.run_dir is not None
    for log in sorted((devnet.run_dir / "logs").glob("*.log")):
        yield str(log), log.read_text(errors="replace")
    for config in sorted((devnet.run_dir / "configs").glob("*")):
        yield str(config), config.read_text()
    for name, address in sorted(devnet.metrics_addresses.items()):
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as page:
            yield f"metrics of {name}", page.read().decode()
    for index, error in enumerate(errors):
        yield f"error message {index}", error


def provoke_secret_errors(devnet: Devnet) -> list[str]:
    """Error messages from calls that handle the operator token, right and wrong."""
    messages = []
    client = devnet.client()
    ids = devnet.send("alpha", "beta", 1, body_prefix="secret-check")
    for token in ("not-the-token", devnet.operator_token, devnet.operator_token + "x"):
        try:
            client.retry(ids[0], token, force=True)
        except grpc.RpcError as error:
            messages.append(f"{error.code()}: {error.details()}")
        except Exception as error:  # noqa: BLE001 - any failure's text is what we inspect
            messages.append(repr(error))
    assert messages, "the wrong operator token must be refused"
    client.wait_delivered(ids[0])  # leave the shared devnet quiet for the modules after this one
    return messages


@pytest.mark.timeout(300)
def test_no_secret_in_logs_metrics_configs_or_errors(devnet: Devnet) -> None:
    files = secret_files(devnet)
    kinds = {path.name for path in files}
    # The test is only as good as its list of secrets: BLS keys, the transaction key, the token.
    assert any(name.startswith("bls-") for name in kinds), kinds
    assert "submitter.hex" in kinds and "operator-token" in kinds, kinds
    errors = provoke_secret_errors(devnet)
    secrets_to_find = {needle: path for path in files for needle in needles(path)}
    assert len(secrets_to_find) >= len(files)
    leaks = []
    searched = 0
    for where, text in haystacks(devnet, errors):
        searched += len(text)
        for needle, path in secrets_to_find.items():
            if needle in text:
                leaks.append(f"{path.name} appears in {where}")
    assert searched > 10_000, "the devnet wrote almost nothing to search"
    assert not leaks, "\n".join(leaks)
