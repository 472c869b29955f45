"""The commands of ``fluxdepot-cli``: each takes the client, the parsed arguments and two consoles and
returns the exit code (errors raised by the client are turned into messages by ``clients.cli.main``).
``clients.cli`` sets each subcommand's handler (``set_defaults(handler=...)``); this module never imports
it back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from clients import cli_output as out
from clients.cli_common import EXIT_NOT_INTEGRATED, EXIT_TIMEOUT, EXIT_USAGE, filters
from clients.cli_tables import Col, fitted_table
from clients.client import AsyncClient
from clients.errors import AlreadyExists, FluxdepotError
from clients.models import Flow, Webhook


async def cmd_deposit(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    """Deposit each file; with ``--wait``, follow each flow to its final status, the whole command ending
    at ``--timeout`` (the flows not final by then are named, exit 10)."""
    if args.tracking_id and len(args.files) > 1:
        raise ValueError("--tracking-id names one deposit: give it with a single file")
    limit = asyncio.Semaphore(max(1, args.concurrency))
    results: list[dict[str, Any]] = [{"file": str(p)} for p in args.files]
    failures: list[FluxdepotError | OSError] = []
    deadline = asyncio.get_running_loop().time() + args.timeout if args.wait else None

    async def deposit(result: dict[str, Any], path: Path) -> None:
        receipt = await client.deposit_file(
            path, syntax=args.syntax, issuer_siret=args.issuer, tracking_id=args.tracking_id
        )
        result.update(flow_number=receipt.flow_number, status=receipt.status, status_code=receipt.status_code)
        if receipt.already_deposited:
            result["already_deposited"] = True
        if args.wait:
            async for event in client.watch_flow(receipt.flow_number):
                result.update(status=event.status, status_code=event.status_code)
            flow = await client.get_flow(receipt.flow_number)
            result.update(status=flow.status, status_code=flow.status_code, flow=flow)

    async def one(result: dict[str, Any], path: Path) -> None:
        try:
            async with asyncio.timeout_at(deadline), limit:
                await deposit(result, path)
        except TimeoutError:  # only the --wait deadline: gRPC deadlines are DeadlineExceeded
            waited = "not final" if "flow_number" in result else "no answer"
            result.update(error=f"{waited} after {args.timeout:g} s (--timeout)", timed_out=True)
        except (FluxdepotError, OSError) as exc:
            failures.append(exc)
            result["error"] = str(exc)
        progress.advance(task)

    with deposit_progress(err, len(args.files)) as progress:
        task = progress.add_task("depositing", total=len(args.files))
        await asyncio.gather(*(one(r, p) for r, p in zip(results, args.files, strict=True)))
    late = [r for r in results if r.get("timed_out")]
    if args.json:
        console.print_json(out.to_json(results))
    else:
        console.print(out.deposit_table(results, console.width, title=deposit_summary(results)))
        if args.wait and any("flow_number" in r for r in results):
            console.print("details: fluxdepot-cli report FLOW")
    if late:
        err.print(
            f"[red]error[/] (deadline exceeded): {len(late)} flow(s) still not final after --timeout"
            f" {args.timeout:g} s; follow them with: fluxdepot-cli watch FLOW"
        )
        return EXIT_TIMEOUT
    if failures:
        first = failures[0]
        return first.exit_code if isinstance(first, FluxdepotError) else EXIT_USAGE
    if args.wait and not all_integrated([r.get("flow") for r in results]):
        return EXIT_NOT_INTEGRATED
    return 0


def deposit_progress(err: Console, total: int) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err,
        disable=not err.is_terminal or total < 2, transient=True,
    )  # fmt: skip


def all_integrated(flows: Sequence[Flow | None]) -> bool:
    return all(f is not None and f.status == "INTEGRATED" for f in flows)


def deposit_summary(results: Sequence[dict[str, Any]]) -> str:
    """What happened to the files, counted: "3 deposited, 0 refused" (then already deposited and
    unanswered ones, when there are some)."""
    answered = [r for r in results if "flow_number" in r]
    again = sum(bool(r.get("already_deposited")) for r in answered)
    unanswered = sum(bool(r.get("timed_out")) for r in results if "flow_number" not in r)
    refused = len(results) - len(answered) - unanswered
    parts = [f"{len(answered) - again} deposited", f"{refused} refused"]
    if again:
        parts.append(f"{again} already deposited")
    if unanswered:
        parts.append(f"{unanswered} unanswered")
    return ", ".join(parts)


async def cmd_status(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    flows = [await client.get_flow(n) for n in args.flow_numbers]
    if args.json:
        console.print_json(out.to_json(flows))
    else:
        console.print(out.flows_table(flows, console.width))
    return 0


async def cmd_watch(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    if args.flow_number:
        events = client.watch_flow(args.flow_number)
    else:
        events = client.watch_flows(
            cursor=args.cursor, from_start=args.from_start, issuer_sirets=args.issuer, statuses=args.status
        )
    seen = 0
    cursor = args.cursor  # the last event received: the feed resumes strictly after it
    try:
        async for event in events:
            cursor = event.cursor
            if args.json:
                print(out.to_json(event, indent=None), flush=True)
            else:
                console.print(out.event_line(event))
            seen += 1
            if args.count and seen >= args.count:
                break
    finally:
        if not args.flow_number:
            err.print(escape(resume_hint(args, cursor)), soft_wrap=True)
    return 0


def resume_hint(args: argparse.Namespace, cursor: int) -> str:
    """The command that goes on exactly after the last event received, with the same filters."""
    filters = "".join(f" --issuer {s}" for s in args.issuer) + "".join(f" --status {s}" for s in args.status)
    if cursor:
        return f"resume with: fluxdepot-cli watch --cursor {cursor}{filters}"
    if args.from_start:
        return f"no event received; resume with: fluxdepot-cli watch --from-start{filters}"
    return "no event received, so no cursor to resume from"


async def cmd_search(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    wanted = filters(args)
    if args.csv:
        async for chunk in client.export_search(**wanted):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return 0
    if args.all:
        flows = [f async for f in client.search_all(**wanted, page_size=args.page_size)]
        total, token = len(flows), ""
    else:
        page = await client.search(**wanted, page_size=args.page_size, page_token=args.page_token)
        flows, total, token = list(page.flows), page.total_count, page.next_page_token
    if args.json:
        console.print_json(json.dumps({"flows": json.loads(out.to_json(flows)), "total_count": total,
                                       "next_page_token": token}))  # fmt: skip
        return 0
    console.print(out.flows_table(flows, console.width, title=f"{total} flow(s) match"))
    if token:
        console.print(f"next page: --page-token {token}")
    return 0


async def cmd_export(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    # A CLI with one task: blocking writes hold up nobody. The file is closed below.
    sink = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115, ASYNC230
    size = 0
    try:
        async for chunk in client.export_search(**filters(args)):
            sink.write(chunk)
            size += len(chunk)
    finally:
        if args.out:
            sink.close()
        else:
            sink.flush()
    if args.out:
        err.print(f"wrote {size} bytes to {args.out}")
    return 0


async def cmd_report(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    fmt = args.format or ("xml" if args.out and args.out.suffix.lower() == ".xml" else "json")
    report = await client.get_report(args.flow_number, format=fmt)
    if args.out:
        args.out.write_bytes(report.content)
        err.print(f"wrote the {fmt.upper()} report of {args.flow_number} to {args.out}")
        return 0
    if args.json:
        sys.stdout.write(report.content.decode())
        return 0
    for line in out.report_lines(report):
        console.print(line)
    return 0


async def cmd_reports(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    data = await client.download_reports(args.flow_numbers, format=args.format)
    args.out.write_bytes(data)
    err.print(f"wrote {len(args.flow_numbers)} report(s) to {args.out}")
    return 0


async def cmd_dashboard(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    board = await client.dashboard(
        issuer_sirets=args.issuer, syntaxes=args.syntax,
        deposited_from=args.deposited_from, deposited_to=args.deposited_to,
    )  # fmt: skip
    if args.json:
        console.print_json(out.to_json(board))
        return 0
    for table in out.dashboard_tables(board, console.width):
        console.print(table)
    return 0


# --- admin ACTION -----------------------------------------------------------------------------------


async def admin_profile(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    """``grant-profile`` and ``revoke-profile``."""
    granting = args.admin_command == "grant-profile"
    call = client.grant_profile if granting else client.revoke_profile
    await call(args.login, args.siret, args.profile)
    verb = "granted to" if granting else "revoked from"
    console.print(f"{args.profile or 'SUIVI_FLUX'} {verb} {args.login} on {args.siret}")
    return 0


async def admin_create_technical_user(
    client: AsyncClient, args: argparse.Namespace, console: Console, err: Console
) -> int:
    try:
        token = await client.create_technical_user(
            args.login, args.siret, rotate=args.rotate, ruleset=_ruleset(args.ruleset)
        )
    except AlreadyExists as exc:
        exc.hint = "add --rotate to replace its token (the old one stops working at once)"
        raise
    err.print(f"new token of {token.kind} user {token.login} (shown once; store it now):")
    print(token.token)
    return 0


async def admin_create_token(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    token = await client.create_token(args.login, kind=args.kind)
    err.print(f"new token of {token.kind} user {token.login} (shown once; store it now):")
    print(token.token)
    return 0


async def admin_add_user(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    secret = await client.upsert_user(
        args.login, args.siret, name=args.name, role=args.role, issue_token=args.issue_token
    )
    console.print(f"{args.login} is {args.role} of {args.siret}")
    if secret:
        err.print("new token (shown once):")
        print(secret)
    return 0


async def admin_partner(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    keys = [p.read_text().strip() for p in args.key_file]
    ruleset = await client.upsert_partner(
        args.code, args.siret, public_keys=keys, status_files=args.status_files, ruleset=_ruleset(args.ruleset)
    )
    judged = ruleset or "the daemon's default ruleset"
    saved = f"partner {args.code} of {args.siret} saved with {len(keys)} key(s)"
    console.print(f"{saved}; its flows are judged by {judged}")
    return 0


def _ruleset(option: str | None) -> str | None:
    """``--ruleset``: "default" is the daemon's own ruleset (an empty name on the wire)."""
    return "" if option == "default" else option


async def admin_set_rule(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    await client.set_rejection_rule(args.code, args.syntax, args.rule)
    console.print(f"{args.code}: {args.syntax} flows follow {args.rule} rejection")
    return 0


async def admin_reprocess(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    flow = await client.reprocess_flow(args.flow_number, args.action, detail=args.detail)
    console.print(f"{flow.flow_number} is now {out.status_text(flow.status)} ({flow.status_code})")
    return 0


async def admin_rejects(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    rejects = await client.list_rejects(issuer_sirets=args.issuer, day_from=args.day_from, day_to=args.day_to)
    if args.json:
        console.print_json(out.to_json(rejects))
    else:
        console.print(out.rejects_table(rejects, console.width))
    return 0


async def admin_structures(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    console.print(out.structures_table(await client.list_structures(), console.width))
    return 0


# --- webhooks --------------------------------------------------------------------------------------------
WEBHOOKS_TABLE = (
    Col("id"), Col("owner", fold=True, min_width=10), Col("url", fold=True, min_width=16),
    Col("statuses", fold=True, min_width=8), Col("format"),
)  # fmt: skip
DELIVERIES_TABLE = (
    Col("id"), Col("webhook"), Col("flow number"), Col("status"), Col("state"), Col("attempts"),
    Col("next attempt", drop=1), Col("last error", fold=True, min_width=10),
)  # fmt: skip


def _owner(webhook: Webhook) -> str:
    return f"{webhook.owner_kind} {webhook.owner}"


async def webhooks_add(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    owners = (("structure", args.structure), ("technical", args.technical), ("partner", args.partner))
    kind, owner = next(((k, v) for k, v in owners if v), ("", ""))
    webhook, secret = await client.add_webhook(
        args.url, owner_kind=kind, owner=owner, statuses=args.status, format=args.format, secret=args.secret
    )
    if args.json:
        console.print_json(out.to_json({"webhook": webhook, "secret": secret}))
        return 0
    console.print(f"webhook {webhook.id}: {escape(webhook.url)} for {escape(_owner(webhook))}")
    console.print(f"secret (shown once; signs X-Fluxdepot-Signature): {escape(secret)}", soft_wrap=True)
    return 0


async def webhooks_list(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    webhooks = await client.list_webhooks()
    if args.json:
        console.print_json(out.to_json(webhooks))
        return 0
    rows = [(str(w.id), _owner(w), w.url, ", ".join(w.statuses) or "all", w.format) for w in webhooks]
    console.print(fitted_table(console.width, WEBHOOKS_TABLE, rows, title=f"{len(webhooks)} webhook(s)"))
    return 0


async def webhooks_remove(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    await client.remove_webhook(args.id)
    console.print(f"webhook {args.id} removed")
    return 0


async def webhooks_deliveries(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    found = await client.webhook_deliveries(args.webhook, dead_only=args.dead, limit=args.limit)
    if args.json:
        console.print_json(out.to_json(found))
        return 0
    rows = [
        (
            str(d.id),
            str(d.webhook_id),
            d.flow_number,
            out.status_cell(d.status),
            d.state,
            str(d.attempts),
            out.when(d.next_attempt_at) if d.state == "pending" else "",
            d.last_error,
        )
        for d in found
    ]
    title = f"{len(found)} {'dead ' if args.dead else ''}deliveries"
    console.print(fitted_table(console.width, DELIVERIES_TABLE, rows, title=title))
    return 0


async def webhooks_redeliver(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    await client.redeliver_webhook(args.id)
    console.print(f"delivery {args.id} will be sent again")
    return 0
