"""The `entra-sync` command as an admin meets it, through a real subprocess: a help line for
every option, `--version`, and bad input as one line on stderr with exit code 2 (no traceback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from bot.cli import _parser

APP_ID = "6f1c2a9e-3b7d-4c1e-9a55-0d2f8e4b7c10"


def run_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MICROSOFT_APP", "ENTRA_"))}
    clean.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env},
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("entra-sync: error:")]
    assert len(errors) == 1, done.stderr
    assert done.stderr.rstrip("\n").endswith(errors[0])  # the last thing printed
    for needle in needles:
        assert needle in errors[0]
    return errors[0]


def test_every_option_and_subcommand_has_a_help_line() -> None:
    import argparse

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{where} {name}")
                    walk(sub, f"{where} {name}")
            elif not action.help:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")

    walk(_parser(), "entra-sync")
    assert missing == []


def test_version_prints_the_installed_package_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"entra-sync {metadata.version('entra-sync-bot')}"


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_with_a_port_out_of_range_is_one_line_exit_2(port: str) -> None:
    line = assert_one_line_error(run_cli("serve", f"--port={port}"), "--port")
    assert "1 to 65535" in line or "not a port number" in line


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_serve_on_a_busy_port_is_one_line_exit_2_and_never_says_running(busy_port: int) -> None:
    done = run_cli("serve", "--port", str(busy_port))
    assert_one_line_error(done, f"127.0.0.1:{busy_port}", "already in use")
    assert "api/messages" not in done.stderr  # the "bot is running" line never came


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_says_running_only_when_it_already_answers(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MICROSOFT_APP", "ENTRA_"))}
    clean.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 90
        for line in proc.stderr:
            if "/api/messages" in line:
                break
            assert time.monotonic() < deadline, "no 'running' line"
        # the line came after the bind: the port accepts at once (the listen backlog)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        for _ in range(100):  # the app answers once the event loop runs
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("/healthz never answered")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_manifest_out_a_folder_writes_the_default_name_inside(tmp_path: Path) -> None:
    done = run_cli("manifest", "--app-id", APP_ID, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    written = tmp_path / "entra-sync-app.zip"
    assert done.stdout.strip() == str(written)
    with zipfile.ZipFile(written) as z:
        assert "manifest.json" in z.namelist()


def test_manifest_out_under_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(
        run_cli("manifest", "--app-id", APP_ID, "--out", str(blocker / "app.zip")),
        "cannot write the app package",
    )


def test_manifest_with_credentials_and_placeholder_urls_is_refused(tmp_path: Path) -> None:
    done = run_cli(
        "manifest", "--app-id", APP_ID, "--out", str(tmp_path / "a.zip"), MICROSOFT_APP_ID=APP_ID
    )
    assert_one_line_error(done, "example.com", "[app]")
    assert not (tmp_path / "a.zip").exists()


def test_manifest_takes_the_urls_from_the_config_app_table(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[app]\n"
        'website_url = "https://it.contoso.com/sync"\n'
        'privacy_url = "https://it.contoso.com/privacy"\n'
        'terms_url = "https://it.contoso.com/terms"\n'
        'domain = "sync.contoso.com"\n'
    )
    out = tmp_path / "a.zip"
    done = run_cli(
        "manifest", "--app-id", APP_ID, "--out", str(out), "--config", str(cfg),
        MICROSOFT_APP_ID=APP_ID,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["developer"]["privacyUrl"] == "https://it.contoso.com/privacy"
    assert manifest["developer"]["termsOfUseUrl"] == "https://it.contoso.com/terms"
    assert manifest["developer"]["websiteUrl"] == "https://it.contoso.com/sync"
    assert "sync.contoso.com" in manifest["validDomains"]


def test_bench_with_negative_users_is_one_line_exit_2_at_once() -> None:
    assert_one_line_error(run_cli("bench", "--users", "-5"), "--users must be at least 1")


def test_sync_once_without_a_tenant_is_one_line_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("sync", "--once", cwd=tmp_path), "no tenant is configured", "connect"
    )


def test_a_missing_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert_one_line_error(run_cli("sync", "--once", "--config", str(missing)), str(missing))


def test_an_invalid_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[schedule]\nmode = 'sometimes'\n")
    assert_one_line_error(run_cli("serve", "--config", str(bad)), str(bad), "schedule.mode")


def test_a_config_that_is_not_toml_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[schedule\nmode = \n")
    assert_one_line_error(
        run_cli("plan", "--tenant", "t", "--directory", "d", "--config", str(bad)), "not valid TOML"
    )


def test_an_unknown_option_is_one_line_exit_2() -> None:
    assert_one_line_error(run_cli("serve", "--prot", "80"), "--prot")
