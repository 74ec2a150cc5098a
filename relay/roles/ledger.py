"""The attestor's memory of what it signed: never two roots for one index, never a root off its tree.

`CheckpointLedger` signs the checkpoint of each new final (root, count) and remembers:

- every root it ever signed, by index, so that a changed root at a signed index is refused
  (`FinalityConflict`): finality was violated, or the source lied;
- the frontier (the 32 nodes an incremental tree keeps) of the last tree it signed, so that a new
  (root, count) is signed only if it *extends* that tree: the leaves the source reports between
  the old and the new count, appended to the old frontier, must give the new root. A root that
  does not (history rewritten below what was signed, a shrunk or replaced tree) raises
  `NonExtendingRoot`, a `FinalityConflict`, and the attestor stops signing.

With a `signed_log` both survive restarts: each signature's (index, root, frontier) is appended
and fsynced before the signature is served. The leaves come from the finality source when it
implements `relay.chains.TreeHistory`; a source that does not is checked at equal indices only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from relay.chains import TreeHistory
from relay.errors import ConfigurationError, RelayError, TransientError
from relay.rpc.convert import PartialSignature
from relay.verify.bls import BlsBackend
from relay.verify.committee import Checkpoint, sign_checkpoint
from relay.verify.ecdsa import sign_digest
from relay.verify.merkle import IncrementalTree

log = logging.getLogger(__name__)


class FinalityConflict(RelayError):
    """The final state at an index already signed changed: finality was violated. Never sign again."""


class NonExtendingRoot(FinalityConflict):
    """A new final root is not the tree signed before plus new leaves: history was rewritten."""


class InconsistentTreeSource(TransientError):
    """The finality source's leaves do not match its own (root, count): ask again later."""


@dataclass(frozen=True)
class AttestorIdentity:
    """Who this attestor is, as GetIdentity reports it."""

    origin: int
    gateway: bytes
    epoch: int
    signer_index: int
    public_key: bytes
    proof_of_possession: bytes


@dataclass
class SignedLogContents:
    """What a signed log holds for one identity: every root by index, and the last signed tree."""

    roots: dict[int, bytes]
    tree: IncrementalTree | None


def append_durably(path: str | Path, entry: Mapping[str, object]) -> None:
    """Append `entry` as one JSON line to `path` and fsync it before returning."""
    with open(path, "a", encoding="utf-8") as log_file:
        log_file.write(json.dumps(entry) + "\n")
        log_file.flush()
        os.fsync(log_file.fileno())


def read_signed_log(path: Path, identity: AttestorIdentity) -> SignedLogContents:
    """The roots and the newest frontier in a signed log (missing file: empty); other origins or epochs are ignored.

    Entries written before frontiers were recorded carry none; then `tree` comes from the newest
    entry that has one (or is None, and the next signature records it).
    """
    contents = SignedLogContents({}, None)
    if not path.exists():
        return contents
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if entry["origin"] != identity.origin or entry["epoch"] != identity.epoch:
                continue
            index, root = int(entry["index"]), bytes.fromhex(entry["root"])
            frontier = entry.get("frontier")
            tree = None
            if frontier is not None:
                tree = IncrementalTree.from_frontier(index + 1, [bytes.fromhex(node) for node in frontier])
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigurationError(
                "signed log is corrupt; restore it from a backup (never delete it: it is what stops "
                "this attestor from signing a conflicting root)",
                path=str(path),
                line=number,
            ) from error
        if contents.roots.get(index, root) != root:
            raise FinalityConflict("signed log holds two roots for one index", index=index, path=str(path))
        if tree is not None and tree.root() != root:
            raise ConfigurationError(
                "signed log entry's frontier does not give its root; restore the log from a backup",
                path=str(path),
                line=number,
            )
        contents.roots[index] = root
        if tree is not None and (contents.tree is None or tree.count > contents.tree.count):
            contents.tree = tree
    return contents


def compute_extension(tree: IncrementalTree, leaves: Sequence[bytes]) -> IncrementalTree:
    """`tree` with `leaves` appended (a copy; `tree` is unchanged)."""
    extended = tree.copy()
    for leaf in leaves:
        extended.insert(bytes(leaf))
    return extended


class CheckpointLedger:
    """The attestor's signed checkpoints, newest last; thread-safe, with waiting for new ones."""

    def __init__(
        self,
        identity: AttestorIdentity,
        secret_key: int,
        backend: BlsBackend,
        history: int,
        signed_log: str | None = None,
        *,
        ecdsa_key: bytes | None = None,
    ) -> None:
        self.identity = identity
        self._secret_key = secret_key
        self._backend = backend
        # A member of an ECDSA committee signs with its secp256k1 key instead (EIP-191 over the
        # same checkpoint digest, `relay.verify.ecdsa.sign_digest`); its identity's public_key is
        # its 20-byte address.
        self._ecdsa_key = ecdsa_key
        self._signed: deque[PartialSignature] = deque(maxlen=history)
        self._changed = threading.Condition()
        # Every root ever signed by index (36 bytes each), beyond the kept history and restarts.
        self._roots: dict[int, bytes] = {}
        # The last signed tree's frontier: what every later root must extend.
        self._tree: IncrementalTree | None = None
        self._log_path = Path(signed_log) if signed_log else None
        self.signing = True  # False while this attestor is not a member of its committee
        self._record_next = False  # the next signature is the first under a new identity: log it
        if self._log_path is not None:
            contents = read_signed_log(self._log_path, identity)
            self._roots, self._tree = contents.roots, contents.tree

    def change_identity(self, identity: AttestorIdentity, *, signing: bool) -> None:
        """Sign as `identity` from now on (a new committee epoch or signer index), or not at all.

        The checkpoints signed under the old identity are no longer served: the next final state
        is signed again under the new epoch. Roots signed before stay binding (never two roots
        for one index, whatever the epoch); a signed log's entries of the new epoch are merged in.
        """
        with self._changed:
            if self._log_path is not None:
                contents = read_signed_log(self._log_path, identity)
                for index, root in contents.roots.items():
                    known = self._roots.get(index)
                    if known is not None and known != root:
                        raise FinalityConflict("signed log holds two roots for one index", index=index)
                    self._roots[index] = root
                if contents.tree is not None and (
                    self._tree is None or contents.tree.count > self._tree.count
                ):
                    self._tree = contents.tree
            self.identity = identity
            self.signing = signing
            self._signed.clear()
            self._record_next = True
            self._changed.notify_all()

    @property
    def last_signed_index(self) -> int:
        """The highest index signed, or -1."""
        with self._changed:
            return self._signed[-1].checkpoint.index if self._signed else -1

    @property
    def signed_tree_count(self) -> int:
        """The leaf count of the last tree whose frontier is known (0 if none)."""
        with self._changed:
            return self._tree.count if self._tree is not None else 0

    def apply_final_state(
        self, root: bytes, count: int, history: TreeHistory | None = None
    ) -> PartialSignature | None:
        """Sign the checkpoint of a new final (root, count); None if nothing new.

        Raises `FinalityConflict` for a changed root at a signed index, `NonExtendingRoot` for a
        root that does not extend the last signed tree (checked with `history`'s leaves), and
        `InconsistentTreeSource` when `history` contradicts itself.
        """
        index = count - 1
        with self._changed:
            if not self.signing:
                return None
            known = self._roots.get(index)
            if known is not None and known != root:
                raise FinalityConflict(
                    "final gateway root changed at an index already signed",
                    index=index,
                    signed_root=known,
                    new_root=root,
                )
            if self._signed and index <= self._signed[-1].checkpoint.index:
                return None
            previous = self._tree
            if previous is not None and count < previous.count:
                return None  # an older state (a lagging read): nothing new to sign
        tree = self._verify_extension(previous, root, count, history)

        identity = self.identity
        checkpoint = Checkpoint(
            origin=identity.origin, gateway=identity.gateway, epoch=identity.epoch, root=root, index=index
        )
        if self._ecdsa_key is not None:
            signature = sign_digest(self._ecdsa_key, checkpoint.digest())
        else:
            signature = sign_checkpoint(self._secret_key, checkpoint, self._backend)
        partial = PartialSignature(checkpoint, identity.signer_index, identity.public_key, signature)
        with self._changed:
            if identity is not self.identity:
                return None  # the identity changed while signing: sign again under the new one
            if index not in self._roots or (tree is not None and self._tree is not tree) or self._record_next:
                self._record(index, root, tree)
                self._record_next = False
            self._signed.append(partial)
            self._changed.notify_all()
        return partial

    def _verify_extension(
        self, previous: IncrementalTree | None, root: bytes, count: int, history: TreeHistory | None
    ) -> IncrementalTree | None:
        """The tree of the new state, checked to extend `previous`; None when no check is possible."""
        if history is None:
            return None
        if previous is None:
            # Nothing signed yet (or a log from before frontiers were kept): learn this tree's frontier, checked against its root.
            tree = IncrementalTree.from_frontier(count, history.frontier())
            if tree.root() != root:
                raise InconsistentTreeSource(
                    "the source's frontier does not give its root",
                    count=count,
                    root=root,
                    computed=tree.root(),
                )
            return tree
        if count == previous.count:
            if previous.root() != root:
                raise NonExtendingRoot(
                    "final root differs from the signed tree of the same size",
                    count=count,
                    signed_root=previous.root(),
                    new_root=root,
                )
            return previous
        leaves = list(history.leaves(previous.count, count))
        if len(leaves) != count - previous.count or not all(len(leaf) == 32 for leaf in leaves):
            raise InconsistentTreeSource(
                "the source returned the wrong leaves", first=previous.count, end=count, returned=len(leaves)
            )
        extended = compute_extension(previous, leaves)
        if extended.root() != root:
            raise NonExtendingRoot(
                "final root does not extend the tree signed before",
                signed_count=previous.count,
                signed_root=previous.root(),
                count=count,
                new_root=root,
                extended_root=extended.root(),
            )
        return extended

    def _record(self, index: int, root: bytes, tree: IncrementalTree | None) -> None:
        """Remember (and, with a signed log, durably append) what was signed at `index`, before it is served."""
        self._roots[index] = root
        if tree is not None:
            self._tree = tree
        if self._log_path is not None:
            entry: dict[str, object] = {
                "origin": self.identity.origin,
                "epoch": self.identity.epoch,
                "index": index,
                "root": root.hex(),
            }
            if tree is not None:
                entry["frontier"] = [node.hex() for node in tree.frontier]
            append_durably(self._log_path, entry)

    def newest_at_least(self, min_index: int) -> PartialSignature | None:
        """The newest signed checkpoint if its index is >= `min_index`."""
        with self._changed:
            if self._signed and self._signed[-1].checkpoint.index >= min_index:
                return self._signed[-1]
            return None

    def signed_from(self, from_index: int) -> list[PartialSignature]:
        """Every kept signed checkpoint with index >= `from_index`, oldest first."""
        with self._changed:
            return [s for s in self._signed if s.checkpoint.index >= from_index]

    def wait_for_change(self, after_index: int, timeout: float) -> None:
        """Block until a checkpoint above `after_index` is signed, or `timeout` passes."""
        with self._changed:
            self._changed.wait_for(
                lambda: bool(self._signed) and self._signed[-1].checkpoint.index > after_index, timeout
            )


__all__ = [
    "AttestorIdentity",
    "CheckpointLedger",
    "FinalityConflict",
    "InconsistentTreeSource",
    "NonExtendingRoot",
    "SignedLogContents",
    "compute_extension",
    "read_signed_log",
]
