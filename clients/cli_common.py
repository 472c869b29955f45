"""What ``fluxdepot-cli``'s parser (``clients.cli``) and its command handlers (``clients.cli_commands``)
share: the exit codes, and the search filters, declared once and read back once.

Imports run one way: ``cli`` → ``cli_commands`` → ``cli_common``; this module imports neither.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from clients.errors import DeadlineExceeded

EXIT_NOT_INTEGRATED = 1  # a flow followed with --wait did not integrate fully
EXIT_USAGE = 2  # usage errors and refused requests
EXIT_TIMEOUT = DeadlineExceeded.exit_code


def parse_time(text: str) -> datetime:
    """An ISO date or time argument; without a zone it is UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def add_filters(p: argparse.ArgumentParser) -> None:
    """The search filters of ``search`` and ``export``; ``filters`` reads them back."""
    p.add_argument("--issuer", action="append", default=[], metavar="SIRET", help="repeatable")
    p.add_argument("--status", action="append", default=[], help="name or code, repeatable (e.g. REJECTED)")
    p.add_argument("--syntax", action="append", default=[], help="syntaxeFlux, repeatable")
    p.add_argument("--from", dest="deposited_from", type=parse_time, help="deposited on or after (ISO)")
    p.add_argument("--to", dest="deposited_to", type=parse_time, help="deposited before (ISO); not before --from")
    p.add_argument("--flow-number", default="")
    p.add_argument("--file-name", default="", help="substring of the file name")
    p.add_argument("--channel", default="", choices=["", "EDI", "API", "PORTAL"])
    p.add_argument("--sha256", default="")
    p.add_argument("--tracking-id", default="")
    p.add_argument("--updated-after", type=parse_time)


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filters ``add_filters`` declared, as the client's search keywords."""
    return {
        "issuer_sirets": args.issuer, "statuses": args.status, "syntaxes": args.syntax,
        "deposited_from": args.deposited_from, "deposited_to": args.deposited_to,
        "flow_number": args.flow_number, "file_name": args.file_name, "channel": args.channel,
        "sha256": args.sha256, "tracking_id": args.tracking_id, "updated_after": args.updated_after,
    }  # fmt: skip
