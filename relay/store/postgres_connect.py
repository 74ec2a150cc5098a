"""Reaching the PostgreSQL store: DSN checks, connections, and what a lost connection becomes.

A DSN (`postgresql://user@host:port/db?sslmode=...`, or libpq's `key=value` form) never carries
the password: config files and command lines are logged and shown, so an inline password is
refused (`ConfigurationError`); it comes from `store_password_file` (passed here as `password`)
or from libpq's own `PGPASSWORD` / `~/.pgpass`. Whatever is shown of a DSN goes through
`describe_dsn`, which drops a password should one ever get through.

A connection lost mid-transaction (a server restart, a network cut) raises psycopg's
`OperationalError`; the store turns it into `relay.errors.StoreUnavailable`, a transient error the
relayer's loops retry on their next pass.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from relay.errors import ConfigurationError, StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 10


SECRET_PARAMETERS = ("password", "sslpassword")
"""libpq parameters that are credentials (the password, the client key's passphrase): never in a DSN."""


def parse_dsn(dsn: str) -> dict[str, Any]:
    """libpq's parameters of `dsn`; `ConfigurationError` if it does not parse or holds a secret.

    libpq's own parse error is not repeated: it quotes the offending token, which may be the
    password (a bad percent-escape in it, or a scheme libpq does not recognise).
    """
    scheme = dsn.split("://", 1)[0] if "://" in dsn else ""
    if scheme and scheme != scheme.lower():
        raise ConfigurationError("write the store DSN's scheme in lower case: postgresql://...")
    try:
        parameters = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ConfigurationError(
            "the store DSN does not parse (check its percent-escapes and quoting)"
        ) from None
    for name in SECRET_PARAMETERS:
        if parameters.get(name):
            raise ConfigurationError(
                f"the store DSN holds a credential ({name}): remove it; the password comes from"
                " store_password_file (or PGPASSWORD), a client key's passphrase from libpq's own files",
                parameter=name,
            )
    return parameters


def describe_dsn(dsn: str) -> str:
    """`dsn` as it may be shown or logged: without any secret parameter."""
    try:
        parameters = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    if not any(name in parameters for name in SECRET_PARAMETERS):
        return dsn
    for name in SECRET_PARAMETERS:
        parameters.pop(name, None)
    return make_conninfo("", **parameters)


def connection_parameters(dsn: str, password: str | None) -> dict[str, Any]:
    """The keyword arguments of a connection to `dsn` (after `parse_dsn`'s checks)."""
    parse_dsn(dsn)
    parameters: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if password is not None:
        parameters["password"] = password
    return parameters


def connect(dsn: str, password: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    """One connection to `dsn` (not pooled: migrations, status, the notification listener)."""
    parameters = connection_parameters(dsn, password)
    try:
        return psycopg.connect(dsn, autocommit=autocommit, **parameters)
    except psycopg.OperationalError as error:
        if is_authentication_failure(error):
            raise ConfigurationError(
                "the store's database refused the credentials", store=describe_dsn(dsn)
            ) from None
        if is_misdirected(error):
            raise ConfigurationError(
                "the store's database refused the connection",
                store=describe_dsn(dsn),
                cause=_first_line(error),
            ) from None
        raise store_unavailable(dsn, error) from error


def is_authentication_failure(error: Exception) -> bool:
    """Whether a connection failed on its credentials (a configuration error, not an outage)."""
    text = str(error)
    return "password authentication failed" in text or "no password supplied" in text


def is_misdirected(error: Exception) -> bool:
    """Whether a connection reached the server but names what it does not have (a database or a
    role that does not exist, no pg_hba.conf rule): a configuration error, not an outage."""
    text = str(error)
    return "does not exist" in text or "no pg_hba.conf entry" in text


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def store_unavailable(dsn: str, error: Exception) -> StoreUnavailable:
    """The `StoreUnavailable` for a failed connection or interrupted transaction on `dsn`."""
    return StoreUnavailable(
        "the store's database is unavailable", store=describe_dsn(dsn), cause=_first_line(error)
    )
