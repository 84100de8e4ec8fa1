"""The `entra-sync` command (DESIGN.md §5). Each subcommand imports what it needs lazily, so
`entra-sync plan` never loads the Bot Framework SDK.

Exit codes: 0 success, 1 the operation failed (e.g. Graph down), 2 bad input (one line on
stderr that names the file and the problem; nothing changed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import NoReturn

from bot.logs import configure_logging
from sync.errors import InputError, SyncError

log = logging.getLogger("entra_sync")


CONFIG_HELP = "the TOML config file (default: $ENTRA_SYNC_CONFIG; none: the built-in defaults)"
JSON_HELP = "print one JSON object instead of text"
MANIFEST_DEFAULT = "entra-sync-app.zip"  # bot.manifest.DEFAULT_PACKAGE_NAME


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``entra-sync: error: ...`` and exit 2, no usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"entra-sync: error: {message} (see: {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (use 1 to 65535)")
    return port


def _version() -> str:
    try:
        return metadata.version("entra-sync-bot")
    except metadata.PackageNotFoundError:  # pragma: no cover - a checkout without `pip install`
        return "unknown (not installed: run make venv)"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="entra-sync", description="Entra Sync for Teams")
    p.add_argument("--version", action="version", version=f"entra-sync {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the bot (local mode without Teams credentials)")
    s.add_argument("--config", help=CONFIG_HELP)
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; local mode accepts only loopback)",
    )
    s.add_argument("--port", type=_port, default=3978, help="TCP port to listen on (default 3978)")

    s = sub.add_parser("simulate", help="serve a tenant file as Microsoft Graph + token endpoint")
    s.add_argument("--tenant", required=True, help="the tenant file (JSON: users and groups)")
    s.add_argument("--port", type=_port, default=5980, help="TCP port (default 5980)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--throttle-every", type=int, default=None, help="every Nth request gets 429")
    s.add_argument("--fail-at", type=int, default=None, help="this request number answers 503")

    s = sub.add_parser("plan", help="dry run: print the proposals for a tenant and a directory")
    s.add_argument("--tenant", required=True, help="the tenant file (JSON: users and groups)")
    s.add_argument("--directory", required=True, help="the directory file (JSON: users)")
    s.add_argument("--config", help=CONFIG_HELP)
    s.add_argument("--json", action="store_true", help="print the plan as JSON")

    s = sub.add_parser("sync", help="one sync cycle as the bot runs it")
    s.add_argument(
        "--once", action="store_true", required=True, help="run one cycle and exit (required)"
    )
    s.add_argument("--config", help=CONFIG_HELP)
    s.add_argument("--json", action="store_true", help="print the summary on one line")

    s = sub.add_parser("manifest", help="build the Teams app package (zip)")
    s.add_argument(
        "--app-id", required=True, help="the bot's Microsoft App ID (the Entra app's client ID)"
    )
    s.add_argument(
        "--out",
        default=MANIFEST_DEFAULT,
        help=f"the zip to write, or a folder to write {MANIFEST_DEFAULT} into "
        f"(default ./{MANIFEST_DEFAULT})",
    )
    s.add_argument("--config", help=CONFIG_HELP + "; its [app] table gives the package's URLs")

    s = sub.add_parser("bench", help="benchmark: floor, peer, read, full and delta sync")
    s.add_argument(
        "--users", type=int, default=100_000, help="users in the simulated tenant (default 100000)"
    )
    s.add_argument(
        "--changes",
        type=float,
        default=1.0,
        help="percentage of users changed before the delta sync (0 to 100, default 1)",
    )
    s.add_argument(
        "--page-latency-ms",
        type=float,
        default=0.0,
        help="time the simulated Graph takes per page of users (default 0: answers at once)",
    )
    s.add_argument("--json", action="store_true", help=JSON_HELP + " (the last line always is)")

    s = sub.add_parser("audit", help="the audit trail")
    a = s.add_subparsers(dest="audit_cmd", required=True, metavar="ACTION")
    e = a.add_parser("export", help="write the whole audit trail")
    e.add_argument("--config", help=CONFIG_HELP)
    e.add_argument(
        "--format", choices=["csv", "json"], default="json", help="output format (default json)"
    )
    _state_parser(sub)
    return p


# --- entra-sync state: export, import, rotate-secrets (issue 16) ---------------------------


def _state_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    s = sub.add_parser(
        "state",
        help="back up, restore and re-key the stored state (REDIS_URL, ENTRA_SYNC_REDIS_PREFIX)",
    )
    a = s.add_subparsers(dest="state_cmd", required=True)
    e = a.add_parser("export", help="write every key of the store to a JSON Lines file")
    e.add_argument(
        "--out",
        required=True,
        help="the file to write (mode 0600; '-' for standard output); secrets stay encrypted",
    )
    i = a.add_parser("import", help="restore a file written by 'state export'")
    i.add_argument("file", help="the export file")
    i.add_argument(
        "--replace",
        action="store_true",
        help="delete what the store holds under the prefix first (without it, a non-empty "
        "store is refused)",
    )
    a.add_parser(
        "rotate-secrets",
        help="re-encrypt saved client secrets with ENTRA_SYNC_SECRET_KEY (old keys in "
        "ENTRA_SYNC_SECRET_KEYS_OLD)",
    )


def cmd_state(args: argparse.Namespace) -> int:
    from sync.service import backups

    if args.state_cmd == "export":
        header = asyncio.run(backups.export_state(args.out))
        if args.out != "-":
            print(json.dumps({"out": args.out, **header}))
        return 0
    if args.state_cmd == "import":
        print(json.dumps(asyncio.run(backups.import_state(args.file, replace=args.replace))))
        return 0
    result = asyncio.run(backups.rotate_secrets())
    print(json.dumps(result))
    if result["unreadable"]:
        print(
            "entra-sync: secret_unreadable: no configured key opens the saved secret of "
            f"{', '.join(result['unreadable'])} (put the key it was saved with into "
            "ENTRA_SYNC_SECRET_KEYS_OLD, or connect the tenant again)",
            file=sys.stderr,
        )
        return 1
    return 0


def _config_path(arg: str | None) -> str | None:
    return arg or os.environ.get("ENTRA_SYNC_CONFIG") or None


def cmd_plan(args: argparse.Namespace) -> int:
    from sync.config import load_config
    from sync.directories.builtin import load_directory_file
    from sync.files import load_tenant_snapshot
    from sync.models import StateView
    from sync.plan.planner import plan

    config = load_config(_config_path(args.config))
    snapshot = load_tenant_snapshot(args.tenant, config.scope.groups, config.scope.filter)
    users, ignored = load_directory_file(args.directory)
    result = plan(snapshot, users, StateView(ignored=frozenset(ignored)), config)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        for prop in result.proposals:
            print(f"{prop.kind.value:9} {prop.reason}")
        for b in result.blocked:
            print(f"BLOCKED   {b.reason}")
        print(json.dumps(result.summary()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        configure_logging(os.environ)  # LOG_LEVEL, LOG_FORMAT: the same for every command
        return _dispatch(args)
    except InputError as e:
        hint = f" ({e.hint})" if e.hint else ""
        print(f"entra-sync: error: {_one_line(e.message)}{_one_line(hint)}", file=sys.stderr)
        return 2
    except SyncError as e:
        hint = f" ({e.hint})" if e.hint else ""
        print(f"entra-sync: {e.code}: {e.message}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "plan":
        return cmd_plan(args)
    if args.cmd == "simulate":
        from sync.devtools.simulator import main_simulate

        main_simulate(
            args.tenant,
            args.port,
            host=args.host,
            throttle_every=args.throttle_every,
            fail_at=args.fail_at,
            on_ready=lambda url: print(
                f"Tenant simulator: Graph at {url}/v1.0, "
                f"token endpoint at {url}/<tenant>/oauth2/v2.0/token",
                flush=True,
            ),
        )
        return 0
    if args.cmd == "serve":
        from bot.serve import serve

        return serve(config_path=_config_path(args.config), host=args.host, port=args.port)
    if args.cmd == "sync":
        from sync.service.runner import sync_once

        summary = asyncio.run(sync_once(_config_path(args.config)))
        print(json.dumps(summary, indent=None if args.json else 2, ensure_ascii=False))
        return 0 if all(r.get("status") == "ok" for r in summary.get("runs", [])) else 1
    if args.cmd == "manifest":
        from bot.manifest import build_package
        from sync.config import EnvSettings, load_config

        config = load_config(_config_path(args.config))
        production = not EnvSettings().local_mode  # Teams credentials: no placeholders
        out = build_package(
            args.app_id, Path(args.out), app=config.app, require_real_urls=production
        )
        print(out)
        return 0
    if args.cmd == "bench":
        from sync.devtools.bench import run_bench

        figures = run_bench(
            users=args.users, changes=args.changes, page_latency=args.page_latency_ms / 1000
        )
        print(json.dumps(figures))
        return 0
    if args.cmd == "state":
        return cmd_state(args)
    if args.cmd == "audit":
        from sync.service.runner import export_audit

        sys.stdout.write(asyncio.run(export_audit(_config_path(args.config), args.format)))
        return 0
    raise InputError(f"unknown command {args.cmd}")  # pragma: no cover - argparse prevents it


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
