"""Secrets at rest: broker passwords are Fernet tokens under a key derived from SECRET_KEY.

The key is HKDF-SHA256 of ``settings.secret()`` with a purpose label, so the
same SECRET_KEY used elsewhere (error salts, webhooks) never is the cipher key.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"hybrid-trader/broker-credentials/v1"


class SecretBox:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("an empty secret cannot protect credentials")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError("credential token does not decrypt with this SECRET_KEY") from exc

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"
