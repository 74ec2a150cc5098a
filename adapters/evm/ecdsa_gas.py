"""Gas per delivered message under an ECDSA committee, measured on a real anvil chain.

The ECDSA counterpart of `adapters.evm.gas`: `EcdsaSigningCommittee` is an ECDSA committee with
its members' throw-away secret keys (for tests and benches), and
`measure_ecdsa_delivery_gas(rpc_url)` enrolls committees of 1, 5, 19 and 64 signers (thresholds 1,
3, 13 and 43, Hyperlane's MessageIdMultisigIsm settings; those below two thirds are enrolled
after `setLowThresholdAllowed`) and delivers batches of 1, 10 and 50 messages with the same
`DeliveryBench` as the BLS rows (warm-up message first, 32-byte bodies, compressed branches).
`python -m adapters.evm.ecdsa_gas` runs it on its own anvil and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey
from web3 import Web3

from adapters.evm.anvil import AnvilProcess
from adapters.evm.deploy import ecdsa_committee_struct
from adapters.evm.gas import (
    BENCH_CHAIN_ID,
    DESTINATION_DOMAIN,
    DeliveryBench,
    GasRow,
    deploy_contract,
    format_gas_table,
)
from relay.verify.ecdsa import EcdsaCertificate, EcdsaCommittee, sign_digest
from relay.verify.hashing import keccak256

# (committee size, threshold): Hyperlane's 1/1, 3/5, 13/19 and 43/64.
ECDSA_COMMITTEES = ((1, 1), (5, 3), (19, 13), (64, 43))


def address_of(secret_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a secp256k1 secret key."""
    return keccak256(PrivateKey(secret_key).public_key.format(compressed=False)[1:])[12:]


@dataclass(frozen=True)
class EcdsaSigningCommittee:
    """An ECDSA committee together with its members' secret keys: throw-away keys for tests and
    benches. Offers what `DeliveryBench` needs (`enrollment_calls`, `quorum_signers`, `certify`)."""

    committee: EcdsaCommittee
    secret_keys: tuple[bytes, ...]

    @classmethod
    def generate(
        cls,
        size: int,
        epoch: int = 1,
        seed: bytes = b"relay dev ecdsa committee",
        threshold: int | None = None,
        weights: Sequence[int] | None = None,
    ) -> EcdsaSigningCommittee:
        """`size` signers (weight 1 unless `weights`), keys derived from `seed`; a `threshold`
        below two thirds of the weight is accepted (the Gateway needs `setLowThresholdAllowed`)."""
        keys = tuple(keccak256(seed + index.to_bytes(4, "big")) for index in range(size))
        committee = EcdsaCommittee.create(
            epoch, [address_of(key) for key in keys], weights, threshold, allow_low_threshold=True
        )
        return cls(committee, keys)

    @property
    def low_threshold(self) -> bool:
        """Whether the threshold is below two thirds of the total weight."""
        return 3 * self.committee.threshold < 2 * self.committee.total_weight

    def enrollment_calls(self, functions: Any, origin: int, source_word: bytes) -> list[Any]:
        """The Gateway calls that enroll this committee for `origin` (`setLowThresholdAllowed`
        first when its threshold needs it)."""
        calls = [functions.setLowThresholdAllowed(origin, True)] if self.low_threshold else []
        return [
            *calls,
            functions.enrollOriginEcdsa(origin, source_word, ecdsa_committee_struct(self.committee)),
        ]

    def quorum_signers(self) -> list[int]:
        """The lowest signer indices whose weight reaches the threshold."""
        signers, weight = [], 0
        for index, member_weight in enumerate(self.committee.weights):
            if weight >= self.committee.threshold:
                break
            signers.append(index)
            weight += member_weight
        return signers

    def sign(self, index: int, digest: bytes) -> bytes:
        """Member `index`'s 65-byte EIP-191 signature of `digest`."""
        return sign_digest(self.secret_keys[index], digest)

    def certificate(self, digest: bytes, signers: Iterable[int]) -> EcdsaCertificate:
        """The certificate of `signers` over `digest`."""
        pairs = [(index, self.sign(index, digest)) for index in signers]
        return self.committee.aggregate(digest, pairs, verify_each=False)

    def certify(self, digest: bytes, signers: Iterable[int]) -> tuple[bytes, bytes]:
        """(signer bitfield, concatenated signatures) of `signers` over `digest`, as the
        Gateway's `signers` and `signature` arguments."""
        certificate = self.certificate(digest, signers)
        return certificate.signers, certificate.signature


def measure_ecdsa_delivery_gas(
    rpc_url: str,
    committees: Sequence[tuple[int, int]] = ECDSA_COMMITTEES,
    batch_sizes: Sequence[int] = (1, 10, 50),
) -> list[GasRow]:
    """Deploy a destination Gateway on the chain at `rpc_url`; for each (size, threshold), enroll
    an ECDSA committee on its own origin and measure one delivery per batch size."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    w3.eth.default_account = w3.eth.accounts[0]
    destination = deploy_contract(w3, "Gateway", DESTINATION_DOMAIN)
    counter = deploy_contract(w3, "Counter", destination.address)
    rows = []
    for size, threshold in committees:
        signing = EcdsaSigningCommittee.generate(size, threshold=threshold)
        bench = DeliveryBench(w3, destination, counter, signing, compress_branches=True)
        bench.deliver(1)  # warm-up: first writes of the counters and of the bitmap word
        for batch_size in batch_sizes:
            total_gas = bench.deliver(batch_size)
            rows.append(GasRow(size, batch_size, total_gas, total_gas // batch_size))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.evm.ecdsa_gas", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rpc-url", help="use this chain instead of starting an anvil")
    arguments = parser.parse_args(argv)
    if arguments.rpc_url:
        print(format_gas_table(measure_ecdsa_delivery_gas(arguments.rpc_url)))
    else:
        with AnvilProcess(chain_id=BENCH_CHAIN_ID) as anvil:
            print(format_gas_table(measure_ecdsa_delivery_gas(anvil.rpc_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
