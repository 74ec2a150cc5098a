"""Transport security for every gRPC server and channel: TLS from files, reloaded when they change.

Servers: `server_credentials(tls, require_client_certificate=...)` builds
`grpc.dynamic_ssl_server_credentials` whose fetcher, which gRPC calls before every new handshake,
reads the three files again; when their contents changed and are usable (the key matches the
certificate, every PEM parses) the next connections use the new certificate and CA. Connections
already open keep what they negotiated. Unusable new files (e.g. half-written during a rotation)
are logged and the previous certificate stays in use.

Channels: `open_channel(address, tls)` is the one way the code base dials gRPC. With `tls` it
presents the role's certificate (when it has one) and checks the server's against the CA; before
a call, at most once a second, it compares the files with what it loaded, and when they changed it
opens a new channel with the new files (calls in progress finish on the old one, which is closed
at the next change or on `close()`). `tls=None` is plaintext, which the configs allow only with
`insecure_plaintext` (`relay.config.GrpcRoleConfig`).

Whenever our own certificate files are loaded, an expired certificate (or one not valid yet) is
logged as `certificate <path> expired at <time>`; peers refuse it in the handshake. A call that
fails because the TLS handshake failed logs one line naming the likely cause (rate-limited).

`is_tls_connection(context)` and `has_client_certificate(context)` tell a servicer what the caller's
connection is: the relayer's operator calls need both (`relay.rpc.relay_service`).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from relay.config import verify_private_file
from relay.errors import ConfigurationError

log = logging.getLogger(__name__)

RELOAD_CHECK_SECONDS = 1.0
"""A channel compares its files with what it loaded at most this often (before a call)."""
EXPIRY_WARNING = datetime.timedelta(days=7)
"""A certificate this close to its notAfter is logged as a warning whenever it is loaded."""
FAILURE_LOG_SECONDS = 30.0
"""One handshake-failure line per channel and cause at most this often."""


class TlsFiles(Protocol):
    """Where TLS material is: a CA bundle, and a certificate with its key (both, or neither for a
    client that only checks the server). `relay.config.TlsConfig` is one; `ClientTls` another."""

    @property
    def ca(self) -> str: ...

    @property
    def cert(self) -> str | None: ...

    @property
    def key(self) -> str | None: ...


@dataclass(frozen=True)
class ClientTls:
    """TLS files for a command-line client: the CA, and optionally a client certificate and key."""

    ca: str
    cert: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigurationError("a client certificate needs its key, and a key its certificate")


@dataclass(frozen=True)
class TlsMaterial:
    """The bytes of a validated set of TLS files (`key`/`cert` None for a client without one), and
    when the certificate expires."""

    ca: bytes
    cert: bytes | None
    key: bytes | None
    not_after: datetime.datetime | None = None

    def log_if_expired(self, path: str | None, now: datetime.datetime | None = None) -> bool:
        """Log `certificate <path> expired at <time>` if the certificate has expired; whether it has."""
        moment = now or _now()
        if self.not_after is None or self.not_after > moment:
            return False
        log.error(
            f"certificate {path} expired at {self.not_after.isoformat()}",
            extra={"file": path, "not_after": self.not_after.isoformat()},
        )
        return True


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigurationError(f"TLS {what} file unreadable", file=path, cause=error.strerror) from error


def read_raw(files: TlsFiles) -> tuple[bytes, bytes | None, bytes | None]:
    """The current bytes of the CA, certificate and key files (unvalidated; OSError if missing)."""
    cert = Path(files.cert).read_bytes() if files.cert else None
    key = Path(files.key).read_bytes() if files.key else None
    return Path(files.ca).read_bytes(), cert, key


def _certificates(data: bytes, path: str, what: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise ConfigurationError(f"TLS {what} file holds no PEM certificate", file=path) from error
    return certificates


def _public_key_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def report_validity(
    path: str, certificates: Sequence[x509.Certificate], now: datetime.datetime | None = None
) -> None:
    """Log each certificate in `path` that is expired, not yet valid, or close to its expiry."""
    moment = now or datetime.datetime.now(datetime.UTC)
    for certificate in certificates:
        end, start = certificate.not_valid_after_utc, certificate.not_valid_before_utc
        subject = certificate.subject.rfc4514_string()
        fields = {"file": path, "subject": subject, "not_after": end.isoformat()}
        if end <= moment:
            log.error(f"certificate {path} expired at {end.isoformat()}", extra=fields)
        elif start > moment:
            log.error(f"certificate {path} is not valid before {start.isoformat()}", extra=fields)
        elif end - moment <= EXPIRY_WARNING:
            log.warning(f"certificate {path} expires at {end.isoformat()}", extra=fields)


def load_tls_material(files: TlsFiles) -> TlsMaterial:
    """Read and check the files: PEM certificates, the key private (0600) and matching the certificate.

    Raises `ConfigurationError` naming the file; logs (does not refuse) certificates outside their
    validity period, so that a certificate renewed on disk is picked up by the reload.
    """
    ca = _read(files.ca, "CA")
    report_validity(files.ca, _certificates(ca, files.ca, "CA"))
    if not files.cert or not files.key:
        return TlsMaterial(ca, None, None)
    verify_private_file(files.key)
    cert, key = _read(files.cert, "certificate"), _read(files.key, "key")
    chain = _certificates(cert, files.cert, "certificate")
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(
            "TLS key file holds no unencrypted PEM private key", file=files.key
        ) from error
    if _public_key_der(private.public_key()) != _public_key_der(chain[0].public_key()):
        raise ConfigurationError(
            "TLS key does not match the certificate", certificate=files.cert, key=files.key
        )
    report_validity(files.cert, chain)
    return TlsMaterial(ca, cert, key, chain[0].not_valid_after_utc)


# --- servers ------------------------------------------------------------------------------------


class ReloadingServerCertificates:
    """The certificate-configuration fetcher behind a server's dynamic credentials (module docstring)."""

    def __init__(self, files: TlsFiles) -> None:
        if not files.cert or not files.key:
            raise ConfigurationError("a gRPC server needs a TLS certificate and key", ca=files.ca)
        self.files = files
        self._lock = threading.Lock()
        self._raw = read_raw(files)
        self.material = load_tls_material(files)
        self._refused: tuple[bytes, bytes | None, bytes | None] | None = None
        self._expiry_logged = self.material.not_after is not None and self.material.not_after <= _now()
        self.reloads = 0

    def configuration(self) -> Any:
        """The current material as a `grpc.ServerCertificateConfiguration`."""
        material = self.material
        return grpc.ssl_server_certificate_configuration(
            [(material.key, material.cert)], root_certificates=material.ca
        )

    def fetch(self) -> Any:
        """gRPC's fetcher: a new configuration if the files changed and are usable, else None."""
        try:
            with self._lock:
                return self._fetch()
        except Exception:  # a fetcher that raises would fail the handshake; keep serving instead
            log.exception("TLS files could not be checked; the previous certificate stays in use")
            return None

    def _fetch(self) -> Any:
        try:
            raw = read_raw(self.files)
        except OSError as error:
            log.error(
                "TLS files unreadable; the previous certificate stays in use",
                extra={"cert": self.files.cert, "cause": error.strerror},
            )
            return None
        if raw == self._raw or raw == self._refused:
            # Unchanged files: say once when the certificate in use expires while serving.
            if not self._expiry_logged:
                self._expiry_logged = self.material.log_if_expired(self.files.cert)
            return None
        try:
            material = load_tls_material(self.files)
        except ConfigurationError as error:
            self._refused = raw
            log.error(
                f"TLS files changed but are not usable; the previous certificate stays in use: {error}",
                extra={"cert": self.files.cert, "key": self.files.key, "ca": self.files.ca},
            )
            return None
        self._raw, self.material, self._refused = raw, material, None
        self._expiry_logged = material.not_after is not None and material.not_after <= _now()
        self.reloads += 1
        log.info(
            "TLS files reloaded: new connections use the new certificate",
            extra={"cert": self.files.cert, "ca": self.files.ca},
        )
        return self.configuration()


def server_credentials(files: TlsFiles, *, require_client_certificate: bool) -> grpc.ServerCredentials:
    """Server credentials from `files`, reloaded when they change (see the module docstring).

    With `require_client_certificate`, a client must present a certificate signed by the CA
    (mutual TLS); without it, no client certificate is requested (server TLS only).
    """
    certificates = ReloadingServerCertificates(files)
    return grpc.dynamic_ssl_server_credentials(
        certificates.configuration(),
        certificates.fetch,
        require_client_authentication=require_client_certificate,
    )


def require_client_certificate(tls: TlsFiles | None, call: str) -> None:
    """`ConfigurationError` unless `tls` has a client certificate: `call` carries an operator token,
    which is never sent in plaintext (a server would refuse it there, but only after it crossed
    the network)."""
    if tls is None or tls.cert is None:
        raise ConfigurationError(
            f"{call} carries an operator token: it needs mutual TLS (a client certificate and its "
            "key: --ca, --cert and --key); the token is never sent in plaintext"
        )


def is_tls_connection(context: grpc.ServicerContext) -> bool:
    """Whether the caller's connection is TLS (not plaintext)."""
    return bool(context.auth_context().get("transport_security_type") == [b"ssl"])


def has_client_certificate(context: grpc.ServicerContext) -> bool:
    """Whether the caller presented a client certificate that the server verified (mutual TLS).

    Only listeners with `require_client_certificate` ask for one, and they refuse any that the CA
    did not sign, so a certificate here was verified.
    """
    return is_tls_connection(context) and bool(context.auth_context().get("x509_pem_cert"))


# --- channels -----------------------------------------------------------------------------------


def describe_handshake_failure(details: str, files: TlsFiles | None) -> str | None:
    """The likely cause of a failed connection, from its status details (None: not a TLS failure)."""
    text = details or ""
    if files is None:
        if "failed to connect" in text and ("Socket closed" in text or "Connection reset" in text):
            return "the server closed the connection: it most likely requires TLS (this client is plaintext)"
        return None
    if "certificate has expired" in text:
        return "the server's certificate has expired"
    if "WRONG_VERSION_NUMBER" in text:
        return "the server does not speak TLS (is it running with insecure_plaintext?)"
    if "not in peer certificate" in text or "Peer name" in text:
        return "the server's certificate does not name the address dialled (subject alternative names)"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"the server's certificate is not signed by our CA ({files.ca})"
    if "failed to connect" in text and ("Socket closed" in text or "Connection reset" in text):
        if files.cert:
            return (
                f"the server closed the connection during the handshake: it most likely refused our client "
                f"certificate ({files.cert}): expired, issued by another CA, or not valid for clientAuth"
            )
        return "the server closed the connection during the handshake: it most likely requires a client certificate"
    return None


class ReloadingChannel(grpc.Channel):
    """A channel that opens a new underlying channel when its TLS files change (module docstring).

    Stubs built on it keep working across reloads: each call is made on the current channel.
    """

    def __init__(
        self,
        address: str,
        files: TlsFiles | None,
        options: Sequence[tuple[str, Any]] = (),
        *,
        server_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        check_interval: float = RELOAD_CHECK_SECONDS,
    ) -> None:
        self.address = address
        self.files = files
        self._options = list(options)
        if server_name:
            self._options.append(("grpc.ssl_target_name_override", server_name))
        self._clock = clock
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._raw = read_raw(files) if files is not None else None
        self._refused: Any = None
        self._material = load_tls_material(files) if files is not None else None
        self._expiry_logged = self._is_expired()
        self._channel = self._build(self._material)
        self._retired: grpc.Channel | None = None
        self.generation = 0
        self._checked_at = clock()
        self._failures_logged: dict[str, float] = {}
        self._subscriptions: dict[Any, grpc.Channel] = {}

    def _build(self, material: TlsMaterial | None) -> grpc.Channel:
        if material is None:
            return grpc.insecure_channel(self.address, options=self._options)
        credentials = grpc.ssl_channel_credentials(material.ca, material.key, material.cert)
        return grpc.secure_channel(self.address, credentials, options=self._options)

    def current(self) -> tuple[int, grpc.Channel]:
        """(generation, channel) to call on now, after reloading the files if they changed."""
        with self._lock:
            now = self._clock()
            if self.files is not None and now - self._checked_at >= self._check_interval:
                self._checked_at = now
                self._reload_if_changed(self.files)
            return self.generation, self._channel

    def _reload_if_changed(self, files: TlsFiles) -> None:
        try:
            raw = read_raw(files)
        except OSError:
            return  # mid-rotation or gone: keep the current channel; a later check retries
        if raw == self._raw or raw == self._refused:
            # Unchanged files: say once when our certificate expires while in use.
            if not self._expiry_logged and self._material is not None:
                self._expiry_logged = self._material.log_if_expired(files.cert)
            return
        try:
            material = load_tls_material(files)
        except ConfigurationError as error:
            self._refused = raw
            log.error(
                f"TLS files changed but are not usable; the previous certificate stays in use: {error}",
                extra={"peer": self.address, "cert": files.cert, "ca": files.ca},
            )
            return
        if self._retired is not None:
            self._retired.close()
        self._retired, self._channel = self._channel, self._build(material)
        self._raw, self._refused, self._material = raw, None, material
        self._expiry_logged = self._is_expired()
        self.generation += 1
        log.info(
            "TLS files reloaded: new connections use the new certificate",
            extra={"peer": self.address, "cert": files.cert, "ca": files.ca},
        )

    def _is_expired(self) -> bool:
        material = self._material
        return material is not None and material.not_after is not None and material.not_after <= _now()

    def report_failure(self, error: grpc.RpcError) -> None:
        """Log the likely cause of a call that failed in the TLS handshake (rate-limited)."""
        code = error.code() if hasattr(error, "code") else None
        if code != grpc.StatusCode.UNAVAILABLE:
            return
        details = error.details() if hasattr(error, "details") else str(error)
        cause = describe_handshake_failure(details or "", self.files)
        if cause is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._failures_logged.get(cause, -FAILURE_LOG_SECONDS) < FAILURE_LOG_SECONDS:
                return
            self._failures_logged[cause] = now
        log.warning(
            f"gRPC connection to {self.address} failed: {cause}",
            extra={"peer": self.address, "cause": cause, "details": details},
        )

    # --- grpc.Channel ---------------------------------------------------------------------------

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _ReloadingCallable(self, "unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _ReloadingCallable(self, "unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _ReloadingCallable(self, "stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _ReloadingCallable(self, "stream_stream", method, args, kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        channel = self.current()[1]
        with self._lock:
            self._subscriptions[callback] = channel
        channel.subscribe(callback, try_to_connect=try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        with self._lock:
            channel = self._subscriptions.pop(callback, None)
        if channel is not None:
            channel.unsubscribe(callback)

    def close(self) -> None:
        with self._lock:
            if self._retired is not None:
                self._retired.close()
                self._retired = None
            self._channel.close()

    def __enter__(self) -> ReloadingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ReloadingCallable:
    """A multi-callable that always calls on its channel's current underlying channel."""

    def __init__(
        self, owner: ReloadingChannel, kind: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._bound: tuple[int, Any] = (-1, None)

    def _resolve(self) -> Any:
        generation, channel = self._owner.current()
        bound_generation, bound = self._bound
        if bound_generation != generation or bound is None:
            bound = getattr(channel, self._kind)(self._method, *self._args, **self._kwargs)
            self._bound = (generation, bound)
        return bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._resolve()(*args, **kwargs)
        except grpc.RpcError as error:
            self._owner.report_failure(error)
            raise

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._resolve().with_call(*args, **kwargs)
        except grpc.RpcError as error:
            self._owner.report_failure(error)
            raise

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve().future(*args, **kwargs)


def open_channel(
    address: str,
    tls: TlsFiles | None,
    *,
    options: Sequence[tuple[str, Any]] = (),
    server_name: str | None = None,
) -> ReloadingChannel:
    """The one way to dial gRPC: TLS with `tls` (reloaded when the files change), plaintext with None.

    `server_name` overrides the name the server's certificate must carry (for a role probing
    itself over loopback, whose certificate names its service, not 127.0.0.1). Raises
    `ConfigurationError` if the files are unreadable or unusable.
    """
    return ReloadingChannel(address, tls, options, server_name=server_name)


def first_subject_name(files: TlsFiles) -> str | None:
    """The first DNS name or IP address in the certificate's subject alternative names (None: none)."""
    if not files.cert:
        return None
    certificate = _certificates(_read(files.cert, "certificate"), files.cert, "certificate")[0]
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    dns = names.get_values_for_type(x509.DNSName)
    addresses = names.get_values_for_type(x509.IPAddress)
    if dns:
        return str(dns[0])
    return str(addresses[0]) if addresses else None
