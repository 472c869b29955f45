"""The ``fluxdepot`` command (server side): ``serve``, ``check``, ``rulesets`` and ``admin`` (DESIGN §3)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.validation.artefacts import ArtefactsNotInstalled
from gateway.check_command import EXIT_USAGE, run_check
from gateway.data_lock import DataFolderBusy, DataFolderLock
from gateway.rulesets_command import run_rulesets
from gateway.settings import EX_CONFIG, Settings, SettingsError, load_settings
from gateway.startup import EX_TEMPFAIL, StartupError
from gateway.third_party_warnings import filter_known

WRITING_TASKS = frozenset({"migrate", "import-directory", "restore", "purge"})

EXAMPLES = """examples:
  fluxdepot serve --config config/fluxdepot.example.toml
  fluxdepot check --config config/fluxdepot.example.toml config/demo/invoices/ok/*
  fluxdepot check --ruleset en16931+fr-flux2 invoice.xml
  fluxdepot rulesets
  fluxdepot admin --config /etc/fluxdepot/fluxdepot.toml verify-audit
  fluxdepot admin --config /etc/fluxdepot/fluxdepot.toml replay --ruleset en16931+fr-flux2 --csv diff.csv
"""


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="fluxdepot",
        description="fluxdepot: e-invoice flow gateway (server side).",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the daemon (gRPC, SFTP, workers)",
        formatter_class=fmt,
        description="Run the daemon in the foreground. Logs JSON lines to stdout. Exits 0 after SIGTERM or "
        "SIGINT; when it cannot start, prints one line and exits 65 (store damaged), 69 (a listener "
        "cannot bind), 75 (the data folder is held by another daemon) or 78 (configuration error).",
    )
    serve.add_argument("--config", required=True, type=Path, help="TOML config file")
    serve.add_argument("--data-dir", type=Path, help="overrides [data] dir")
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help="overrides [grpc] listen")
    serve.add_argument("--sftp-listen", metavar="HOST:PORT", help="overrides [sftp] listen")
    serve.add_argument("--http-listen", metavar="HOST:PORT", help="overrides [http] listen")
    serve.add_argument("--metrics-listen", metavar="HOST:PORT", help="overrides [metrics] listen")
    serve.add_argument(
        "--init",
        action="store_true",
        help="start a new SQLite store in a data folder that held one (its database is missing); "
        "flow numbers go on from where they were",
    )

    check = sub.add_parser(
        "check",
        help="run the processing pipeline offline on local files",
        formatter_class=fmt,
        description="Run the technical and business checks on local files and print each outcome. "
        "Exit 0 when every file would be integrated, 1 when any is rejected or partly integrated, "
        "2 on usage or I/O errors.",
        epilog=EXAMPLES,
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="invoice files (XML, PDF, archives) to check")
    check.add_argument("--syntax", help="declared syntaxeFlux (e.g. IN_DP_E1_UBL_INVOICE); detected when absent")
    check.add_argument("--config", help="daemon config file: business checks use its directory")
    check.add_argument("--issuer", metavar="SIRET", help="structure the flow is deposited for (default: the supplier)")
    check.add_argument("--json", action="store_true", help="print a JSON array of the reports")
    check.add_argument(
        "--ruleset", metavar="NAME", help="en16931 or en16931+fr-flux2 (default: the config's [rules] ruleset)"
    )

    rulesets = sub.add_parser(
        "rulesets",
        help="list the rulesets and the state of their artefacts",
        formatter_class=fmt,
        description="List each ruleset with the version, sha256 and state of every artefact it runs. Exit 0 "
        "when the configured ruleset is installed, 1 when it is not, 2 on usage errors.",
    )
    rulesets.add_argument("--config", help="daemon config file: its [rules] ruleset and artefacts_dir")
    rulesets.add_argument("--json", action="store_true", help="print JSON")

    admin = sub.add_parser("admin", help="offline administration of the configured store", formatter_class=fmt)
    admin.add_argument("--config", required=True, type=Path, help="TOML config file")
    admin.add_argument("--data-dir", type=Path, help="overrides [data] dir")
    tasks = admin.add_subparsers(dest="task", required=True)
    tasks.add_parser("migrate", help="apply pending store migrations")
    imp = tasks.add_parser("import-directory", help="import structures, users, partners (TOML) or structures (CSV)")
    imp.add_argument("file", type=Path, help="directory file (TOML) or structures (CSV)")
    tasks.add_parser("verify-audit", help="verify the hash-chained status history of every flow")
    bk = tasks.add_parser("backup", help="consistent online backup of the SQLite store and blobs")
    bk.add_argument("dir", type=Path, help="new folder to write the backup into")
    rs = tasks.add_parser("restore", help="restore a backup into the data folder (daemon stopped)")
    rs.add_argument("dir", type=Path, help="a folder written by `admin backup`")
    rs.add_argument("--force", action="store_true", help="replace an existing store")
    tasks.add_parser("purge", help="delete final flows older than [retention] flows_days")
    tasks.add_parser("check-store", help="full integrity check of the SQLite store (exit 1 on damage)")
    _replay_parser(tasks, fmt)
    return parser


def _replay_parser(tasks: Any, fmt: type[argparse.HelpFormatter]) -> None:
    from gateway.replay_command import parse_day, parse_ruleset

    rp = tasks.add_parser(
        "replay",
        help="judge the stored flows again under another ruleset and show what would change (reads only)",
        formatter_class=fmt,
        description="Judge the stored flows (integrated, partly integrated or rejected) again under RULESET "
        "without changing anything stored (the daemon may run meanwhile), and print which invoices and flows "
        "would change verdict, grouped by rule. Exit 0 when nothing would change, 1 when some verdict would "
        "(or a flow could not be judged), 2 on usage errors.",
    )
    rp.add_argument("--ruleset", required=True, type=parse_ruleset, metavar="NAME", help="en16931 or en16931+fr-flux2")
    rp.add_argument("--issuer", metavar="SIRET", help="only this issuer's flows")
    rp.add_argument("--since", type=parse_day, metavar="DATE", help="deposited on or after this day (YYYY-MM-DD, UTC)")
    rp.add_argument("--until", type=parse_day, metavar="DATE", help="deposited on or before this day (YYYY-MM-DD, UTC)")
    rows = rp.add_mutually_exclusive_group()
    rows.add_argument("--csv", type=Path, metavar="FILE", help="write each changed invoice as a CSV row")
    rows.add_argument("--json", type=Path, metavar="FILE", help="write the changed invoices as a JSON array")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, Any]] = {}
    if getattr(args, "data_dir", None):
        overrides["data"] = {"dir": args.data_dir.resolve()}
    if getattr(args, "grpc_listen", None):
        overrides["grpc"] = {"listen": args.grpc_listen}
    if getattr(args, "sftp_listen", None):
        overrides["sftp"] = {"listen": args.sftp_listen}
    if getattr(args, "metrics_listen", None):
        overrides["metrics"] = {"listen": args.metrics_listen}
    if getattr(args, "http_listen", None):
        overrides["http"] = {"listen": args.http_listen}
    return load_settings(args.config, overrides)


def package_version() -> str:
    try:
        return version("fluxdepot")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    filter_known()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "check":
        return run_check(
            args.files,
            syntax=args.syntax,
            config=args.config,
            as_json=args.json,
            issuer=args.issuer,
            ruleset=args.ruleset,
        )
    if args.command == "rulesets":
        return run_rulesets(args.config, as_json=args.json)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"fluxdepot: {exc}", file=sys.stderr)
        return EX_CONFIG
    if args.command == "serve":
        return _serve(settings, init=args.init)
    return _admin(args, settings)


def _serve(settings: Settings, *, init: bool = False) -> int:
    from gateway.daemon import Daemon
    from gateway.memory import return_big_buffers

    return_big_buffers()

    daemon = Daemon(settings, init=init)
    try:
        return asyncio.run(daemon.run())
    except SettingsError as exc:  # found while starting (e.g. the directory file): before anything listens
        print(f"fluxdepot: {exc}", file=sys.stderr)
        return EX_CONFIG
    except StartupError as exc:  # the daemon has already stopped what it had started
        print(f"fluxdepot: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ArtefactsNotInstalled as exc:  # the daemon's first check: before anything listens
        print(f"fluxdepot: error: {exc}", file=sys.stderr)
        return EX_CONFIG


def _admin(args: argparse.Namespace, settings: Settings) -> int:
    from gateway import admin_commands as admin

    out, err = sys.stdout, sys.stderr
    lock = DataFolderLock(settings.data_dir)
    try:
        # Commands that write the embedded store want it to themselves: a live daemon would lose data.
        if args.task in WRITING_TASKS and settings.store_url.startswith("sqlite:"):
            lock.acquire()
    except DataFolderBusy as exc:
        print(f"fluxdepot admin {args.task}: {exc}; stop the daemon first", file=err)
        return EX_TEMPFAIL
    try:
        if args.task == "migrate":
            return asyncio.run(admin.migrate(settings, out))
        if args.task == "import-directory":
            return asyncio.run(admin.import_directory(settings, args.file, out, err))
        if args.task == "verify-audit":
            return asyncio.run(admin.verify_audit(settings, out))
        if args.task == "backup":
            return admin.backup(settings, args.dir, out)
        if args.task == "restore":
            return admin.restore(settings, args.dir, out, force=args.force)
        if args.task == "purge":
            return asyncio.run(admin.purge(settings, out))
        if args.task == "check-store":
            return admin.check_store(settings, out)
        if args.task == "replay":
            return asyncio.run(_replay(args, settings, out, err))
    except (ValueError, OSError) as exc:
        print(f"fluxdepot admin {args.task}: {exc}", file=err)
        return EXIT_USAGE
    except EngineError as exc:  # e.g. the store cannot be opened
        print(f"fluxdepot admin {args.task}: {exc}", file=err)
        return 1
    finally:
        lock.release()
    return EXIT_USAGE  # pragma: no cover - argparse enforces the choices


async def _replay(args: argparse.Namespace, settings: Settings, out: Any, err: Any) -> int:
    from gateway import admin_commands as admin
    from gateway.replay_command import Output, request_of

    request = request_of(settings.engine_rules, args.ruleset, args.issuer, args.since, args.until)  # ValueError: 2
    output = Output(args.json or args.csv, as_json=args.json is not None)
    return await admin.replay(settings, request, output, out, err)


if __name__ == "__main__":
    sys.exit(main())
