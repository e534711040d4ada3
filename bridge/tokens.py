"""OAuth tokens at rest: Fernet encryption with keys from `BRIDGE_TOKEN_KEYS` (newest first).

Every token an install delivers (access, refresh, application) is stored as a Fernet token made
with the first key; any listed key opens one (MultiFernet), so a key is rotated by putting the new
one first, re-encrypting (`bridge reencrypt-tokens`, which the worker also runs at start-up; any
write re-encrypts its row too) and then dropping the old one. A stored value that is not a Fernet
token is a plaintext token written by a version before encryption: it is read as it is and
re-encrypted the same way. Keys are never logged or shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from bridge.config import ConfigError, PortalConfig
from bridge.models import PendingInstall, PortalCredentials

KEYS_VARIABLE = "BRIDGE_TOKEN_KEYS"
GENERATE = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
# Every Fernet token starts with version 0x80 and a 64-bit timestamp whose high bytes are zero
# until 2106: base64 "gAAAAA". Bitrix24's tokens are shorter, lower-case and never look like it.
_FERNET_START = "gAAAAA"
_TOKEN_FIELDS = ("access_token", "refresh_token", "application_token")
_Row = TypeVar("_Row", PortalCredentials, PendingInstall)


class TokenKeysMissing(ConfigError):
    def __init__(self) -> None:
        super().__init__(
            f"{KEYS_VARIABLE} is not set: app mode stores OAuth tokens encrypted and needs a key "
            f"(generate one with: {GENERATE})"
        )


class TokenUnreadable(Exception):
    """A stored token that none of the configured keys opens (a key was dropped too early)."""

    def __init__(self) -> None:
        super().__init__(
            f"a stored token was encrypted with a key that is not in {KEYS_VARIABLE}: "
            "put the old key back (after the new one) or reinstall the app"
        )


class TokenCipher:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise TokenKeysMissing()
        fernets = []
        for position, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key.encode()))
            except ValueError:
                raise ConfigError(
                    f"{KEYS_VARIABLE}: key {position} is not a Fernet key (32 url-safe "
                    f"base64-encoded bytes; generate one with: {GENERATE})"
                ) from None
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "TokenCipher(<keys hidden>)"

    def seal(self, token: str | None) -> str | None:
        return None if token is None else self._all.encrypt(token.encode()).decode()

    def open(self, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(_FERNET_START):
            return stored  # None, or plaintext from before encryption
        try:
            return self._all.decrypt(stored.encode()).decode()
        except InvalidToken:
            raise TokenUnreadable() from None

    def is_current(self, stored: str | None) -> bool:
        """Sealed with the newest key (or nothing stored)."""
        if stored is None:
            return True
        try:
            self._newest.decrypt(stored.encode())
        except InvalidToken:
            return False
        return True


def token_cipher(keys: Sequence[str], portals: Sequence[PortalConfig]) -> TokenCipher | None:
    """The cipher for these portals: required as soon as one runs in app mode."""
    if keys or any(portal.app_mode for portal in portals):
        return TokenCipher(keys)
    return None


def require_cipher(cipher: TokenCipher | None) -> TokenCipher:
    if cipher is None:
        raise TokenKeysMissing()
    return cipher


@dataclass(frozen=True)
class Resealed:
    rows: int  # rows whose tokens are now sealed with the newest key
    unreadable: int  # rows no configured key opens, left as they are


def reencrypt(engine: Engine, cipher: TokenCipher) -> Resealed:
    """Seal every stored token not sealed with the newest key (plaintext from an earlier version,
    or an older key). Safe to run while the bridge runs: each row is rewritten under its row
    lock with the same token values."""
    with Session(engine) as session:
        portals = list(session.exec(select(PortalCredentials.portal_key)).all())
        pending = list(session.exec(select(PendingInstall.id)).all())
    outcomes = [
        *(
            _reseal(
                engine, cipher, select(PortalCredentials).where(PortalCredentials.portal_key == key)
            )
            for key in portals
        ),
        *(
            _reseal(engine, cipher, select(PendingInstall).where(PendingInstall.id == pending_id))
            for pending_id in pending
        ),
    ]
    return Resealed(rows=outcomes.count(True), unreadable=outcomes.count(None))


def _reseal(engine: Engine, cipher: TokenCipher, query: SelectOfScalar[_Row]) -> bool | None:
    """True: resealed; False: nothing to do; None: no configured key opens it."""
    with Session(engine) as session:
        row = session.exec(query.with_for_update()).first()
        stale = [
            name
            for name in _TOKEN_FIELDS
            if row is not None and not cipher.is_current(getattr(row, name))
        ]
        if row is None or not stale:
            return False
        try:
            for name in stale:
                setattr(row, name, cipher.seal(cipher.open(getattr(row, name))))
        except TokenUnreadable:
            return None
        session.add(row)
        session.commit()
        return True
