"""Reading light-client objects from the beacon API's JSON and from SSZ bytes.

JSON follows the beacon-node API: unsigned integers as decimal strings, bytes as `0x` hex,
objects optionally wrapped as `{"version": fork, "data": ...}`. Parsing is strict: a missing
field, an unknown field, a wrong length or a value out of range raises `MalformedObject`, so a
tampered or truncated answer fails here rather than as a confusing check later. The execution
payload header's field set follows the object's `version` (Capella has no blob-gas fields).

SSZ follows the consensus specs' serialization of the Deneb-and-later types (the form of the
official test vectors).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from relay.verify.ethereum import ssz
from relay.verify.ethereum.config import Fork, Preset
from relay.verify.ethereum.containers import (
    EXECUTION_BRANCH_DEPTH,
    BeaconBlockHeader,
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    SyncAggregate,
    SyncCommittee,
)
from relay.verify.ethereum.errors import MalformedObject
from relay.verify.ethereum.merkle import (
    current_sync_committee_gindex_at_fork,
    finalized_root_gindex_at_fork,
    floorlog2,
    next_sync_committee_gindex_at_fork,
)

_UINT64_MAX = 2**64 - 1
_UINT256_MAX = 2**256 - 1
_MAX_BRANCH_DEPTH = 16

FORK_NAMES = {fork.name.lower(): fork for fork in Fork}

_CAPELLA_EXECUTION_FIELDS = (
    "parent_hash",
    "fee_recipient",
    "state_root",
    "receipts_root",
    "logs_bloom",
    "prev_randao",
    "block_number",
    "gas_limit",
    "gas_used",
    "timestamp",
    "extra_data",
    "base_fee_per_gas",
    "block_hash",
    "transactions_root",
    "withdrawals_root",
)
_DENEB_EXECUTION_FIELDS = (*_CAPELLA_EXECUTION_FIELDS, "blob_gas_used", "excess_blob_gas")


# --- JSON primitives ----------------------------------------------------------------------------------


def parse_fork_name(name: object) -> Fork:
    """The fork of a beacon-API `version` string (`"capella"`, `"deneb"`, ...)."""
    if not isinstance(name, str) or name.lower() not in FORK_NAMES:
        raise MalformedObject("unknown consensus version", version=name)
    return FORK_NAMES[name.lower()]


def parse_hex(
    value: object, length: int | None = None, *, what: str = "value", max_length: int | None = None
) -> bytes:
    """Bytes from a `0x`-prefixed hex string of exactly `length` bytes (or at most `max_length`)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedObject(f"{what} is not 0x-prefixed hex", field=what, value=value)
    try:
        data = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedObject(f"{what} is not valid hex", field=what, value=value) from None
    if length is not None and len(data) != length:
        raise MalformedObject(f"{what} has the wrong length", field=what, length=len(data), expected=length)
    if max_length is not None and len(data) > max_length:
        raise MalformedObject(f"{what} is too long", field=what, length=len(data), limit=max_length)
    return data


def parse_uint(value: object, *, what: str = "value", maximum: int = _UINT64_MAX) -> int:
    """An unsigned integer from a decimal string (or a JSON integer)."""
    if isinstance(value, bool):
        raise MalformedObject(f"{what} is not an unsigned integer", field=what, value=value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isdigit() and value.isascii():
        number = int(value)
    else:
        raise MalformedObject(f"{what} is not an unsigned integer", field=what, value=value)
    if not 0 <= number <= maximum:
        raise MalformedObject(f"{what} is out of range", field=what, value=number)
    return number


def _fields(obj: object, names: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise MalformedObject(f"{what} is not an object", field=what)
    missing = [name for name in names if name not in obj]
    unknown = [name for name in obj if name not in names]
    if missing or unknown:
        raise MalformedObject(f"{what} has the wrong fields", field=what, missing=missing, unknown=unknown)
    return obj


def _branch(value: object, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= _MAX_BRANCH_DEPTH:
        raise MalformedObject(f"{what} is not a list of hashes", field=what)
    return tuple(parse_hex(node, 32, what=what) for node in value)


def unwrap_versioned(obj: object) -> tuple[Fork | None, object]:
    """Split a beacon-API answer `{"version", "data"}` into its fork and data (fork None if bare)."""
    if not (isinstance(obj, Mapping) and "data" in obj):
        return None, obj
    unknown = sorted(set(obj) - {"version", "data"})
    if unknown:
        raise MalformedObject("response has unknown fields", unknown=unknown)
    version = obj.get("version")
    return (parse_fork_name(version) if version is not None else None), obj["data"]


# --- JSON objects -------------------------------------------------------------------------------------------


def parse_beacon_block_header(obj: object) -> BeaconBlockHeader:
    """A `BeaconBlockHeader` from JSON."""
    fields = _fields(
        obj, ("slot", "proposer_index", "parent_root", "state_root", "body_root"), "beacon header"
    )
    return BeaconBlockHeader(
        slot=parse_uint(fields["slot"], what="slot"),
        proposer_index=parse_uint(fields["proposer_index"], what="proposer_index"),
        parent_root=parse_hex(fields["parent_root"], 32, what="parent_root"),
        state_root=parse_hex(fields["state_root"], 32, what="state_root"),
        body_root=parse_hex(fields["body_root"], 32, what="body_root"),
    )


def parse_execution_payload_header(obj: object, fork: Fork | None, preset: Preset) -> ExecutionPayloadHeader:
    """An `ExecutionPayloadHeader` from JSON, with the field set of `fork` (inferred when None)."""
    if fork is None:
        deneb_layout = isinstance(obj, Mapping) and "blob_gas_used" in obj
    else:
        deneb_layout = fork >= Fork.DENEB
    names = _DENEB_EXECUTION_FIELDS if deneb_layout else _CAPELLA_EXECUTION_FIELDS
    fields = _fields(obj, names, "execution payload header")
    return ExecutionPayloadHeader(
        parent_hash=parse_hex(fields["parent_hash"], 32, what="parent_hash"),
        fee_recipient=parse_hex(fields["fee_recipient"], 20, what="fee_recipient"),
        state_root=parse_hex(fields["state_root"], 32, what="state_root"),
        receipts_root=parse_hex(fields["receipts_root"], 32, what="receipts_root"),
        logs_bloom=parse_hex(fields["logs_bloom"], 256, what="logs_bloom"),
        prev_randao=parse_hex(fields["prev_randao"], 32, what="prev_randao"),
        block_number=parse_uint(fields["block_number"], what="block_number"),
        gas_limit=parse_uint(fields["gas_limit"], what="gas_limit"),
        gas_used=parse_uint(fields["gas_used"], what="gas_used"),
        timestamp=parse_uint(fields["timestamp"], what="timestamp"),
        extra_data=parse_hex(fields["extra_data"], what="extra_data", max_length=preset.max_extra_data_bytes),
        base_fee_per_gas=parse_uint(
            fields["base_fee_per_gas"], what="base_fee_per_gas", maximum=_UINT256_MAX
        ),
        block_hash=parse_hex(fields["block_hash"], 32, what="block_hash"),
        transactions_root=parse_hex(fields["transactions_root"], 32, what="transactions_root"),
        withdrawals_root=parse_hex(fields["withdrawals_root"], 32, what="withdrawals_root"),
        blob_gas_used=parse_uint(fields["blob_gas_used"], what="blob_gas_used") if deneb_layout else 0,
        excess_blob_gas=parse_uint(fields["excess_blob_gas"], what="excess_blob_gas") if deneb_layout else 0,
    )


def parse_light_client_header(obj: object, fork: Fork | None, preset: Preset) -> LightClientHeader:
    """A `LightClientHeader` from JSON (Altair/Bellatrix headers have only `beacon`)."""
    if (
        fork is not None
        and fork < Fork.CAPELLA
        or (fork is None and isinstance(obj, Mapping) and set(obj) == {"beacon"})
    ):
        fields = _fields(obj, ("beacon",), "light-client header")
        return LightClientHeader(beacon=parse_beacon_block_header(fields["beacon"]))
    fields = _fields(obj, ("beacon", "execution", "execution_branch"), "light-client header")
    branch = _branch(fields["execution_branch"], "execution_branch")
    if len(branch) != EXECUTION_BRANCH_DEPTH:
        raise MalformedObject(
            "execution_branch has the wrong length", length=len(branch), expected=EXECUTION_BRANCH_DEPTH
        )
    return LightClientHeader(
        beacon=parse_beacon_block_header(fields["beacon"]),
        execution=parse_execution_payload_header(fields["execution"], fork, preset),
        execution_branch=branch,
    )


def parse_sync_committee(obj: object, preset: Preset) -> SyncCommittee:
    """A `SyncCommittee` from JSON; it must have exactly the preset's number of keys."""
    fields = _fields(obj, ("pubkeys", "aggregate_pubkey"), "sync committee")
    keys = fields["pubkeys"]
    if not isinstance(keys, list) or len(keys) != preset.sync_committee_size:
        raise MalformedObject(
            "sync committee has the wrong number of keys",
            keys=len(keys) if isinstance(keys, list) else None,
            expected=preset.sync_committee_size,
        )
    return SyncCommittee(
        pubkeys=tuple(parse_hex(key, 48, what="pubkey") for key in keys),
        aggregate_pubkey=parse_hex(fields["aggregate_pubkey"], 48, what="aggregate_pubkey"),
    )


def parse_sync_aggregate(obj: object, preset: Preset) -> SyncAggregate:
    """A `SyncAggregate` from JSON; the bitvector must have exactly the committee's size."""
    fields = _fields(obj, ("sync_committee_bits", "sync_committee_signature"), "sync aggregate")
    size = preset.sync_committee_size
    bits = parse_hex(fields["sync_committee_bits"], (size + 7) // 8, what="sync_committee_bits")
    if size % 8 and bits[-1] >> (size % 8):
        raise MalformedObject("sync_committee_bits has bits past the committee size", size=size)
    return SyncAggregate(
        sync_committee_bits=bits,
        sync_committee_signature=parse_hex(
            fields["sync_committee_signature"], 96, what="sync_committee_signature"
        ),
    )


def parse_bootstrap(obj: object, preset: Preset, fork: Fork | None = None) -> LightClientBootstrap:
    """A `LightClientBootstrap` from the beacon API's JSON (wrapped or bare)."""
    version, data = unwrap_versioned(obj)
    fork = version if version is not None else fork
    fields = _fields(data, ("header", "current_sync_committee", "current_sync_committee_branch"), "bootstrap")
    return LightClientBootstrap(
        header=parse_light_client_header(fields["header"], fork, preset),
        current_sync_committee=parse_sync_committee(fields["current_sync_committee"], preset),
        current_sync_committee_branch=_branch(
            fields["current_sync_committee_branch"], "current_sync_committee_branch"
        ),
    )


def parse_update(obj: object, preset: Preset, fork: Fork | None = None) -> LightClientUpdate:
    """A `LightClientUpdate` from the beacon API's JSON (wrapped or bare)."""
    version, data = unwrap_versioned(obj)
    fork = version if version is not None else fork
    fields = _fields(
        data,
        (
            "attested_header",
            "next_sync_committee",
            "next_sync_committee_branch",
            "finalized_header",
            "finality_branch",
            "sync_aggregate",
            "signature_slot",
        ),
        "update",
    )
    return LightClientUpdate(
        attested_header=parse_light_client_header(fields["attested_header"], fork, preset),
        next_sync_committee=parse_sync_committee(fields["next_sync_committee"], preset),
        next_sync_committee_branch=_branch(
            fields["next_sync_committee_branch"], "next_sync_committee_branch"
        ),
        finalized_header=parse_light_client_header(fields["finalized_header"], fork, preset),
        finality_branch=_branch(fields["finality_branch"], "finality_branch"),
        sync_aggregate=parse_sync_aggregate(fields["sync_aggregate"], preset),
        signature_slot=parse_uint(fields["signature_slot"], what="signature_slot"),
    )


def parse_updates(obj: object, preset: Preset) -> list[LightClientUpdate]:
    """The list the beacon API's `light_client/updates` returns (each item versioned)."""
    if not isinstance(obj, list):
        raise MalformedObject("updates is not a list")
    return [parse_update(item, preset) for item in obj]


def parse_finality_update(obj: object, preset: Preset, fork: Fork | None = None) -> LightClientFinalityUpdate:
    """A `LightClientFinalityUpdate` from the beacon API's JSON (wrapped or bare)."""
    version, data = unwrap_versioned(obj)
    fork = version if version is not None else fork
    fields = _fields(
        data,
        (
            "attested_header",
            "finalized_header",
            "finality_branch",
            "sync_aggregate",
            "signature_slot",
        ),
        "finality update",
    )
    return LightClientFinalityUpdate(
        attested_header=parse_light_client_header(fields["attested_header"], fork, preset),
        finalized_header=parse_light_client_header(fields["finalized_header"], fork, preset),
        finality_branch=_branch(fields["finality_branch"], "finality_branch"),
        sync_aggregate=parse_sync_aggregate(fields["sync_aggregate"], preset),
        signature_slot=parse_uint(fields["signature_slot"], what="signature_slot"),
    )


def parse_optimistic_update(
    obj: object, preset: Preset, fork: Fork | None = None
) -> LightClientOptimisticUpdate:
    """A `LightClientOptimisticUpdate` from the beacon API's JSON (wrapped or bare)."""
    version, data = unwrap_versioned(obj)
    fork = version if version is not None else fork
    fields = _fields(data, ("attested_header", "sync_aggregate", "signature_slot"), "optimistic update")
    return LightClientOptimisticUpdate(
        attested_header=parse_light_client_header(fields["attested_header"], fork, preset),
        sync_aggregate=parse_sync_aggregate(fields["sync_aggregate"], preset),
        signature_slot=parse_uint(fields["signature_slot"], what="signature_slot"),
    )


# --- SSZ --------------------------------------------------------------------------------------------------------


def _execution_payload_header_type(fork: Fork, preset: Preset) -> ssz.Container:
    bytes32 = ssz.ByteVector(32)
    uint64 = ssz.Uint(8)
    fields: list[tuple[str, ssz.SszType]] = [
        ("parent_hash", bytes32),
        ("fee_recipient", ssz.ByteVector(20)),
        ("state_root", bytes32),
        ("receipts_root", bytes32),
        ("logs_bloom", ssz.ByteVector(256)),
        ("prev_randao", bytes32),
        ("block_number", uint64),
        ("gas_limit", uint64),
        ("gas_used", uint64),
        ("timestamp", uint64),
        ("extra_data", ssz.ByteList(preset.max_extra_data_bytes)),
        ("base_fee_per_gas", ssz.Uint(32)),
        ("block_hash", bytes32),
        ("transactions_root", bytes32),
        ("withdrawals_root", bytes32),
    ]
    if fork >= Fork.DENEB:
        fields += [("blob_gas_used", uint64), ("excess_blob_gas", uint64)]
    return ssz.Container(fields)


def _light_client_header_type(fork: Fork, preset: Preset) -> ssz.Container:
    bytes32 = ssz.ByteVector(32)
    beacon = ssz.Container(
        [
            ("slot", ssz.Uint(8)),
            ("proposer_index", ssz.Uint(8)),
            ("parent_root", bytes32),
            ("state_root", bytes32),
            ("body_root", bytes32),
        ]
    )
    if fork < Fork.CAPELLA:
        return ssz.Container([("beacon", beacon)])
    return ssz.Container(
        [
            ("beacon", beacon),
            ("execution", _execution_payload_header_type(fork, preset)),
            ("execution_branch", ssz.Vector(bytes32, EXECUTION_BRANCH_DEPTH)),
        ]
    )


def _sync_committee_type(preset: Preset) -> ssz.Container:
    return ssz.Container(
        [
            ("pubkeys", ssz.Vector(ssz.ByteVector(48), preset.sync_committee_size)),
            ("aggregate_pubkey", ssz.ByteVector(48)),
        ]
    )


def _sync_aggregate_type(preset: Preset) -> ssz.Container:
    return ssz.Container(
        [
            ("sync_committee_bits", ssz.Bitvector(preset.sync_committee_size)),
            ("sync_committee_signature", ssz.ByteVector(96)),
        ]
    )


def _branch_type(gindex: int) -> ssz.Vector:
    return ssz.Vector(ssz.ByteVector(32), floorlog2(gindex))


def _header_from_fields(fields: Mapping[str, Any]) -> LightClientHeader:
    beacon = BeaconBlockHeader(**fields["beacon"])
    if "execution" not in fields:
        return LightClientHeader(beacon=beacon)
    return LightClientHeader(
        beacon=beacon,
        execution=ExecutionPayloadHeader(**fields["execution"]),
        execution_branch=fields["execution_branch"],
    )


def _aggregate_from_fields(fields: Mapping[str, Any]) -> SyncAggregate:
    return SyncAggregate(**fields)


def decode_bootstrap_ssz(data: bytes, fork: Fork, preset: Preset) -> LightClientBootstrap:
    """A `LightClientBootstrap` of `fork` from its SSZ serialization."""
    container = ssz.Container(
        [
            ("header", _light_client_header_type(fork, preset)),
            ("current_sync_committee", _sync_committee_type(preset)),
            ("current_sync_committee_branch", _branch_type(current_sync_committee_gindex_at_fork(fork))),
        ]
    )
    fields = container.decode(data)
    return LightClientBootstrap(
        header=_header_from_fields(fields["header"]),
        current_sync_committee=SyncCommittee(**fields["current_sync_committee"]),
        current_sync_committee_branch=fields["current_sync_committee_branch"],
    )


def decode_update_ssz(data: bytes, fork: Fork, preset: Preset) -> LightClientUpdate:
    """A `LightClientUpdate` of `fork` from its SSZ serialization."""
    header = _light_client_header_type(fork, preset)
    container = ssz.Container(
        [
            ("attested_header", header),
            ("next_sync_committee", _sync_committee_type(preset)),
            ("next_sync_committee_branch", _branch_type(next_sync_committee_gindex_at_fork(fork))),
            ("finalized_header", header),
            ("finality_branch", _branch_type(finalized_root_gindex_at_fork(fork))),
            ("sync_aggregate", _sync_aggregate_type(preset)),
            ("signature_slot", ssz.Uint(8)),
        ]
    )
    fields = container.decode(data)
    return LightClientUpdate(
        attested_header=_header_from_fields(fields["attested_header"]),
        next_sync_committee=SyncCommittee(**fields["next_sync_committee"]),
        next_sync_committee_branch=fields["next_sync_committee_branch"],
        finalized_header=_header_from_fields(fields["finalized_header"]),
        finality_branch=fields["finality_branch"],
        sync_aggregate=_aggregate_from_fields(fields["sync_aggregate"]),
        signature_slot=fields["signature_slot"],
    )


def decode_finality_update_ssz(data: bytes, fork: Fork, preset: Preset) -> LightClientFinalityUpdate:
    """A `LightClientFinalityUpdate` of `fork` from its SSZ serialization."""
    header = _light_client_header_type(fork, preset)
    container = ssz.Container(
        [
            ("attested_header", header),
            ("finalized_header", header),
            ("finality_branch", _branch_type(finalized_root_gindex_at_fork(fork))),
            ("sync_aggregate", _sync_aggregate_type(preset)),
            ("signature_slot", ssz.Uint(8)),
        ]
    )
    fields = container.decode(data)
    return LightClientFinalityUpdate(
        attested_header=_header_from_fields(fields["attested_header"]),
        finalized_header=_header_from_fields(fields["finalized_header"]),
        finality_branch=fields["finality_branch"],
        sync_aggregate=_aggregate_from_fields(fields["sync_aggregate"]),
        signature_slot=fields["signature_slot"],
    )


def decode_optimistic_update_ssz(data: bytes, fork: Fork, preset: Preset) -> LightClientOptimisticUpdate:
    """A `LightClientOptimisticUpdate` of `fork` from its SSZ serialization."""
    container = ssz.Container(
        [
            ("attested_header", _light_client_header_type(fork, preset)),
            ("sync_aggregate", _sync_aggregate_type(preset)),
            ("signature_slot", ssz.Uint(8)),
        ]
    )
    fields = container.decode(data)
    return LightClientOptimisticUpdate(
        attested_header=_header_from_fields(fields["attested_header"]),
        sync_aggregate=_aggregate_from_fields(fields["sync_aggregate"]),
        signature_slot=fields["signature_slot"],
    )


# --- JSON encoding ------------------------------------------------------------------------------------------------


def to_beacon_json(obj: object, fork: Fork) -> Any:
    """The beacon-API JSON of a light-client object (the inverse of the `parse_*` functions).

    Integers become decimal strings and bytes `0x` hex; an execution payload header gets the
    field set of `fork`. (An update with no next committee must carry the all-zero one.)
    """
    if isinstance(obj, bool):
        raise TypeError("booleans have no beacon-API encoding")
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, bytes):
        return "0x" + obj.hex()
    if isinstance(obj, (tuple, list)):
        return [to_beacon_json(item, fork) for item in obj]
    if isinstance(obj, ExecutionPayloadHeader):
        names = _DENEB_EXECUTION_FIELDS if fork >= Fork.DENEB else _CAPELLA_EXECUTION_FIELDS
        return {name: to_beacon_json(getattr(obj, name), fork) for name in names}
    if isinstance(obj, LightClientHeader) and fork < Fork.CAPELLA:
        return {"beacon": to_beacon_json(obj.beacon, fork)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            field.name: to_beacon_json(getattr(obj, field.name), fork) for field in dataclasses.fields(obj)
        }
    raise TypeError(f"no beacon-API encoding for {type(obj).__name__}")


def to_versioned_json(obj: object, fork: Fork) -> dict[str, Any]:
    """`{"version": fork, "data": ...}`, the envelope the beacon API answers with."""
    return {"version": fork.name.lower(), "data": to_beacon_json(obj, fork)}
