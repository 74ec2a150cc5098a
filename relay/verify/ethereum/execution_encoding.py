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


def parse_data(value: object, length: int | None = None, *, what: str = "data") -> bytes:
    """JSON-RPC DATA: `0x` hex bytes, optionally of exactly `length` bytes."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedObject(f"{what} is not 0x-prefixed hex", field=what, value=value)
    try:
        data = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedObject(f"{what} is not valid hex", field=what, value=value) from None
    if length is not None and len(data) != length:
        raise MalformedObject(f"{what} has the wrong length", field=what, length=len(data), expected=length)
    return data


def parse_quantity(value: object, *, what: str = "quantity") -> int:
    """JSON-RPC QUANTITY: `0x` hex without leading zeros (leniently, also with them)."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        raise MalformedObject(f"{what} is not a hex quantity", field=what, value=value)
    try:
        return int(value[2:], 16)
    except ValueError:
        raise MalformedObject(f"{what} is not a hex quantity", field=what, value=value) from None


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
