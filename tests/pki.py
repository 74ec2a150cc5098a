"""A throw-away PKI for tests: a CA per test and certificates it issues, as role `tls` configs.

Built on `relay.tools.certs` (what the devnet uses), with every private key 0600.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from relay.config import TlsConfig
from relay.rpc.tls import ClientTls
from relay.tools.certs import CertificateAuthority


class Pki:
    """A CA in `root` that issues role certificates (`issue`) and client files (`client`)."""

    def __init__(self, root: Path, name: str = "test CA") -> None:
        self.root = root
        self.authority = CertificateAuthority.create(root / "ca", name)

    def issue(self, name: str, **options: Any) -> TlsConfig:
        """A certificate for `name` (127.0.0.1, localhost) as a role's `tls` section."""
        issued = self.authority.issue(name, self.root / name, **options)
        return TlsConfig(ca=str(issued.ca), cert=str(issued.cert), key=str(issued.key))

    def expired(self, name: str) -> TlsConfig:
        """A certificate that expired yesterday."""
        now = datetime.datetime.now(datetime.UTC)
        return self.issue(
            name, not_before=now - datetime.timedelta(days=2), not_after=now - datetime.timedelta(days=1)
        )

    def client(self, name: str | None = None) -> ClientTls:
        """Client files: the CA only (name None), or the CA and a certificate for `name`."""
        if name is None:
            return ClientTls(str(self.authority.ca_path))
        tls = self.issue(name)
        return ClientTls(tls.ca, tls.cert, tls.key)
