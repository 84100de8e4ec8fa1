"""The Teams app package: manifest (schema 1.22) and icons, zipped for sideloading.

``build_package(app_id, out)`` writes ``manifest.json``, ``color.png`` and ``outline.png`` into
one zip. The manifest's command lists come from the bot's own command table
(:data:`bot.command_table.COMMANDS`), so the menu Teams shows is the commands the bot answers.
The icons are drawn here in pure Python (zlib + struct), so the package needs no image library.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.command_table import COMMANDS, CommandSpec
from sync.config import AppSettings
from sync.errors import InputError

log = logging.getLogger(__name__)

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "manifest"
TEMPLATE = MANIFEST_DIR / "manifest.template.json"
APP_ID_PLACEHOLDER = "{{APP_ID}}"
DEFAULT_PACKAGE_NAME = "entra-sync-app.zip"

# Teams limits (platform notes; the schema allows longer titles than the client shows).
MAX_COMMAND_LISTS = 3
MAX_COMMANDS_PER_LIST = 10
MAX_TITLE = 32
MAX_DESCRIPTION = 128

BOT_SCOPES: tuple[str, ...] = ("team", "personal")

# Teams shows at most 10 commands per scope; the table has more. What each scope's menu leaves
# out (every command still works when typed, and `help` lists them all):
# - team: `connect` and `disconnect` take or remove a tenant's credentials; that belongs in the
#   admin's private chat, not in a channel everyone reads.
# - personal: `notify here` is about a channel; `ignored` is a list an admin reviews together
#   with the cards, in the channel.
# Every command of the table appears in at least one scope (tested).
SCOPE_LEAVES_OUT: dict[str, frozenset[str]] = {
    "team": frozenset({"connect", "disconnect"}),
    "personal": frozenset({"notify here", "ignored"}),
}

COLOR_SIZE = 192
OUTLINE_SIZE = 32
ACCENT_RGB = (0x0F, 0x6C, 0xBD)
WHITE = (255, 255, 255)


# --- command lists ---------------------------------------------------------------------------


def commands_for_scope(scope: str, commands: Sequence[CommandSpec] = COMMANDS) -> list[CommandSpec]:
    """The table's commands that the manifest lists for ``scope``, in table order."""
    leave_out = SCOPE_LEAVES_OUT.get(scope, frozenset())
    unknown = leave_out - {c.name for c in commands}
    if unknown:
        raise InputError(
            f"manifest: SCOPE_LEAVES_OUT[{scope!r}] names commands that are not in the command "
            f"table: {', '.join(sorted(unknown))}"
        )
    return [c for c in commands if c.name not in leave_out]


def command_lists(
    scopes: Sequence[str] = BOT_SCOPES, commands: Sequence[CommandSpec] = COMMANDS
) -> list[dict[str, Any]]:
    """``bots[0].commandLists``: one list per scope, checked against Teams' limits."""
    if len(scopes) > MAX_COMMAND_LISTS:
        raise InputError(f"manifest: at most {MAX_COMMAND_LISTS} command lists, got {len(scopes)}")
    lists: list[dict[str, Any]] = []
    for scope in scopes:
        chosen = commands_for_scope(scope, commands)
        if len(chosen) > MAX_COMMANDS_PER_LIST:
            raise InputError(
                f"manifest: scope {scope!r} would list {len(chosen)} commands; Teams shows at most "
                f"{MAX_COMMANDS_PER_LIST}. Add the least useful ones to SCOPE_LEAVES_OUT."
            )
        for c in chosen:
            if len(c.title) > MAX_TITLE or len(c.description) > MAX_DESCRIPTION:
                raise InputError(
                    f"manifest: command {c.name!r}: title <= {MAX_TITLE} and description <= "
                    f"{MAX_DESCRIPTION} characters"
                )
        lists.append(
            {
                "scopes": [scope],
                "commands": [{"title": c.title, "description": c.description} for c in chosen],
            }
        )
    return lists


# --- manifest ----------------------------------------------------------------------------------


def validate_app_id(app_id: str) -> str:
    """The bot's Microsoft App ID, lower-case, or a clear error when it is not a GUID."""
    text = app_id.strip()
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        parsed = None
    if parsed is None or len(text) != 36 or str(parsed) != text.lower():
        raise InputError(
            f"--app-id: '{app_id}' is not a GUID (expected 8-4-4-4-12 hex digits, "
            "like 00000000-0000-0000-0000-000000000000)",
            hint="Use the Microsoft App ID (client ID) of the bot's Entra app registration.",
            code="bad_app_id",
        )
    return str(parsed)


def _package_version() -> str:
    try:
        return metadata.version("entra-sync-bot")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.1.0"


PLACEHOLDER_HOST = "example.com"
URL_FIELDS = {
    "website_url": "websiteUrl",
    "privacy_url": "privacyUrl",
    "terms_url": "termsOfUseUrl",
}


def apply_app_settings(manifest: dict[str, Any], app: AppSettings) -> None:
    """The publisher's pages and name, and the bot's host, from the config's ``[app]`` table."""
    developer = manifest["developer"]
    for setting, key in URL_FIELDS.items():
        value = getattr(app, setting)
        if value is not None:
            developer[key] = value
    if app.developer_name is not None:
        developer["name"] = app.developer_name
    if app.domain is not None and app.domain not in manifest["validDomains"]:
        manifest["validDomains"].append(app.domain)


def placeholder_urls(manifest: dict[str, Any]) -> list[str]:
    """The ``[app]`` settings whose URL in ``manifest`` is still the example.com placeholder."""
    out = []
    for setting, key in URL_FIELDS.items():
        host = urlsplit(str(manifest["developer"].get(key, ""))).hostname or ""
        if host == PLACEHOLDER_HOST or host.endswith("." + PLACEHOLDER_HOST):
            out.append(setting)
    return out


def build_manifest(
    app_id: str,
    *,
    template: Path = TEMPLATE,
    app: AppSettings | None = None,
    require_real_urls: bool = False,
) -> dict[str, Any]:
    """The manifest for ``app_id`` as a dict: the template plus id, version and commands, with
    the URLs of ``app`` (the config's ``[app]``). Placeholder URLs left: refused with
    ``require_real_urls`` (a bot with credentials is going to production), else a warning."""
    guid = validate_app_id(app_id)
    manifest: dict[str, Any] = json.loads(template.read_text(encoding="utf-8"))
    apply_app_settings(manifest, app or AppSettings())
    missing = placeholder_urls(manifest)
    if missing:
        what = ", ".join(missing)
        if require_real_urls:
            raise InputError(
                f"manifest: the app package would show example.com pages ({what})",
                hint="Set them under [app] in the config file (https addresses of your "
                "organisation's pages), then build the package again.",
                code="placeholder_urls",
            )
        log.warning("manifest: example.com placeholders in the package; set [app] %s", what)
    if manifest.get("id") != APP_ID_PLACEHOLDER:
        raise InputError(f"{template}: 'id' must be {APP_ID_PLACEHOLDER}")
    manifest["id"] = guid
    manifest["version"] = _package_version()
    bots = manifest.get("bots")
    if not isinstance(bots, list) or len(bots) != 1:
        raise InputError(f"{template}: 'bots' must hold exactly one bot")
    bot = bots[0]
    bot["botId"] = guid
    bot["scopes"] = list(BOT_SCOPES)
    bot["commandLists"] = command_lists()
    if APP_ID_PLACEHOLDER in json.dumps(manifest):
        raise InputError(
            f"{template}: {APP_ID_PLACEHOLDER} left in a field build_manifest does not set"
        )
    return manifest


def build_package(
    app_id: str,
    out: Path,
    *,
    app: AppSettings | None = None,
    require_real_urls: bool = False,
) -> Path:
    """Write the sideloadable app package (zip) to ``out`` and return its path. ``out`` may
    be an existing folder: the zip is ``<folder>/entra-sync-app.zip`` then.

    Raises :class:`sync.errors.InputError` (code ``bad_app_id``) when ``app_id`` is not a GUID,
    and when ``out`` cannot be written.
    """
    manifest = build_manifest(app_id, app=app, require_real_urls=require_real_urls)
    out = Path(out)
    if out.is_dir():
        out = out / DEFAULT_PACKAGE_NAME
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            z.writestr(manifest["icons"]["color"], color_icon())
            z.writestr(manifest["icons"]["outline"], outline_icon())
    except OSError as e:
        raise InputError(
            f"--out {out}: cannot write the app package ({e.strerror or e})",
            code="bad_output_path",
        ) from None
    log.info("manifest: wrote %s for app %s", out, manifest["id"])
    return out


# --- icons -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Glyph:
    """A sync symbol (two arcs, each ending in an arrowhead) in unit coordinates, centre (0,0)."""

    radius: float
    thickness: float
    gap_deg: float = 44.0
    head_half_width: float = 1.1  # half the arrowhead's base, in thicknesses
    head_length: float = 1.5  # arrowhead length, in thicknesses

    def _arcs(self) -> list[tuple[float, float]]:
        # two arcs with gaps at the upper right and the lower left, travelling counterclockwise
        return [(20.0, 200.0 - self.gap_deg), (200.0, 380.0 - self.gap_deg)]

    def covers(self, x: float, y: float) -> bool:
        r = math.hypot(x, y)
        ang = math.degrees(math.atan2(y, x)) % 360.0
        half = self.thickness / 2
        if abs(r - self.radius) <= half:
            for start, end in self._arcs():
                a = ang if ang >= start else ang + 360.0
                if start <= a <= end:
                    return True
        for _start, end in self._arcs():
            if self._in_head(x, y, math.radians(end)):
                return True
        return False

    def _in_head(self, x: float, y: float, theta: float) -> bool:
        # base centred on the circle at theta, along the radius; tip along the tangent
        cx, cy = self.radius * math.cos(theta), self.radius * math.sin(theta)
        tx, ty = -math.sin(theta), math.cos(theta)  # direction of travel
        nx, ny = math.cos(theta), math.sin(theta)  # radial
        w = self.head_half_width * self.thickness
        h = self.head_length * self.thickness
        dx, dy = x - cx, y - cy
        along = dx * tx + dy * ty  # 0 at the base, h at the tip
        across = dx * nx + dy * ny
        if along < 0 or along > h:
            return False
        return abs(across) <= w * (1 - along / h)


def _coverage(glyph: _Glyph, size: int, samples: int = 4) -> list[list[float]]:
    """Anti-aliased coverage (0..1) of ``glyph`` on a ``size`` x ``size`` grid, y up, centred."""
    grid: list[list[float]] = []
    step = 1.0 / samples
    for py in range(size):
        row: list[float] = []
        for px in range(size):
            hits = 0
            for sy in range(samples):
                for sx in range(samples):
                    x = (px + (sx + 0.5) * step) / size * 2 - 1
                    y = 1 - (py + (sy + 0.5) * step) / size * 2
                    hits += glyph.covers(x, y)
            row.append(hits / (samples * samples))
        grid.append(row)
    return grid


def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int, int]]) -> bytes:
    """An 8-bit RGBA PNG, filter 0 on every row."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            raw.extend(pixel(x, y))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


def color_icon() -> bytes:
    """192x192: a white sync symbol on the accent colour, full bleed."""
    cov = _coverage(_Glyph(radius=0.52, thickness=0.13), COLOR_SIZE)

    def pixel(x: int, y: int) -> tuple[int, int, int, int]:
        c = cov[y][x]
        r, g, b = (round(a * (1 - c) + w * c) for a, w in zip(ACCENT_RGB, WHITE, strict=True))
        return (r, g, b, 255)

    return _png(COLOR_SIZE, COLOR_SIZE, pixel)


def outline_icon() -> bytes:
    """32x32: the same symbol, white on transparent (Teams' rule for outline icons)."""
    cov = _coverage(_Glyph(radius=0.68, thickness=0.17), OUTLINE_SIZE, samples=6)

    def pixel(x: int, y: int) -> tuple[int, int, int, int]:
        a = round(cov[y][x] * 255)
        return (255, 255, 255, a) if a else (0, 0, 0, 0)

    return _png(OUTLINE_SIZE, OUTLINE_SIZE, pixel)


def write_icons(directory: Path = MANIFEST_DIR) -> list[Path]:
    """Write color.png and outline.png (the copies kept in the repository) into ``directory``."""
    paths = [directory / "color.png", directory / "outline.png"]
    paths[0].write_bytes(color_icon())
    paths[1].write_bytes(outline_icon())
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bot.manifest --app-id ID [--out FILE]`` or ``--write-icons``."""
    p = argparse.ArgumentParser(prog="python -m bot.manifest", description=__doc__)
    p.add_argument("--app-id")
    p.add_argument("--out", type=Path, default=Path("entra-sync-app.zip"))
    p.add_argument("--write-icons", action="store_true", help="refresh manifest/*.png")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.write_icons:
        for path in write_icons():
            log.info("wrote %s", path)
        return 0
    if not args.app_id:
        p.error("--app-id is required")
    try:
        build_package(args.app_id, args.out)
    except InputError as e:
        log.error("%s", e)  # a one-line error for a person, no traceback
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
