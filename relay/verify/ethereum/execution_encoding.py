"""What the execution proofs share: JSON-RPC values and reading a Merkle-Patricia trie proof.

Every execution-layer answer arrives as JSON-RPC (`0x` hex DATA and QUANTITY, objects, lists of
RLP-encoded trie nodes) and is checked against a proven root by walking a Merkle-Patricia proof.
The parsers here reject anything malformed with `MalformedObject` before any check runs, so the
header, receipt and account modules only ever see well-formed bytes and integers. The trie
itself comes from the `trie` package; JSON follows the Ethereum JSON-RPC API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import rlp
from rlp.exceptions import DecodingError
from trie import HexaryTrie
from trie.exceptions import BadTrieProof, InvalidNode, ValidationError

from relay.verify.ethereum.errors import MalformedObject

EMPTY_TRIE_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
# What a forged or truncated proof can raise from inside the trie and RLP packages.
TRIE_ERRORS = (
    BadTrieProof,
    InvalidNode,
    ValidationError,
    DecodingError,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
)


# --- JSON-RPC primitives ------------------------------------------------------------------------------


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _hex_digits(value: object, what: str) -> str:
    """The digits after `0x` of a JSON-RPC hex string: only hex digits (no sign, space or `_`)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedObject(f"{what} is not 0x-prefixed hex", field=what, value=value)
    digits = value[2:]
    if not set(digits) <= _HEX_DIGITS:
        raise MalformedObject(f"{what} is not valid hex", field=what, value=value)
    return digits


def parse_data(value: object, length: int | None = None, *, what: str = "data") -> bytes:
    """JSON-RPC DATA (`bytes`): `0x` and whole bytes of hex, optionally of exactly `length` bytes."""
    digits = _hex_digits(value, what)
    if len(digits) % 2:
        raise MalformedObject(f"{what} is not valid hex (odd length)", field=what, value=value)
    data = bytes.fromhex(digits)
    if length is not None and len(data) != length:
        raise MalformedObject(f"{what} has the wrong length", field=what, length=len(data), expected=length)
    return data


def parse_bytes_max32(value: object, *, what: str = "bytesMax32") -> bytes:
    """JSON-RPC `bytesMax32` (e.g. a storage key): `0x` and 0 to 64 hex digits, odd counts too.

    execution-apis allows `0x0` or `0x1` for a storage slot: the value is a number up to 32
    bytes, returned left-padded to exactly 32 bytes.
    """
    digits = _hex_digits(value, what)
    if len(digits) > 64:
        raise MalformedObject(f"{what} is longer than 32 bytes", field=what, value=value)
    return int(digits or "0", 16).to_bytes(32, "big")


def parse_quantity(value: object, *, what: str = "quantity") -> int:
    """JSON-RPC QUANTITY (`uint`): `0x` hex without leading zeros (leniently, also with them); `0x0` is zero."""
    digits = _hex_digits(value, what)
    if not digits:
        raise MalformedObject(f"{what} is not a hex quantity", field=what, value=value)
    return int(digits, 16)


def require_fields(obj: object, what: str, *names: str) -> Mapping[str, object]:
    """`obj` as a JSON object holding at least the fields `names`; `what` names it in the error."""
    if not isinstance(obj, Mapping):
        raise MalformedObject(f"{what} is not an object", field=what)
    missing = [name for name in names if name not in obj]
    if missing:
        raise MalformedObject(f"{what} lacks fields", field=what, missing=missing)
    return obj


def parse_proof_nodes(value: object, what: str) -> tuple[bytes, ...]:
    """A JSON list of `0x` hex trie nodes, as bytes; `what` names it in the error."""
    if not isinstance(value, list):
        raise MalformedObject(f"{what} is not a list of nodes", field=what)
    return tuple(parse_data(node, what=what) for node in value)


# --- Merkle-Patricia proofs ----------------------------------------------------------------------------------


def get_from_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes:
    """The value at `key` in the trie of `root`, read from `proof` only (b"" if absent).

    Raises one of `TRIE_ERRORS` when the proof does not resolve against `root`.
    """
    nodes = [rlp.decode(node) for node in proof]
    return bytes(HexaryTrie.get_from_proof(root, key, nodes))
