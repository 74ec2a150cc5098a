"""The relay's one error root, split by what the caller must do.

- `InvalidProof`: the data is wrong (forged, tampered, malformed). Never retried; the reason is
  stored and counted.
- `TransientError`: the world is temporarily unwell (RPC down, nonce race). Retried with backoff.
- `PermanentError`: retrying will not help (recipient reverts, out of attempts). Parked for an operator.
- `ConfigurationError`: the operator's configuration is wrong. The process refuses to start.

Every error carries the values that failed as keyword fields: `err.fields` and attributes.
Errors mix into built-in types (`ValueError`) where callers expect them, as web3.py does.
"""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """Root of every failure the relay expects in normal operation."""

    def __init__(self, description: str, /, **fields: Any) -> None:
        self.description = description
        self.fields: dict[str, Any] = dict(fields)
        for key, value in fields.items():
            if not hasattr(type(self), key):
                setattr(self, key, value)
        super().__init__(description)

    def __str__(self) -> str:
        if not self.fields:
            return self.description
        details = ", ".join(f"{k}={_short(v)}" for k, v in self.fields.items())
        return f"{self.description} ({details})"

    @property
    def reason(self) -> str:
        """A stable, metric-friendly name for the failure: the class name."""
        return type(self).__name__


def _short(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        text = "0x" + bytes(value).hex()
        return text if len(text) <= 74 else text[:72] + "…"
    return repr(value)


# --- invalid proofs: never retry -------------------------------------------------------------


class InvalidProof(RelayError, ValueError):
    """The proof or data is wrong; retrying cannot help and the message must not be delivered."""


class MalformedEncoding(InvalidProof):
    """Bytes that do not decode into the expected structure."""


class MalformedMessage(MalformedEncoding):
    """A leaf of the source gateway's tree whose message does not decode: it can never be delivered."""


class InvalidMerkleProof(InvalidProof):
    """A Merkle branch does not lead from the leaf to the claimed root."""


class InvalidPublicKey(InvalidProof):
    """A BLS public key that is malformed, the identity, or outside the prime-order subgroup."""


class InvalidSignature(InvalidProof):
    """A signature that does not verify (or does not decode to a valid group element)."""


class InvalidProofOfPossession(InvalidProof):
    """A committee member's proof of possession of its secret key does not verify."""


class UnknownSigner(InvalidProof):
    """A signer that is not a member of the committee."""


class DuplicateSigner(InvalidProof):
    """The same committee member counted twice."""


class QuorumNotReached(InvalidProof):
    """The signers' weight is below the committee's threshold."""


class EpochMismatch(InvalidProof):
    """A checkpoint or hand-over signed for another committee epoch."""


class OriginMismatch(InvalidProof):
    """A checkpoint or message of another origin domain than expected."""


class GatewayMismatch(InvalidProof):
    """A checkpoint of another source gateway than expected."""


class DestinationMismatch(InvalidProof):
    """A message addressed to another destination domain."""


class IndexOutOfRange(InvalidProof):
    """A message whose leaf index is not covered by the checkpoint."""


class InvalidCommittee(InvalidProof):
    """A committee that is malformed: no members, zero weights, an unreachable threshold."""


class InvalidHandover(InvalidProof):
    """A committee hand-over that does not follow from the current committee."""


class UntrustedAnswer(InvalidProof):
    """A beacon node or execution RPC served data that does not verify (a light-client origin).

    The node lied or is broken, not the message: the relayer keeps the message waiting and asks
    again (never rejects it for this), and counts the rejection by reason."""


class MessageNotInBlock(InvalidProof):
    """A light-client origin's receipts, proven against the destination's stored header, hold no
    Dispatch of this message id in the block the watcher saw it in."""


# --- transient: retry ------------------------------------------------------------------------


class TransientError(RelayError):
    """A temporary failure; the operation is retried with backoff."""


class RpcUnavailable(TransientError):
    """A chain RPC or peer did not answer or answered with a server error."""


class SourceDisagreement(TransientError):
    """A source chain's RPC endpoints disagree (logs, block hashes): the origin halts until they agree.

    Never resolved by rejecting messages: nothing new is stored for the origin meanwhile.
    """


class NotYetAvailable(TransientError):
    """The data asked for does not exist yet (no checkpoint covers the index, no quorum yet)."""


class StoreUnavailable(TransientError):
    """The store's database did not answer (a PostgreSQL restart, a lost connection).

    The interrupted transaction was rolled back, unless the connection dropped during its COMMIT,
    when it may have committed: the caller's next pass retries, and the state checks of every
    write (`StaleState`, fences) make a repeat harmless. The pool reconnects by itself."""


class DeliveryNotConfirmed(TransientError):
    """A submitter reported a message delivered, but the destination chain does not show it
    delivered (yet, or a lying submitter): retried, never marked DELIVERED on its word."""


# --- waiting: neither a failure nor a rejection ------------------------------------------------


class DeliveryPaused(RelayError):
    """The destination gateway has paused delivery from this origin (its guardian or owner did):
    the message waits (PAUSED), is not counted as a failed attempt, and goes out after the unpause."""


# --- permanent: park -------------------------------------------------------------------------


class PermanentError(RelayError):
    """Retrying will not help; the message is parked for an operator."""


class HeaderWalkTooLong(PermanentError):
    """A light-client origin's message block is further below the destination's stored header
    than a receipt proof may walk back (`light_client_max_header_walk`)."""


class RecipientReverted(PermanentError):
    """The destination recipient's `handle` reverted."""


class AttemptsExhausted(PermanentError):
    """A transient failure outlasted the retry policy."""


# --- configuration ---------------------------------------------------------------------------


class ConfigurationError(RelayError, ValueError):
    """The configuration is wrong; the process refuses to start."""


class BackendUnavailable(ConfigurationError):
    """A requested backend (BLS, store, adapter kind) is unknown or not installed."""
