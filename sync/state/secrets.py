"""Encryption at rest for the secrets the store keeps (Entra client secrets).

``SecretBox`` wraps a Fernet key (AES-128-CBC + HMAC-SHA256, with a timestamp). The key comes
from the environment variable ``ENTRA_SYNC_SECRET_KEY`` (``EnvSettings.ENTRA_SYNC_SECRET_KEY``),
a urlsafe-base64 32-byte key as made by ``Fernet.generate_key()``.

When no key is configured the box does NOT derive one from anything (no hostname, no app id):
it generates a random key for this process only and logs a warning. Secrets stored in that mode
cannot be read after a restart (``decrypt`` then raises ``StateError`` with code
``secret_unreadable``, and the admin connects the tenant again). That is the local/demo mode;
production sets ``ENTRA_SYNC_SECRET_KEY``.

Neither the key nor a plaintext ever goes into a log line, an error message or ``repr``.
"""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from sync.errors import ConfigError, StateError

log = logging.getLogger(__name__)

ENV_KEY = "ENTRA_SYNC_SECRET_KEY"


class SecretBox:
    """Encrypts and decrypts small secrets with one Fernet key."""

    __slots__ = ("_fernet", "ephemeral")

    def __init__(self, key: SecretStr | None) -> None:
        if key is None or not key.get_secret_value().strip():
            log.warning(
                "%s is not set: using a random per-process key. Stored client secrets will "
                "not survive a restart (local mode); set %s to a Fernet key in production.",
                ENV_KEY,
                ENV_KEY,
            )
            self._fernet = Fernet(Fernet.generate_key())
            self.ephemeral = True
            return
        try:
            self._fernet = Fernet(key.get_secret_value().strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                f"{ENV_KEY} is not a valid Fernet key",
                hint=(
                    f"Set {ENV_KEY} to 32 random bytes in urlsafe base64 (44 characters), e.g. "
                    "the output of: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'"
                ),
            ) from None
        self.ephemeral = False

    def __repr__(self) -> str:
        return f"SecretBox(ephemeral={self.ephemeral})"

    def encrypt(self, secret: SecretStr) -> bytes:
        return self._fernet.encrypt(secret.get_secret_value().encode("utf-8"))

    def decrypt(self, token: bytes) -> SecretStr:
        try:
            return SecretStr(self._fernet.decrypt(token).decode("utf-8"))
        except InvalidToken:
            raise StateError(
                "a stored secret cannot be decrypted with the current key",
                code="secret_unreadable",
                hint=(
                    f"The encryption key changed ({ENV_KEY}, or a restart in local mode). "
                    "Connect the tenant again with its client secret."
                ),
            ) from None

    @staticmethod
    def generate_key() -> SecretStr:
        return SecretStr(Fernet.generate_key().decode("ascii"))
