"""The Teams app package: valid against the official schema (offline), the right files and icons,
and the same commands the bot answers."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.command_table import COMMANDS, CommandSpec
from bot.manifest import (
    MANIFEST_DIR,
    SCOPE_LEAVES_OUT,
    build_manifest,
    build_package,
    color_icon,
    command_lists,
    commands_for_scope,
    outline_icon,
)
from sync.config import AppSettings
from sync.errors import InputError

E2E_DIR = Path(__file__).resolve().parents[1] / "e2e"
APP_ID = "6f1c2a9e-3b7d-4c1e-9a55-0d2f8e4b7c10"


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    pixels: list[tuple[int, int, int, int]]  # RGBA, row by row


def read_png(data: bytes) -> Png:
    """Decode the 8-bit RGBA, filter-0 PNGs that bot.manifest writes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color_type = struct.unpack(">IIBB", ihdr[:10])
    assert (depth, color_type) == (8, 6)
    raw = zlib.decompress(idat)
    stride = 1 + 4 * width
    pixels: list[tuple[int, int, int, int]] = []
    for y in range(height):
        row = raw[y * stride : (y + 1) * stride]
        assert row[0] == 0
        pixels += [tuple(row[1 + 4 * x : 5 + 4 * x]) for x in range(width)]  # type: ignore[misc]
    return Png(width, height, pixels)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(APP_ID, tmp_path_factory.mktemp("pkg") / "entra-sync.zip")


@pytest.fixture(scope="module")
def manifest(package: Path) -> dict[str, Any]:
    with zipfile.ZipFile(package) as z:
        result: dict[str, Any] = json.loads(z.read("manifest.json"))
    return result


@pytest.fixture(scope="module")
def node_tools() -> Path:
    """tests/e2e/node_modules with @microsoft/app-manifest, installed by the project's script."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js is not installed: the offline schema check needs node and npm")
    subprocess.run([str(E2E_DIR / "install-tools.sh")], check=True, timeout=600)
    return E2E_DIR


def test_manifest_validates_against_the_official_schema_offline(
    node_tools: Path, manifest: dict[str, Any], tmp_path: Path
) -> None:
    assert manifest["manifestVersion"] == "1.22"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    done = subprocess.run(
        ["node", str(node_tools / "validate-manifest.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"errors": []}


def test_a_manifest_with_the_configs_urls_and_domain_validates_offline(
    node_tools: Path, tmp_path: Path
) -> None:
    app = AppSettings(
        developer_name="Contoso IT",
        website_url="https://it.contoso.com/entra-sync",
        privacy_url="https://it.contoso.com/privacy",
        terms_url="https://it.contoso.com/terms",
        domain="sync.contoso.com",
    )
    built = build_manifest(APP_ID, app=app, require_real_urls=True)
    assert built["developer"] == {
        "name": "Contoso IT",
        "websiteUrl": "https://it.contoso.com/entra-sync",
        "privacyUrl": "https://it.contoso.com/privacy",
        "termsOfUseUrl": "https://it.contoso.com/terms",
    }
    assert built["validDomains"] == ["token.botframework.com", "sync.contoso.com"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(built), encoding="utf-8")
    done = subprocess.run(
        ["node", str(node_tools / "validate-manifest.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_placeholder_urls_are_refused_when_real_urls_are_required() -> None:
    app = AppSettings(website_url="https://it.contoso.com/")  # privacy and terms left out
    with pytest.raises(InputError, match=r"example\.com") as refused:
        build_manifest(APP_ID, app=app, require_real_urls=True)
    assert "privacy_url" in refused.value.message and "terms_url" in refused.value.message
    assert "website_url" not in refused.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("privacy_url", "http://it.contoso.com/privacy"), ("domain", "https://sync.contoso.com")],
)
def test_app_settings_refuse_what_teams_would_refuse(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AppSettings.model_validate({field: value})


def test_schema_check_catches_an_invalid_manifest(
    node_tools: Path, manifest: dict[str, Any], tmp_path: Path
) -> None:
    bad = json.loads(json.dumps(manifest))
    bad["bots"][0]["commandLists"][0]["commands"] *= 2  # 20 commands in one list
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    done = subprocess.run(
        ["node", str(node_tools / "validate-manifest.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert any("more than 10 items" in e for e in json.loads(done.stdout)["errors"])


def test_package_holds_the_manifest_and_both_icons(package: Path) -> None:
    with zipfile.ZipFile(package) as z:
        assert sorted(z.namelist()) == ["color.png", "manifest.json", "outline.png"]


def test_manifest_names_the_app_and_one_bot_with_the_app_id(manifest: dict[str, Any]) -> None:
    assert manifest["id"] == APP_ID
    assert manifest["name"]["short"] == "Entra Sync"
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert manifest["validDomains"]
    [bot] = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert bot["scopes"] == ["team", "personal"]
    assert bot["supportsFiles"] is False


def test_color_icon_is_192_square_and_opaque(package: Path) -> None:
    with zipfile.ZipFile(package) as z:
        png = read_png(z.read("color.png"))
    assert (png.width, png.height) == (192, 192)
    assert all(p[3] == 255 for p in png.pixels)
    assert len({p[:3] for p in png.pixels}) > 2  # a symbol on a background, not a flat square


def test_outline_icon_is_32_square_white_on_transparent(package: Path) -> None:
    with zipfile.ZipFile(package) as z:
        png = read_png(z.read("outline.png"))
    assert (png.width, png.height) == (32, 32)
    assert all(p == (0, 0, 0, 0) or p[:3] == (255, 255, 255) for p in png.pixels)
    opaque = sum(1 for p in png.pixels if p[3] == 255)
    transparent = sum(1 for p in png.pixels if p[3] == 0)
    assert opaque > 50
    assert transparent > 500


def test_committed_icons_are_the_generated_ones() -> None:
    assert (MANIFEST_DIR / "color.png").read_bytes() == color_icon()
    assert (MANIFEST_DIR / "outline.png").read_bytes() == outline_icon()


def _listed(manifest: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for entry in manifest["bots"][0]["commandLists"]:
        [scope] = entry["scopes"]
        out[scope] = [(c["title"], c["description"]) for c in entry["commands"]]
    return out


def test_manifest_commands_are_the_bots_command_table(manifest: dict[str, Any]) -> None:
    listed = _listed(manifest)
    assert set(listed) == {"team", "personal"}
    for scope, commands in listed.items():
        expected = [
            (c.title, c.description) for c in COMMANDS if c.name not in SCOPE_LEAVES_OUT[scope]
        ]
        assert commands == expected
    every = {t for commands in listed.values() for t in commands}
    assert every == {(c.title, c.description) for c in COMMANDS}


def test_each_scope_lists_at_most_ten_commands_within_teams_limits(
    manifest: dict[str, Any],
) -> None:
    lists = manifest["bots"][0]["commandLists"]
    assert len(lists) <= 3
    for entry in lists:
        assert len(entry["commands"]) <= 10
        for c in entry["commands"]:
            assert len(c["title"]) <= 32
            assert len(c["description"]) <= 128


def test_a_table_too_long_for_a_scope_is_refused() -> None:
    extra = tuple(CommandSpec(f"extra {i}", f"extra {i}", "more", False) for i in range(5))
    with pytest.raises(InputError, match="at most 10"):
        command_lists(commands=COMMANDS + extra)


def test_leaving_out_a_command_that_does_not_exist_is_refused() -> None:
    with pytest.raises(InputError, match="not in the command table"):
        commands_for_scope("team", commands=COMMANDS[:2])


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-guid",
        "12345678-1234-1234-1234-12345678",
        "{12345678-1234-1234-1234-123456789abc}",
    ],
)
def test_an_app_id_that_is_not_a_guid_is_refused_with_a_clear_error(
    bad: str, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as caught:
        build_package(bad, tmp_path / "x.zip")
    assert caught.value.code == "bad_app_id"
    assert "is not a GUID" in caught.value.message
    assert not (tmp_path / "x.zip").exists()


def test_an_upper_case_app_id_is_written_lower_case(tmp_path: Path) -> None:
    out = build_package(APP_ID.upper(), tmp_path / "pkg.zip")
    with zipfile.ZipFile(out) as z:
        assert json.loads(z.read("manifest.json"))["id"] == APP_ID
