"""App-only tokens for Microsoft Graph: MSAL's client-credentials flow, off the event loop.

One ``msal.ConfidentialClientApplication`` per tenant (it caches the app token itself). MSAL
talks HTTP through :class:`HttpxMsalClient` (httpx), which can also map the https authority
MSAL insists on to a tenant simulator served over plain http on loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
import msal
from pydantic import SecretStr

from sync.config import TenantConfig
from sync.errors import AuthError, AuthUnavailable, ConfigError

log = logging.getLogger(__name__)

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_RESOURCE = "https://graph.microsoft.com"


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A certificate credential of the Entra app: the private key (PEM, unencrypted, kept as a
    SecretStr) and the public certificate (PEM) whose thumbprints Entra knows. The client
    assertion MSAL signs with it carries ``x5t#S256`` (and ``x5c``), as Microsoft documents
    for certificate credentials (PS256)."""

    private_key_pem: SecretStr
    certificate_pem: str
    sha1_thumbprint: str  # hex, upper case: what Entra shows under Certificates & secrets
    sha256_thumbprint: str  # hex
    not_after: datetime

    def __repr__(self) -> str:
        return f"ClientCertificate(thumbprint={self.sha1_thumbprint}, not_after={self.not_after})"

    def msal_credential(self) -> dict[str, str]:
        """MSAL's ``client_credential``: with ``public_certificate`` and no ``thumbprint``,
        MSAL (>= 1.35) signs with PS256 and sends the SHA-256 thumbprint (``x5t#S256``)."""
        return {
            "private_key": self.private_key_pem.get_secret_value(),
            "public_certificate": self.certificate_pem,
        }


def load_client_certificate(
    path: str | Path, password: SecretStr | None = None
) -> ClientCertificate:
    """Read a certificate credential: a PEM file holding the private key and the certificate
    (in either order), or a PKCS#12 file (``.pfx`` / ``.p12``). Raises ConfigError naming the
    file and what is wrong; never shows key material."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the certificate file ({e.strerror})") from None
    secret = password.get_secret_value().encode() if password else None
    key: object
    try:
        if b"-----BEGIN" in raw:
            key = serialization.load_pem_private_key(raw, password=secret)
            certs = x509.load_pem_x509_certificates(raw)
        else:
            key, cert0, _ = pkcs12.load_key_and_certificates(raw, secret)
            certs = [cert0] if cert0 is not None else []
    except (ValueError, TypeError) as e:
        why = "wrong or missing password" if "password" in str(e).lower() else "not readable"
        raise ConfigError(
            f"{p}: the certificate file is {why} (expected a PEM file with the private key and "
            "the certificate, or a .pfx file)"
        ) from None
    if key is None or not certs:
        raise ConfigError(f"{p}: the file needs both the private key and the certificate")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{p}: Entra app certificates use RSA keys; this key is not RSA")
    mine = key.public_key().public_numbers()
    cert = next(
        (
            c
            for c in certs
            if isinstance(pub := c.public_key(), rsa.RSAPublicKey) and pub.public_numbers() == mine
        ),
        None,
    )
    if cert is None:
        raise ConfigError(f"{p}: no certificate in the file matches its private key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return ClientCertificate(
        private_key_pem=SecretStr(key_pem),
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        sha1_thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's id
        sha256_thumbprint=cert.fingerprint(hashes.SHA256()).hex(),
        not_after=cert.not_valid_after_utc,
    )


Credential = SecretStr | ClientCertificate


@runtime_checkable
class TokenProvider(Protocol):
    async def token(self) -> str:
        """A bearer token for Microsoft Graph. Raises AuthError / AuthUnavailable."""
        ...


@runtime_checkable
class RefreshableTokenProvider(TokenProvider, Protocol):
    async def refresh(self) -> str:
        """Drop any cached token and get a new one (Graph said 401)."""
        ...


class StaticTokenProvider:
    """A fixed token (tests, benchmarks: e.g. ``TenantSim.issue_token()``)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


class _MsalResponse:
    """The requests-like response MSAL reads: status_code, text, headers, raise_for_status()."""

    def __init__(self, resp: httpx.Response) -> None:
        self.status_code = resp.status_code
        self.text = resp.text
        self.headers: dict[str, str] = dict(resp.headers.items())

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise AuthUnavailable(f"the Entra token endpoint answered HTTP {self.status_code}")


class HttpxMsalClient:
    """MSAL's ``http_client`` over a synchronous ``httpx.Client``.

    ``rewrite`` maps a URL prefix MSAL uses (``https://127.0.0.1:PORT``) to the one actually
    reached (``http://127.0.0.1:PORT``): MSAL accepts only https authorities.
    """

    def __init__(self, client: httpx.Client, *, rewrite: tuple[str, str] | None = None) -> None:
        self._client = client
        self._rewrite = rewrite

    def _url(self, url: str) -> str:
        if self._rewrite is not None and url.startswith(self._rewrite[0]):
            return self._rewrite[1] + url[len(self._rewrite[0]) :]
        return url

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> _MsalResponse:
        resp = self._client.get(
            self._url(url), params=dict(params or {}), headers=dict(headers or {})
        )
        return _MsalResponse(resp)

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> _MsalResponse:
        common: dict[str, Any] = {"params": dict(params or {}), "headers": dict(headers or {})}
        if isinstance(data, str):
            resp = self._client.post(self._url(url), content=data.encode(), **common)
        else:
            # requests (MSAL's default) sends bytes values as they are; httpx would str() them
            # (MSAL's client assertion is bytes)
            form = {k: v.decode() if isinstance(v, bytes) else v for k, v in (data or {}).items()}
            resp = self._client.post(self._url(url), data=form, **common)
        return _MsalResponse(resp)

    def close(self) -> None:
        self._client.close()


def _authority_base(authority_host: str) -> tuple[str, tuple[str, str] | None, bool]:
    """(https base MSAL sees, URL rewrite for the http client, is it Microsoft's own host)."""
    if "://" not in authority_host:
        authority_host = "https://" + authority_host
    parts = urlsplit(authority_host.rstrip("/"))
    https_base = f"https://{parts.netloc}"
    rewrite = (https_base, f"http://{parts.netloc}") if parts.scheme == "http" else None
    official = parts.netloc.lower() == "login.microsoftonline.com" and parts.scheme == "https"
    return https_base, rewrite, official


def _aadsts_from_text(text: str) -> int | None:
    """The AADSTS number in an Entra error body (OIDC discovery errors arrive as text)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        codes = body.get("error_codes")
        if isinstance(codes, list) and codes and isinstance(codes[0], int):
            return codes[0]
    marker = text.find("AADSTS")
    if marker >= 0:
        digits = ""
        for ch in text[marker + 6 : marker + 16]:
            if not ch.isdigit():
                break
            digits += ch
        if digits:
            return int(digits)
    return None


class MsalTokenProvider:
    """App-only tokens for one tenant via MSAL's client-credentials flow, with a client secret
    or a certificate (a signed client assertion).

    The MSAL app is built lazily (its constructor does HTTP) in a worker thread and cached; a
    failed build is not cached. The secret is a SecretStr and never appears in logs or errors.
    """

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: Credential,
        *,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
        graph_resource: str = DEFAULT_GRAPH_RESOURCE,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self._scopes = [graph_resource.rstrip("/") + "/.default"]
        self._https_base, rewrite, self._official = _authority_base(authority_host)
        self._owns_http = http is None
        # trust_env: HTTPS_PROXY / HTTP_PROXY / NO_PROXY and the CA bundle in SSL_CERT_FILE
        client = http or httpx.Client(timeout=timeout, trust_env=True)
        self._http = HttpxMsalClient(client, rewrite=rewrite)
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_tenant(
        cls, tenant: TenantConfig, secret: Credential, *, http: httpx.Client | None = None
    ) -> MsalTokenProvider:
        """The provider for a configured tenant (``authority_host`` may name a simulator)."""
        if not tenant.tenant_id or not tenant.client_id:
            raise ConfigError(
                f"tenant '{tenant.name}': tenant_id and client_id are needed to sign in"
            )
        return cls(
            tenant.tenant_id,
            tenant.client_id,
            secret,
            authority_host=tenant.authority_host or DEFAULT_AUTHORITY_HOST,
            http=http,
        )

    @property
    def credential(self) -> Credential:
        """What the app signs in with (for the expiry check: a secret's first characters are
        its ``hint`` in Graph; a certificate's thumbprint its ``customKeyIdentifier``)."""
        return self._secret

    def __repr__(self) -> str:
        return f"MsalTokenProvider(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    @property
    def authority(self) -> str:
        return f"{self._https_base}/{self.tenant_id}"

    def _build(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=(
                        self._secret.msal_credential()
                        if isinstance(self._secret, ClientCertificate)
                        else self._secret.get_secret_value()
                    ),
                    authority=self.authority,
                    http_client=self._http,
                    validate_authority=self._official,
                    instance_discovery=False if not self._official else None,
                )
            return self._app

    def _acquire(self, *, refresh: bool) -> str:
        try:
            app = self._build()
            if refresh:
                # Drop the cached app token(s) without MSAL's instance-metadata round trip.
                cache = app.token_cache
                kind = msal.TokenCache.CredentialType.ACCESS_TOKEN
                for item in list(cache.search(kind, query={"client_id": self.client_id})):
                    cache.remove_at(item)
            result = app.acquire_token_for_client(scopes=self._scopes)
        except AuthError:
            raise
        except httpx.TransportError as e:
            raise AuthUnavailable(
                f"tenant {self.tenant_id}: the Entra token endpoint is not reachable "
                f"({type(e).__name__})",
                hint="Entra sign-in did not answer. The sync will retry; nothing was changed.",
            ) from None
        except msal.exceptions.MsalServiceError:
            raise AuthUnavailable(
                f"tenant {self.tenant_id}: the Entra token endpoint failed (HTTP 5xx)",
                hint="Entra sign-in did not answer. The sync will retry; nothing was changed.",
            ) from None
        except ValueError as e:
            # MSAL raises ValueError when tenant discovery fails (unknown or malformed tenant).
            # ... MSAL re-raises the discovery error; the Entra answer is in its context.
            text = f"{e} {e.__context__ or ''}"
            code = _aadsts_from_text(text)
            if code is None and "authority configuration" in text:
                code = 90002  # the tenant's OIDC discovery document does not exist
            shown = f" (AADSTS{code})" if code is not None else ""
            raise AuthError(
                f"tenant {self.tenant_id}: Entra tenant discovery failed{shown}", aadsts=code
            ) from None
        if not isinstance(result, dict):
            raise AuthError(f"tenant {self.tenant_id}: MSAL returned no result")
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return token
        codes = result.get("error_codes")
        code = codes[0] if isinstance(codes, list) and codes and isinstance(codes[0], int) else None
        error = result.get("error") or "unknown_error"
        shown = f"AADSTS{code}" if code is not None else str(error)
        log.warning("token request refused for tenant %s: %s", self.tenant_id, shown)
        raise AuthError(
            f"tenant {self.tenant_id}: Entra refused the app's sign-in ({shown}: {error})",
            aadsts=code,
        )

    async def token(self) -> str:
        return await asyncio.to_thread(self._acquire, refresh=False)

    async def refresh(self) -> str:
        return await asyncio.to_thread(self._acquire, refresh=True)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
