"""The error hierarchy: one root, split by what the caller must do, values carried."""

from __future__ import annotations

from relay import errors


def test_split_by_caller_action() -> None:
    for cls in (
        errors.InvalidSignature,
        errors.QuorumNotReached,
        errors.MalformedEncoding,
        errors.InvalidMerkleProof,
    ):
        assert issubclass(cls, errors.InvalidProof) and issubclass(cls, ValueError)
    assert issubclass(errors.RpcUnavailable, errors.TransientError)
    assert issubclass(errors.RecipientReverted, errors.PermanentError)
    assert issubclass(errors.BackendUnavailable, errors.ConfigurationError)
    for cls in (errors.InvalidProof, errors.TransientError, errors.PermanentError, errors.ConfigurationError):
        assert issubclass(cls, errors.RelayError)
    assert not issubclass(errors.TransientError, errors.InvalidProof)


def test_errors_carry_the_values_that_failed() -> None:
    error = errors.QuorumNotReached("below threshold", signed=6, threshold=7, message=b"\x01\x02")
    assert error.signed == 6 and error.threshold == 7 and error.fields["message"] == b"\x01\x02"
    assert str(error) == "below threshold (signed=6, threshold=7, message=0x0102)"
    assert error.reason == "QuorumNotReached"
