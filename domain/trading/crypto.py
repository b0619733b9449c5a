"""Secrets at rest: broker passwords are Fernet tokens under a key derived from SECRET_KEY.

The key is HKDF-SHA256 of the secret with a purpose label, so the same
SECRET_KEY used elsewhere (error salts, webhooks) never is the cipher key.

Rotation: the box takes the current secret and any old ones. It seals with the
current one and opens with any; :meth:`SecretBox.reseal` turns a token sealed
under an old secret into one under the current secret (done for every stored
credential at start-up: ``domain.db.trading.reseal_credentials``).
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"hybrid-trader/broker-credentials/v1"


def _fernet(secret: bytes) -> Fernet:
    if not secret:
        raise ValueError("an empty secret cannot protect credentials")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    def __init__(self, secret: bytes, *old: bytes) -> None:
        """``secret`` seals and opens; each of ``old`` (previous SECRET_KEY values) only opens."""
        self._current = _fernet(secret)
        self._fernet = MultiFernet([self._current, *(_fernet(s) for s in old if s and s != secret)])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise ValueError("credential token does not decrypt with this SECRET_KEY") from exc

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is sealed under the current secret (no re-sealing needed)."""
        try:
            self._current.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def reseal(self, token: str) -> str:
        """The same plaintext sealed under the current secret (ValueError when no known secret opens it)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise ValueError("credential token does not decrypt with any known SECRET_KEY") from exc

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"
