"""Our own redis-server processes on loopback (Debian's redis-server 7): for tests that flush
the store, listen with TLS, or run a Sentinel. Never the shared 127.0.0.1:6379."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    """A RESP PING on a plain TCP port (``+PONG``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def redis_process(
    workdir: Path, args: Sequence[str], *, ready_port: int, tls: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """redis-server with ``args``, until it answers on ``ready_port``; stopped afterwards."""
    log = open(workdir / f"redis-{ready_port}.log", "wb")
    proc = subprocess.Popen([REDIS_SERVER, *args], cwd=workdir, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        check = _listening if tls else _answers_ping
        while not check(ready_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                out = (workdir / f"redis-{ready_port}.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server did not start: {out[-2000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def plain_redis(workdir: Path) -> Iterator[str]:
    """A throwaway redis-server (no persistence); yields its redis:// URL."""
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with redis_process(workdir, args, ready_port=port):
        yield f"redis://127.0.0.1:{port}/0"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(workdir: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entra-sync test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(workdir / "ca.pem", workdir / "server.pem", workdir / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


@contextmanager
def tls_redis(workdir: Path, files: TlsFiles) -> Iterator[int]:
    """redis-server listening with TLS only (plain port off); yields the TLS port."""
    port = free_port()
    args = [
        "--port", "0",
        "--tls-port", str(port),
        "--bind", "127.0.0.1",
        "--tls-cert-file", str(files.cert),
        "--tls-key-file", str(files.key),
        "--tls-ca-cert-file", str(files.ca),
        "--tls-auth-clients", "no",
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    with redis_process(workdir, args, ready_port=port, tls=True):
        yield port


@contextmanager
def sentinel_for(workdir: Path, master_port: int, service: str) -> Iterator[int]:
    """``redis-server --sentinel`` watching the master on ``master_port`` as ``service``;
    yields the Sentinel's port (Sentinel rewrites its config file, so it gets its own)."""
    port = free_port()
    conf = workdir / f"sentinel-{port}.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor {service} 127.0.0.1 {master_port} 1\n"
    )
    with redis_process(workdir, [str(conf), "--sentinel"], ready_port=port):
        yield port
