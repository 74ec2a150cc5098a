"""Decoded sync-committee public keys, kept for as long as their period lasts.

Decoding a compressed BLS public key costs a square root and a subgroup check; a mainnet
committee has 512 of them and signs every update of its ~27-hour period. The cache decodes each
committee once per BLS backend and also keeps the sum of all its keys, so an update signed by
most of the committee is checked against "all keys minus the few that did not sign".
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from relay.errors import InvalidPublicKey
from relay.verify.bls import BlsBackend, PublicKeyHandle
from relay.verify.ethereum.containers import SyncCommittee
from relay.verify.ethereum.errors import InvalidSyncCommitteeKey


@dataclass(frozen=True)
class DecodedSyncCommittee:
    """A committee's keys as backend handles, and their sum."""

    keys: tuple[PublicKeyHandle, ...]
    total: PublicKeyHandle


class SyncCommitteeKeyCache:
    """Decoded keys of the most recent committees for one backend (bounded, least recently used out).

    The store needs at most two committees at a time (current and next); the default capacity
    leaves room for a caller that keeps an older store around (a benchmark, a replay).
    """

    def __init__(self, backend: BlsBackend, capacity: int = 4) -> None:
        if capacity < 2:
            raise ValueError("the cache must hold at least the current and next committees")
        self.backend = backend
        self.capacity = capacity
        self._entries: OrderedDict[SyncCommittee, DecodedSyncCommittee] = OrderedDict()
        self.decoded_committees = 0
        """How many committees this cache decoded (a counter for tests and metrics)."""

    def get(self, committee: SyncCommittee) -> DecodedSyncCommittee:
        """The decoded keys of `committee`, decoding them on first use."""
        entry = self._entries.get(committee)
        if entry is not None:
            self._entries.move_to_end(committee)
            return entry
        entry = self._decode(committee)
        self._entries[committee] = entry
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry

    def __contains__(self, committee: SyncCommittee) -> bool:
        return committee in self._entries

    def aggregate_participants(
        self, committee: SyncCommittee, participants: Sequence[int]
    ) -> PublicKeyHandle:
        """The sum of the keys at `participants`, summing whichever side of the committee is smaller."""
        decoded = self.get(committee)
        size = len(decoded.keys)
        if 2 * len(participants) <= size:
            return self.backend.aggregate_public_keys([decoded.keys[i] for i in participants])
        signed = set(participants)
        absent = [decoded.keys[i] for i in range(size) if i not in signed]
        if not absent:
            return decoded.total
        missing = self.backend.aggregate_public_keys(absent)
        return self.backend.aggregate_public_keys([decoded.total, self.backend.negate_public_key(missing)])

    def _decode(self, committee: SyncCommittee) -> DecodedSyncCommittee:
        keys = []
        for position, key in enumerate(committee.pubkeys):
            try:
                keys.append(self.backend.decode_public_key(key))
            except InvalidPublicKey as error:
                raise InvalidSyncCommitteeKey(
                    "sync committee public key does not decode", position=position, public_key=key
                ) from error
        self.decoded_committees += 1
        return DecodedSyncCommittee(keys=tuple(keys), total=self.backend.aggregate_public_keys(keys))
