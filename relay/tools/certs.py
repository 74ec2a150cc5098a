"""Throw-away certificate authorities and role certificates, for the devnet and the tests.

`CertificateAuthority.create(directory)` writes a self-signed CA (`ca.crt`, `ca.key`); `issue(name,
directory)` writes a certificate and key signed by it under the cert-manager names (`ca.crt`,
`tls.crt`, `tls.key`), valid for both serverAuth and clientAuth (one certificate per role process
serves its server and its client side), with subject alternative names 127.0.0.1 and localhost by
default. Every private key is written with mode 0600 (`relay.config` refuses a key file readable by
group or others). Production certificates come from the operator's PKI (e.g. cert-manager); nothing
here is meant for it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_VALIDITY = datetime.timedelta(days=30)


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only (created 0600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "relay devnet"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alternative_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass(frozen=True)
class IssuedCertificate:
    """Where an issued certificate's files are: the CA bundle, the certificate and its key."""

    ca: Path
    cert: Path
    key: Path

    def as_config(self) -> dict[str, str]:
        """The `tls:` section of a role config (`relay.config.TlsConfig`) for these files."""
        return {"ca": str(self.ca), "cert": str(self.cert), "key": str(self.key)}


@dataclass
class CertificateAuthority:
    """A self-signed CA that issues role certificates (see the module docstring)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    ca_path: Path

    @classmethod
    def create(
        cls, directory: Path, name: str = "relay devnet CA", validity: datetime.timedelta = DEFAULT_VALIDITY
    ) -> CertificateAuthority:
        """A new CA; writes `ca.crt` and `ca.key` (0600) into `directory`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        ca_path = directory / "ca.crt"
        ca_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        write_private_file(directory / "ca.key", _key_pem(key))
        return cls(key, certificate, ca_path)

    def issue(
        self,
        common_name: str,
        directory: Path,
        *,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> IssuedCertificate:
        """A certificate for serverAuth and clientAuth; writes `ca.crt`, `tls.crt`, `tls.key` (0600)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start = not_before or now - datetime.timedelta(minutes=5)
        end = not_after or now + DEFAULT_VALIDITY
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(_subject_alternative_names(hosts), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        issued = IssuedCertificate(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
        issued.ca.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        write_private_file(issued.key, _key_pem(key))
        return issued
