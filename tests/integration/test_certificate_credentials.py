"""Certificate credentials for the Entra app: MSAL signs a client assertion with the app's
certificate, and the simulated token endpoint checks it as Entra documents
(learn.microsoft.com/entra/identity-platform/certificate-credentials): jwt-bearer assertion
type, ``x5t#S256`` naming the registered certificate, the signature by its key, ``aud`` the
token endpoint, ``iss`` = ``sub`` = the client id. A throwaway certificate per test."""

from __future__ import annotations

import base64
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from sync.config import Config, TenantConfig
from sync.devtools.simulator import CLIENT_ASSERTION_TYPE, TenantSim, serve_simulator
from sync.errors import AuthError, ConfigError
from sync.graph.auth import ClientCertificate, MsalTokenProvider, load_client_certificate
from sync.graph.client import GraphClient
from sync.graph.token_state import WatchedTokens
from sync.service.runtime import open_tenant

CLIENT_ID = "11111111-2222-3333-4444-555555555555"


@dataclass(frozen=True)
class Cert:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def pem_file(self, path: Path, password: bytes | None = None) -> Path:
        enc = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )
        path.write_bytes(key + self.cert_pem.encode())
        return path

    def pfx_file(self, path: Path, password: bytes) -> Path:
        path.write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"entra-sync",
                self.key,
                self.cert,
                None,
                serialization.BestAvailableEncryption(password),
            )
        )
        return path


def make_cert(days: int = 365) -> Cert:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entra-sync test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return Cert(key, cert)


@pytest.fixture(scope="module")
def cert() -> Cert:
    return make_cert()


@pytest.fixture(scope="module")
def other_cert() -> Cert:
    return make_cert()


def test_a_pem_file_with_key_and_certificate_loads_with_entras_thumbprint(
    cert: Cert, tmp_path: Path
) -> None:
    loaded = load_client_certificate(cert.pem_file(tmp_path / "app.pem"))
    assert loaded.sha1_thumbprint == cert.cert.fingerprint(hashes.SHA1()).hex().upper()
    assert loaded.sha256_thumbprint == cert.cert.fingerprint(hashes.SHA256()).hex()
    assert loaded.not_after == cert.cert.not_valid_after_utc
    assert "PRIVATE" not in repr(loaded)


def test_a_pfx_file_with_its_password_loads(cert: Cert, tmp_path: Path) -> None:
    loaded = load_client_certificate(
        cert.pfx_file(tmp_path / "app.pfx", b"pw-123"), SecretStr("pw-123")
    )
    assert loaded.certificate_pem == cert.cert_pem


def test_a_pfx_with_the_wrong_password_is_a_config_error_naming_the_file(
    cert: Cert, tmp_path: Path
) -> None:
    path = cert.pfx_file(tmp_path / "app.pfx", b"pw-123")
    with pytest.raises(ConfigError, match=r"app\.pfx.*password"):
        load_client_certificate(path, SecretStr("wrong"))


def test_a_key_without_its_certificate_is_refused(
    cert: Cert, other_cert: Cert, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.pem"
    key = cert.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(key + other_cert.cert_pem.encode())
    with pytest.raises(ConfigError, match="no certificate in the file matches its private key"):
        load_client_certificate(path)


def test_a_missing_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the certificate file"):
        load_client_certificate(tmp_path / "nope.pem")


def _sim(cert: Cert) -> TenantSim:
    users = [{"id": "u1", "displayName": "Ann", "mobilePhone": "+46701234567"}]
    return TenantSim(users, client_id=CLIENT_ID, client_certificate=cert.cert_pem)


async def test_msal_signs_in_with_the_certificate_and_graph_answers(
    cert: Cert, tmp_path: Path
) -> None:
    sim = _sim(cert)
    credential = load_client_certificate(cert.pem_file(tmp_path / "app.pem"))
    async with serve_simulator(sim) as url, httpx.AsyncClient() as http:
        tokens = MsalTokenProvider("contoso", CLIENT_ID, credential, authority_host=url)
        try:
            graph = GraphClient(tokens, base_url=f"{url}/v1.0", http=http)
            users = await graph.read_users(["displayName"])
        finally:
            tokens.close()
    assert [u.id for u in users.users] == ["u1"]
    assert sim.requests["token"] == 1


async def test_a_certificate_entra_does_not_know_is_refused_with_aadsts700027(
    cert: Cert, other_cert: Cert, tmp_path: Path
) -> None:
    sim = _sim(cert)
    credential = load_client_certificate(other_cert.pem_file(tmp_path / "other.pem"))
    async with serve_simulator(sim) as url:
        tokens = MsalTokenProvider("contoso", CLIENT_ID, credential, authority_host=url)
        try:
            with pytest.raises(AuthError) as err:
                await tokens.token()
        finally:
            tokens.close()
    assert err.value.aadsts == 700027
    assert "certificate" in err.value.hint.lower()


def _assertion(key: rsa.RSAPrivateKey, cert: Cert, aud: str, **claims: object) -> str:
    now = int(time.time())
    payload = {
        "aud": aud,
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "exp": now + 600,
        **claims,
    }
    x5t256 = base64.urlsafe_b64encode(cert.cert.fingerprint(hashes.SHA256())).decode().rstrip("=")
    return jwt.encode(payload, key, algorithm="PS256", headers={"x5t#S256": x5t256})


async def _post_assertion(
    url: str, assertion: str, kind: str = CLIENT_ASSERTION_TYPE
) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{url}/contoso/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "scope": "https://graph.microsoft.com/.default",
                "client_assertion_type": kind,
                "client_assertion": assertion,
            },
        )


async def test_the_token_endpoint_accepts_a_documented_assertion(cert: Cert) -> None:
    async with serve_simulator(_sim(cert)) as url:
        aud = url.replace("http://", "https://") + "/contoso/oauth2/v2.0/token"
        resp = await _post_assertion(url, _assertion(cert.key, cert, aud))
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "Bearer"


async def test_an_assertion_naming_the_certificate_but_signed_by_another_key_is_refused(
    cert: Cert, other_cert: Cert
) -> None:
    async with serve_simulator(_sim(cert)) as url:
        aud = url.replace("http://", "https://") + "/contoso/oauth2/v2.0/token"
        resp = await _post_assertion(url, _assertion(other_cert.key, cert, aud))
    assert resp.status_code == 401
    assert resp.json()["error_codes"] == [700027]
    assert "signature" in resp.json()["error_description"]


async def test_an_assertion_for_another_audience_is_refused(cert: Cert) -> None:
    async with serve_simulator(_sim(cert)) as url:
        resp = await _post_assertion(url, _assertion(cert.key, cert, "https://elsewhere/token"))
    assert resp.status_code == 401
    assert "audience" in resp.json()["error_description"]


async def test_an_expired_assertion_is_refused_with_aadsts700024(cert: Cert) -> None:
    async with serve_simulator(_sim(cert)) as url:
        aud = url.replace("http://", "https://") + "/contoso/oauth2/v2.0/token"
        old = int(time.time()) - 3600
        resp = await _post_assertion(url, _assertion(cert.key, cert, aud, nbf=old, exp=old + 600))
    assert resp.json()["error_codes"] == [700024]


async def test_the_wrong_assertion_type_is_refused(cert: Cert) -> None:
    async with serve_simulator(_sim(cert)) as url:
        aud = url.replace("http://", "https://") + "/contoso/oauth2/v2.0/token"
        resp = await _post_assertion(url, _assertion(cert.key, cert, aud), kind="jwt")
    assert resp.status_code == 400


async def test_a_configured_tenant_signs_in_with_its_client_certificate(
    cert: Cert, tmp_path: Path
) -> None:
    cert.pem_file(tmp_path / "app.pem")
    sim = _sim(cert)
    async with serve_simulator(sim) as url, AsyncExitStack() as stack, httpx.AsyncClient() as http:
        tenant = TenantConfig(
            name="contoso",
            tenant_id="contoso",
            client_id=CLIENT_ID,
            client_certificate="app.pem",  # relative to the config file's folder
            authority_host=url,
            graph_url=f"{url}/v1.0",
        )
        runtime = await open_tenant(tenant, Config(base_dir=tmp_path), stack, http=http)
        await runtime.graph.sign_in()
        provider = runtime.graph._tokens
        if isinstance(provider, WatchedTokens):  # the readiness probe's view of the tokens
            provider = provider._inner
        assert isinstance(provider, MsalTokenProvider)
        assert isinstance(provider.credential, ClientCertificate)
    assert sim.requests["token"] == 1


async def test_a_tenant_with_an_unset_certificate_password_variable_cannot_open(
    cert: Cert, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert.pfx_file(tmp_path / "app.pfx", b"pw")
    monkeypatch.delenv("CONTOSO_PFX_PW", raising=False)
    tenant = TenantConfig(
        name="contoso",
        tenant_id="contoso",
        client_id=CLIENT_ID,
        client_certificate="app.pfx",
        client_certificate_password_env="CONTOSO_PFX_PW",
    )
    async with AsyncExitStack() as stack, httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match="CONTOSO_PFX_PW"):
            await open_tenant(tenant, Config(base_dir=tmp_path), stack, http=http)
