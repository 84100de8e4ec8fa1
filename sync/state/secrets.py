"""Encryption at rest for the secrets the store keeps (Entra client secrets).

``SecretBox`` wraps a Fernet key (AES-128-CBC + HMAC-SHA256, with a timestamp). The key comes
from the environment variable ``ENTRA_SYNC_SECRET_KEY`` (``EnvSettings.ENTRA_SYNC_SECRET_KEY``),
a urlsafe-base64 32-byte key as made by ``Fernet.generate_key()``.

When no key is configured the box does NOT derive one from anything (no hostname, no app id):
it generates a random key for this process only and logs a warning. Secrets stored in that mode
cannot be read after a restart (``decrypt`` then raises ``StateError`` with code
``secret_unreadable``, and the admin connects the tenant again). That is the local/demo mode;
production sets ``ENTRA_SYNC_SECRET_KEY``.

Key rotation: ``ENTRA_SYNC_SECRET_KEY`` is the key new secrets are written with;
``ENTRA_SYNC_SECRET_KEYS_OLD`` (comma-separated Fernet keys) are still accepted for reading
(``MultiFernet``). ``rotate`` re-encrypts a token with the current key; ``entra-sync state
rotate-secrets`` does that for every stored secret, after which the old keys can be dropped.

Neither the key nor a plaintext ever goes into a log line, an error message or ``repr``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from sync.errors import ConfigError, StateError

log = logging.getLogger(__name__)

ENV_KEY = "ENTRA_SYNC_SECRET_KEY"
ENV_OLD_KEYS = "ENTRA_SYNC_SECRET_KEYS_OLD"

_KEY_HINT = (
    "Each key is 32 random bytes in urlsafe base64 (44 characters), e.g. the output of: "
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def _fernet(value: str, env_name: str) -> Fernet:
    try:
        return Fernet(value.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConfigError(f"{env_name} is not a valid Fernet key", hint=_KEY_HINT) from None


def _old_keys(old: SecretStr | Sequence[SecretStr] | None) -> list[Fernet]:
    """The old keys: a comma-separated SecretStr (the environment variable) or a list."""
    if old is None:
        return []
    items = [old] if isinstance(old, SecretStr) else list(old)
    values = [v for item in items for v in item.get_secret_value().split(",") if v.strip()]
    return [_fernet(v, ENV_OLD_KEYS) for v in values]


class SecretBox:
    """Encrypts and decrypts small secrets with one Fernet key."""

    __slots__ = ("_fernet", "ephemeral", "old_keys")

    def __init__(
        self, key: SecretStr | None, old_keys: SecretStr | Sequence[SecretStr] | None = None
    ) -> None:
        self.old_keys = 0
        if key is None or not key.get_secret_value().strip():
            log.warning(
                "%s is not set: using a random per-process key. Stored client secrets will "
                "not survive a restart (local mode); set %s to a Fernet key in production.",
                ENV_KEY,
                ENV_KEY,
            )
            self._fernet = MultiFernet([Fernet(Fernet.generate_key())])
            self.ephemeral = True
            return
        old = _old_keys(old_keys)
        self._fernet = MultiFernet([_fernet(key.get_secret_value(), ENV_KEY), *old])
        self.old_keys = len(old)
        self.ephemeral = False

    def __repr__(self) -> str:
        return f"SecretBox(ephemeral={self.ephemeral}, old_keys={self.old_keys})"

    def encrypt(self, secret: SecretStr) -> bytes:
        return self._fernet.encrypt(secret.get_secret_value().encode("utf-8"))

    def decrypt(self, token: bytes) -> SecretStr:
        try:
            return SecretStr(self._fernet.decrypt(token).decode("utf-8"))
        except InvalidToken:
            raise _unreadable() from None

    def rotate(self, token: bytes) -> bytes:
        """``token`` re-encrypted with the current key (it may have been written with an old
        one). Raises StateError ``secret_unreadable`` when no configured key opens it."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise _unreadable() from None

    @staticmethod
    def generate_key() -> SecretStr:
        return SecretStr(Fernet.generate_key().decode("ascii"))


def _unreadable() -> StateError:
    return StateError(
        f"a stored secret cannot be decrypted with {ENV_KEY} or any key in {ENV_OLD_KEYS}",
        code="secret_unreadable",
        hint=(
            f"The encryption key changed ({ENV_KEY}, or a restart in local mode). Connect the "
            "tenant again with its client secret, or put the key the secret was saved with "
            f"into {ENV_OLD_KEYS} (comma-separated)."
        ),
    )
