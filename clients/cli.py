"""``fluxdepot-cli``: deposit, follow and search flows, read reports, administer (DESIGN §3).

Exit codes: 0 success; 1 a flow followed with ``--wait`` did not integrate fully; 2 usage errors and
refused requests; then each ``clients.errors`` class's own code (3 unauthenticated, 4 permission
denied, 5 not found, 6 already exists, 7 over a limit, 8 wrong state, 9 server unavailable, 10 a call
outlasted ``--timeout``, or ``deposit --wait`` gave up at it, 11 server error).

This module builds the parser and runs a command; each subcommand names its handler in
``clients.cli_commands`` (``set_defaults(handler=...)``), and what both share is ``clients.cli_common``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import difflib
import os
import re
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import NoReturn

import shtab
from rich.markup import escape

from clients import cli_commands as commands
from clients import cli_output as out
from clients.cli_common import EXIT_USAGE, add_filters, parse_time
from clients.client import DEFAULT_PORT, DEFAULT_TARGET, AsyncClient
from clients.errors import FluxdepotError

SHELLS = ("bash", "zsh")
_INVALID_CHOICE = re.compile(r"^(?P<where>.*)invalid choice: (?P<value>.+?) \(choose from (?P<choices>.*)\)$")
EXAMPLES = """examples:
  export FLUXDEPOT_TOKEN=demo-technical-token
  fluxdepot-cli deposit --wait config/demo/invoices/ok/*
  fluxdepot-cli status CPP0011100000000000000001
  fluxdepot-cli watch CPP0011100000000000000001       # until its final status
  fluxdepot-cli watch --cursor 1234                   # every change after event 1234
  fluxdepot-cli report CPP0011100000000000000001 --out report.xml
  fluxdepot-cli search --status REJECTED --from 2026-01-01 --csv > rejected.csv
  fluxdepot-cli export --issuer 40483304800022 --out flows.csv
  fluxdepot-cli --token demo-manager-token dashboard
  fluxdepot-cli --token demo-manager-token admin grant-profile viewer 40483304800022
"""


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that answers a mistyped command or choice with the nearest one."""

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.match(message)
        if match:
            try:
                value = str(ast.literal_eval(match["value"]))
                choices = [str(c) for c in ast.literal_eval(f"({match['choices']},)")]
            except (ValueError, SyntaxError):
                choices = []
            close = difflib.get_close_matches(value, choices, n=1)
            if close:
                message = f"{match['where']}invalid choice: {value!r}; did you mean {close[0]!r}?"
        super().error(message)


def _ruleset_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ruleset",
        metavar="NAME",
        help='judge its flows by this ruleset (en16931, en16931+fr-flux2), or "default" for the daemon\'s '
        "[rules] ruleset; left out: an existing one keeps its own",
    )


def _file(action: argparse.Action) -> argparse.Action:
    """``action`` completed as a file name by the ``completion`` scripts."""
    action.complete = shtab.FILE  # type: ignore[attr-defined]
    return action


def _version() -> str:
    try:
        return metadata.version("fluxdepot")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = CliParser(
        prog="fluxdepot-cli",
        description="Client of a fluxdepot server (gRPC).",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--target", default=os.environ.get("FLUXDEPOT_TARGET", DEFAULT_TARGET),
        help=f"HOST[:PORT] of the server, port {DEFAULT_PORT} when absent (or FLUXDEPOT_TARGET)",
    )  # fmt: skip
    parser.add_argument("--token", default=os.environ.get("FLUXDEPOT_TOKEN"), help="bearer token (or FLUXDEPOT_TOKEN)")
    parser.add_argument("--tls", action="store_true", help="use TLS (system roots unless --ca)")
    _file(parser.add_argument("--ca", type=Path, help="CA certificate (PEM) of the server"))
    _file(parser.add_argument("--cert", type=Path, help="client certificate (PEM), for mutual TLS"))
    _file(parser.add_argument("--key", type=Path, help="client key (PEM), for mutual TLS"))
    parser.add_argument(
        "--timeout", type=float, default=60.0,
        help="seconds per call; deposit --wait: for the whole command (default 60; exit 10 past it)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("deposit", help="deposit files (one flow each)", epilog=EXAMPLES, formatter_class=fmt)
    p.set_defaults(handler=commands.cmd_deposit)
    _file(p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to deposit, one flow each"))
    p.add_argument("--syntax", default="", help="declared syntaxeFlux (detected when absent)")
    p.add_argument("--issuer", default="", metavar="SIRET", help="structure deposited for (default: yours)")
    p.add_argument("--tracking-id", default="", help="idempotency key (one file only)")
    p.add_argument("--wait", action="store_true", help="follow each flow to its final status, up to --timeout")
    p.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds per call and for the whole --wait (default 60)",
    )
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="show flows and their current status")
    p.set_defaults(handler=commands.cmd_status)
    p.add_argument("flow_numbers", nargs="+", metavar="FLOW", help="flow numbers (e.g. CPP0011100000000000000001)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("watch", help="live status changes: one flow, or every flow you may see")
    p.set_defaults(handler=commands.cmd_watch)
    p.add_argument("flow_number", nargs="?", metavar="FLOW", help="one flow to follow to its end (default: all)")
    p.add_argument("--cursor", type=int, default=0, help="resume after this event cursor (the #N of an event)")
    p.add_argument("--from-start", action="store_true", help="replay every event from the first")
    p.add_argument("--issuer", action="append", default=[], metavar="SIRET")
    p.add_argument("--status", action="append", default=[])
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("search", help="search flows (a readable table, or --csv / --json)")
    p.set_defaults(handler=commands.cmd_search)
    add_filters(p)
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--page-token", default="")
    p.add_argument("--all", action="store_true", help="every page")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--csv", action="store_true")
    group.add_argument("--json", action="store_true")

    p = sub.add_parser("export", help="every matching flow as CSV (streamed)")
    p.set_defaults(handler=commands.cmd_export)
    add_filters(p)
    _file(p.add_argument("--out", type=Path, help="file to write (default: standard output)"))

    p = sub.add_parser("report", help="a flow's integration report: summary with hints, or --out")
    p.set_defaults(handler=commands.cmd_report)
    p.add_argument("flow_number", metavar="FLOW", help="the flow number")
    _file(p.add_argument("--out", type=Path, help="save the report (.json or .xml)"))
    p.add_argument("--format", choices=["json", "xml"], help="default: from --out's suffix, else json")
    p.add_argument("--json", action="store_true", help="print the JSON report")

    p = sub.add_parser("reports", help="a zip of several reports")
    p.set_defaults(handler=commands.cmd_reports)
    p.add_argument("flow_numbers", nargs="+", metavar="FLOW", help="flow numbers")
    _file(p.add_argument("--out", type=Path, required=True, help="zip file to write"))
    p.add_argument("--format", choices=["json", "xml"], default="json")

    p = sub.add_parser("dashboard", help="counts per status and issuer, like the portal's")
    p.set_defaults(handler=commands.cmd_dashboard)
    p.add_argument("--issuer", action="append", default=[], metavar="SIRET")
    p.add_argument("--syntax", action="append", default=[])
    p.add_argument("--from", dest="deposited_from", type=parse_time, help="deposited on or after (ISO)")
    p.add_argument("--to", dest="deposited_to", type=parse_time, help="deposited before (ISO); not before --from")
    p.add_argument("--json", action="store_true")

    _admin_parser(sub.add_parser("admin", help="administration (primary managers)"))
    _webhooks_parser(sub.add_parser("webhooks", help="signed POSTs of status changes to your URLs"))
    p = sub.add_parser("completion", help="print a shell completion script: source <(fluxdepot-cli completion bash)")
    p.set_defaults(handler=None)  # answered without a server (main)
    p.add_argument("shell", choices=SHELLS, help="bash or zsh")
    return parser


def _admin_parser(admin: argparse.ArgumentParser) -> None:
    sub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    for name, text in (("grant-profile", "grant flow follow-up"), ("revoke-profile", "revoke it")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(handler=commands.admin_profile)
        p.add_argument("login", help="the user's login")
        p.add_argument("siret", help="the structure's SIRET")
        p.add_argument("--profile", default="", help="default SUIVI_FLUX")
    p = sub.add_parser("create-technical-user", help="create a technical user; prints its token once")
    p.set_defaults(handler=commands.admin_create_technical_user)
    p.add_argument("login", help="the technical user's login (an existing one is refused without --rotate)")
    p.add_argument("siret", help="the SIRET of the structure it deposits for")
    p.add_argument("--rotate", action="store_true", help="the login exists: replace its token (the old one stops)")
    _ruleset_option(p)
    p = sub.add_parser("create-token", help="a new token (the old one stops working); printed once")
    p.set_defaults(handler=commands.admin_create_token)
    p.add_argument("login", help="the user's or technical user's login")
    p.add_argument("--kind", choices=["technical", "user"], default="technical")
    p = sub.add_parser("add-user", help="create a user if needed and attach it to a structure")
    p.set_defaults(handler=commands.admin_add_user)
    p.add_argument("login", help="the user's login")
    p.add_argument("siret", help="the structure's SIRET")
    p.add_argument("--name", default="")
    p.add_argument("--role", choices=["user", "primary_manager"], default="user")
    p.add_argument("--issue-token", action="store_true")
    p = sub.add_parser("partner", help="create or update an EDI partner and its SSH keys")
    p.set_defaults(handler=commands.admin_partner)
    p.add_argument("code", help="partner code, three letters and three digits (e.g. AAA001)")
    p.add_argument("siret", help="the SIRET of the partner's structure")
    _file(p.add_argument("--key-file", action="append", default=[], type=Path, help="OpenSSH public key file"))
    p.add_argument("--status-files", action="store_true")
    _ruleset_option(p)
    p = sub.add_parser("set-rule", help="a partner's rejection rule for a syntax")
    p.set_defaults(handler=commands.admin_set_rule)
    p.add_argument("code", help="partner code (e.g. AAA001)")
    p.add_argument("syntax", help="syntaxeFlux (e.g. IN_DP_E1_UBL_INVOICE)")
    p.add_argument("rule", choices=["complete", "partial"], help="reject the whole flow, or only its bad invoices")
    p = sub.add_parser("reprocess", help="release or close a held flow, or reprocess a WARNING flow")
    p.set_defaults(handler=commands.admin_reprocess)
    p.add_argument("flow_number", metavar="FLOW", help="the flow number")
    p.add_argument("action", choices=["release", "close", "reprocess"], help="what to do with it")
    p.add_argument("--detail", default="")
    p = sub.add_parser("rejects", help="invoices not integrated, per issuer and day")
    p.set_defaults(handler=commands.admin_rejects)
    p.add_argument("--issuer", action="append", default=[], metavar="SIRET")
    p.add_argument("--from", dest="day_from", type=parse_time, help="from this day (ISO)")
    p.add_argument("--to", dest="day_to", type=parse_time, help="before this day (ISO); not before --from")
    p.add_argument("--json", action="store_true")
    sub.add_parser("structures", help="the structures you belong to").set_defaults(handler=commands.admin_structures)


def _webhooks_parser(webhooks: argparse.ArgumentParser) -> None:
    sub = webhooks.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    p = sub.add_parser("add", help="subscribe a URL; prints its signing secret once")
    p.set_defaults(handler=commands.webhooks_add)
    p.add_argument("url", help="http:// or https:// URL receiving the POSTs")
    owner = p.add_mutually_exclusive_group()
    owner.add_argument("--structure", metavar="SIRET", help="the flows of this structure (its primary manager)")
    owner.add_argument("--technical", metavar="LOGIN", help="the flows this technical user deposited")
    owner.add_argument("--partner", metavar="CODE", help="the flows this EDI partner deposited")
    p.add_argument("--status", action="append", default=[], help="only changes to this status (repeat); default all")
    p.add_argument("--format", choices=["fluxdepot", "afnor"], default="fluxdepot", help="body format")
    p.add_argument("--secret", default="", help="the HMAC key (default: generated and printed)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("list", help="the webhooks you manage")
    p.set_defaults(handler=commands.webhooks_list)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("remove", help="delete a webhook: nothing more is sent to it")
    p.set_defaults(handler=commands.webhooks_remove)
    p.add_argument("id", type=int, help="the webhook id (see `webhooks list`)")
    p = sub.add_parser("deliveries", help="the latest deliveries, newest first")
    p.set_defaults(handler=commands.webhooks_deliveries)
    p.add_argument("--webhook", type=int, default=0, metavar="ID", help="of this webhook only")
    p.add_argument("--dead", action="store_true", help="only dead-lettered deliveries (retries exhausted)")
    p.add_argument("--limit", type=int, default=0, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("redeliver", help="send a delivered or dead delivery again")
    p.set_defaults(handler=commands.webhooks_redeliver)
    p.add_argument("id", type=int, help="the delivery id (X-Fluxdepot-Delivery)")


def _client(args: argparse.Namespace) -> AsyncClient:
    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    return AsyncClient(
        args.target, args.token, tls=args.tls, root_certificates=read(args.ca),
        client_certificate=read(args.cert), client_key=read(args.key), timeout_s=args.timeout,
    )  # fmt: skip


async def run(args: argparse.Namespace) -> int:
    """Run the subcommand's handler (``set_defaults(handler=...)``) with a connected client."""
    console, err = out.consoles()
    async with _client(args) as client:
        return int(await args.handler(client, args, console, err))


def _reversed_range(args: argparse.Namespace) -> str:
    """The usage error of a --from after its --to, or ""."""
    for start, end in (("deposited_from", "deposited_to"), ("day_from", "day_to")):
        begin, until = getattr(args, start, None), getattr(args, end, None)
        if begin is not None and until is not None and begin > until:
            return f"--from {begin.isoformat()} is after --to {until.isoformat()}"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if problem := _reversed_range(args):
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.handler is None:  # completion
        sys.stdout.write(shtab.complete(parser, shell=args.shell))
        return 0
    _, err = out.consoles()
    try:
        return asyncio.run(run(args))
    except FluxdepotError as exc:
        err.print(f"[red]error[/] ({exc.code.lower().replace('_', ' ') or 'failed'}): {escape(exc.message)}")
        if exc.hint:
            err.print(f"hint: {exc.hint}")
        return exc.exit_code
    except (ValueError, OSError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
