"""The ``fluxdepot`` command (server side): ``check`` now; ``serve`` and ``admin`` join it (DESIGN §3)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.check_command import EXIT_USAGE, run_check

EXAMPLES = """examples:
  fluxdepot check invoice.xml
  fluxdepot check --config config/fluxdepot.example.toml config/demo/invoices/ok/*
  fluxdepot check --json --syntax IN_DP_E1_UBL_INVOICE flow.zip
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxdepot",
        description="fluxdepot: e-invoice flow gateway (server side).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check",
        help="run the processing pipeline offline on local files",
        description="Run the technical and business checks on local files and print each outcome. "
        "Exit 0 when every file would be integrated, 1 when any is rejected or partly integrated, "
        "2 on usage or I/O errors.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--syntax", help="declared syntaxeFlux (e.g. IN_DP_E1_UBL_INVOICE); detected when absent"
    )
    check.add_argument("--config", help="daemon config file: business checks use its directory")
    check.add_argument(
        "--issuer", metavar="SIRET", help="structure the flow is deposited for (default: the supplier)"
    )
    check.add_argument("--json", action="store_true", help="print a JSON array of the reports")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "check":
        return run_check(
            args.files, syntax=args.syntax, config=args.config, as_json=args.json, issuer=args.issuer
        )
    return EXIT_USAGE  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
