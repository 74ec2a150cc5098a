"""The message lifecycle: states and the transitions allowed between them.

```
OBSERVED -> FINAL -> ATTESTED -> VERIFIED -> SUBMITTED -> DELIVERED
                        |         |  ^  |            |
                     REJECTED     v  |  RETRYING <---+ (transient failure, backoff)
                               UNPAID       |
                       (gas not paid for)  PARKED (dead letter; an operator can retry it)

SUBMITTED -> PAUSED -> VERIFIED (the destination gateway paused delivery from the origin)

A light-client origin (`verification: lightclient`, no committee, no attestors):
FINAL -> WAITING_FOR_HEADER -> HEADER_SUBMITTED -> VERIFIED -> SUBMITTED -> ...
               |  ^                  |
               |  +------------------+ (the update did not bring the destination far enough)
               +-> VERIFIED (the destination's light client already stores a later block)
```

- **Waiting for header** (`relay.relayer.lightclient`): the message's block is final on Ethereum,
  but the destination's on-chain light client (`EthereumLightClient.latestExecutionBlockNumber`)
  is still below it. The relayer fetches light-client updates from a beacon node, verifies them
  with its own Python light client, and asks the destination's submitter to send them.
- **Header submitted**: an update that finalizes the message's block was sent to the destination
  light client. Once the destination stores a block at or after the message's, the receipt proof
  is built from the execution RPC and checked against the receipts root the destination stored:
  VERIFIED, delivered by receipt proof (`EthereumInbox.deliverFromEthereumBatch`).

- **Unpaid** (the relayer's gas policy, `relay.relayer.policy`): a VERIFIED or due RETRYING
  message not paid for enough at the destination's current gas price waits in UNPAID with the
  reason; it goes back to VERIFIED once a top-up (`payForGas`) or a lower gas price makes it
  deliverable, or to DELIVERED if someone else delivered it. Not terminal: re-checked periodically.
- **Paused** (emergency controls, docs/operations.md): the destination gateway refused the
  delivery because its guardian or owner paused delivery from the origin (`DeliveryPaused`). Not a
  failure: no attempt is counted, and the retry window starts again when it is released. It goes
  back to VERIFIED every `retry.paused_recheck` seconds to be tried again (a simulation only: no
  transaction is sent while the pause lasts), or to DELIVERED if the chain shows it delivered.

Which failure leads where (the error's type decides, `relay.errors`):

- **Transient** (`TransientError`: an RPC error or timeout, a submitter, RPC or chain away, a
  nonce race, no outcome reported): RETRYING, with a capped backoff, for as long as the operator's
  retry window (`retry.give_up_after`, a week by default). An outage never parks a message.
- **Permanent** (`PermanentError`: the recipient reverted, the submitter refused the request) and a
  transient failure that outlasted the retry window (`AttemptsExhausted`): PARKED, until an
  operator retries it.
- **Invalid proof** (`InvalidProof`: the certificate, root or branch does not verify off-chain):
  REJECTED, never retried by itself. A destination gateway that refuses a proof the relayer
  verified is not trusted alone: PARKED (`GatewayRejected`, counted in rejections), retryable.

The table below is the only place that says which move is legal; the store calls
`verify_transition` before every row update, so an impossible history (DELIVERED -> SUBMITTED,
say) is a typed error, never a silent rewrite. A message that is OBSERVED but not yet FINAL can
also disappear (a reorg orphaned its block); that is a deletion, not a transition.
"""

from __future__ import annotations

import enum

from relay.errors import RelayError


class MessageState(enum.Enum):
    """Where a message is on its way from the source gateway to the destination recipient."""

    OBSERVED = "observed"  # Dispatch event seen, block not yet final
    FINAL = "final"  # block final on the source; waiting for the committee
    ATTESTED = "attested"  # a quorum certificate over a checkpoint covering it is stored
    VERIFIED = "verified"  # certificate, root and Merkle branch verified off-chain
    SUBMITTED = "submitted"  # handed to the destination's submitter
    DELIVERED = "delivered"  # the destination gateway marked it delivered (terminal)
    REJECTED = "rejected"  # a proof failed; never retried by itself
    RETRYING = "retrying"  # a transient delivery failure; due again at next_attempt_at
    PARKED = "parked"  # a permanent failure or the retry window ran out; waits for an operator
    UNPAID = "unpaid"  # verified, but its gas is not paid for enough (gas policy); re-checked
    PAUSED = "paused"  # the destination gateway paused delivery from the origin; re-checked
    # A light-client origin: the destination light client stores no block at or after the message's yet.
    WAITING_FOR_HEADER = "waiting_for_header"
    # A light-client origin: an update finalizing the message's block was sent to the destination.
    HEADER_SUBMITTED = "header_submitted"

    @property
    def is_terminal(self) -> bool:
        """Whether the relayer will never move the message again by itself."""
        return self in _TERMINAL

    @property
    def is_pending(self) -> bool:
        """Whether the relayer still has work to do for the message."""
        return self not in _TERMINAL


_TERMINAL = frozenset({MessageState.DELIVERED, MessageState.REJECTED, MessageState.PARKED})

S = MessageState

ALLOWED_TRANSITIONS: dict[MessageState, frozenset[MessageState]] = {
    S.OBSERVED: frozenset({S.FINAL}),
    # -> WAITING_FOR_HEADER: a light-client origin (no committee) waits for the destination's header.
    S.FINAL: frozenset({S.ATTESTED, S.WAITING_FOR_HEADER}),
    # -> VERIFIED when the destination light client already stores a later block and the receipt
    # proof verifies off-chain; -> REJECTED when the proven receipts do not hold the message.
    S.WAITING_FOR_HEADER: frozenset({S.HEADER_SUBMITTED, S.VERIFIED, S.REJECTED}),
    # -> WAITING_FOR_HEADER: the destination still stores an earlier block (the update was refused,
    # or another one raced it); the relayer finds an update again.
    S.HEADER_SUBMITTED: frozenset({S.VERIFIED, S.WAITING_FOR_HEADER, S.REJECTED}),
    # ATTESTED -> FINAL: the stored certificate could not be used (e.g. the relayer's own tree is
    # not yet complete up to the checkpoint); the message waits for another checkpoint.
    S.ATTESTED: frozenset({S.VERIFIED, S.REJECTED, S.FINAL}),
    # -> FINAL: attested under a committee epoch the destinations no longer accept (a hand-over);
    # attested again under the new one.
    S.VERIFIED: frozenset({S.SUBMITTED, S.RETRYING, S.PARKED, S.UNPAID, S.FINAL}),
    S.SUBMITTED: frozenset({S.DELIVERED, S.REJECTED, S.RETRYING, S.PARKED, S.PAUSED}),
    # A due retry is submitted again; past the retry window it is parked.
    S.RETRYING: frozenset({S.SUBMITTED, S.DELIVERED, S.REJECTED, S.PARKED, S.UNPAID, S.FINAL}),
    # Paid for (a top-up, a lower gas price) or delivered by someone else.
    S.UNPAID: frozenset({S.VERIFIED, S.DELIVERED}),
    # Tried again after `retry.paused_recheck`, or delivered by someone else after the unpause.
    S.PAUSED: frozenset({S.VERIFIED, S.DELIVERED}),
    # Operator retry: back to VERIFIED when the stored proof can be reused, else to FINAL;
    # DELIVERED when the destination chain shows it delivered (by anyone).
    S.PARKED: frozenset({S.VERIFIED, S.FINAL, S.DELIVERED}),
    # Operator retry with force: attest and verify again from scratch.
    S.REJECTED: frozenset({S.FINAL}),
    S.DELIVERED: frozenset(),
}


class IllegalTransition(RelayError, ValueError):
    """A state change the lifecycle does not allow (a bug or a concurrent writer)."""


class StaleState(RelayError):
    """The message is no longer in the state the caller expected (someone else moved it)."""


class LeaseLost(StaleState):
    """A write under a lease or a message claim whose fencing token has moved on.

    Another replica took the lease (or the claim) over after it expired, so this writer's view is
    stale: its write is refused whole, and the new holder's outcome stands (docs/adr/0007).
    """


def is_transition_allowed(old: MessageState, new: MessageState) -> bool:
    """Whether the lifecycle allows moving a message from `old` to `new`."""
    return new in ALLOWED_TRANSITIONS[old]


def verify_transition(old: MessageState, new: MessageState) -> None:
    """Raise `IllegalTransition` unless `old -> new` is in the lifecycle table."""
    if not is_transition_allowed(old, new):
        allowed = sorted(s.name for s in ALLOWED_TRANSITIONS[old])
        raise IllegalTransition(
            f"illegal message transition {old.name} -> {new.name}",
            old=old.name,
            new=new.name,
            allowed=allowed,
        )
