"""The commands of ``fluxdepot-cli``: each takes the client, the parsed arguments and two consoles and
returns the exit code (errors raised by the client are turned into messages by ``clients.cli.main``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clients import cli_output as out
from clients.cli import EXIT_NOT_INTEGRATED, _filters, all_integrated, deposit_progress
from clients.client import AsyncClient
from clients.errors import FluxdepotError
from clients.models import Flow


async def cmd_deposit(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    if args.tracking_id and len(args.files) > 1:
        raise ValueError("--tracking-id names one deposit: give it with a single file")
    limit = asyncio.Semaphore(max(1, args.concurrency))
    results: list[dict[str, Any]] = [{"file": str(p)} for p in args.files]
    failures: list[FluxdepotError | OSError] = []

    async def one(i: int, path: Path) -> None:
        async with limit:
            try:
                receipt = await client.deposit_file(
                    path, syntax=args.syntax, issuer_siret=args.issuer, tracking_id=args.tracking_id
                )
                results[i].update(flow_number=receipt.flow_number, status=receipt.status)
                if receipt.already_deposited:
                    results[i]["already_deposited"] = True
                if args.wait:
                    flow = await client.wait_final(receipt.flow_number)
                    results[i].update(status=flow.status, status_code=flow.status_code, flow=flow)
            except (FluxdepotError, OSError) as exc:
                failures.append(exc)
                results[i]["error"] = str(exc)
            progress.advance(task)

    with deposit_progress(err, len(args.files)) as progress:
        task = progress.add_task("depositing", total=len(args.files))
        await asyncio.gather(*(one(i, p) for i, p in enumerate(args.files)))
    if args.json:
        rows = [{k: (asdict(v) if isinstance(v, Flow) else v) for k, v in r.items()} for r in results]
        console.print_json(json.dumps(rows, default=str))
    else:
        table = Table(title=f"{len(args.files)} file(s) deposited to {args.target}")
        for name in ("file", "flow number", "status", ""):
            table.add_column(name, no_wrap=name == "flow number")
        for r in results:
            note = r.get("error") or ("already deposited (same tracking id)" if r.get("already_deposited") else "")
            table.add_row(r["file"], r.get("flow_number", ""), out.status_text(r.get("status", "FAILED")), escape(note))
        console.print(table)
        ok = sum("error" not in r for r in results)
        console.print(f"{ok} deposited, {len(results) - ok} refused")
        if args.wait and ok:
            console.print("details: fluxdepot-cli report FLOW")
    if failures:
        first = failures[0]
        return first.exit_code if isinstance(first, FluxdepotError) else 2
    if args.wait and not all_integrated([r.get("flow") for r in results]):
        return EXIT_NOT_INTEGRATED
    return 0


async def cmd_status(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    flows = [await client.get_flow(n) for n in args.flow_numbers]
    if args.json:
        console.print_json(out.to_json(flows))
    else:
        console.print(out.flows_table(flows))
    return 0


async def cmd_watch(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    if args.flow_number:
        events = client.watch_flow(args.flow_number)
    else:
        events = client.watch_flows(
            cursor=args.cursor, from_start=args.from_start, issuer_sirets=args.issuer, statuses=args.status
        )
    seen = 0
    cursor = args.cursor
    try:
        async for event in events:
            cursor = event.cursor
            if args.json:
                print(json.dumps(asdict(event), default=str), flush=True)
            else:
                console.print(out.event_line(event))
            seen += 1
            if args.count and seen >= args.count:
                break
    finally:
        if not args.flow_number:
            err.print(f"resume with: fluxdepot-cli watch --cursor {cursor}")
    return 0


async def cmd_search(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    filters = _filters(args)
    if args.csv:
        async for chunk in client.export_search(**filters):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return 0
    if args.all:
        flows = [f async for f in client.search_all(**filters, page_size=args.page_size)]
        total, token = len(flows), ""
    else:
        page = await client.search(**filters, page_size=args.page_size, page_token=args.page_token)
        flows, total, token = list(page.flows), page.total_count, page.next_page_token
    if args.json:
        console.print_json(json.dumps({"flows": json.loads(out.to_json(flows)), "total_count": total,
                                       "next_page_token": token}))  # fmt: skip
        return 0
    console.print(out.flows_table(flows, title=f"{total} flow(s) match"))
    if token:
        console.print(f"next page: --page-token {token}")
    return 0


async def cmd_export(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    # A CLI with one task: blocking writes hold up nobody. The file is closed below.
    sink = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115, ASYNC230
    size = 0
    try:
        async for chunk in client.export_search(**_filters(args)):
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
    for table in out.dashboard_tables(board):
        console.print(table)
    return 0


async def cmd_admin(client: AsyncClient, args: argparse.Namespace, console: Console, err: Console) -> int:
    action = args.admin_command
    if action in ("grant-profile", "revoke-profile"):
        call = client.grant_profile if action == "grant-profile" else client.revoke_profile
        await call(args.login, args.siret, args.profile)
        verb = "granted to" if action == "grant-profile" else "revoked from"
        console.print(f"{args.profile or 'SUIVI_FLUX'} {verb} {args.login} on {args.siret}")
    elif action in ("create-technical-user", "create-token"):
        if action == "create-token":
            token = await client.create_token(args.login, kind=args.kind)
        else:
            token = await client.create_technical_user(args.login, args.siret)
        err.print(f"new token of {token.kind} user {token.login} (shown once; store it now):")
        print(token.token)
    elif action == "add-user":
        secret = await client.upsert_user(
            args.login, args.siret, name=args.name, role=args.role, issue_token=args.issue_token
        )
        console.print(f"{args.login} is {args.role} of {args.siret}")
        if secret:
            err.print("new token (shown once):")
            print(secret)
    elif action == "partner":
        keys = [p.read_text().strip() for p in args.key_file]
        await client.upsert_partner(args.code, args.siret, public_keys=keys, status_files=args.status_files)
        console.print(f"partner {args.code} of {args.siret} saved with {len(keys)} key(s)")
    elif action == "set-rule":
        await client.set_rejection_rule(args.code, args.syntax, args.rule)
        console.print(f"{args.code}: {args.syntax} flows follow {args.rule} rejection")
    elif action == "reprocess":
        flow = await client.reprocess_flow(args.flow_number, args.action, detail=args.detail)
        console.print(f"{flow.flow_number} is now {out.status_text(flow.status)} ({flow.status_code})")
    elif action == "rejects":
        rejects = await client.list_rejects(issuer_sirets=args.issuer, day_from=args.day_from, day_to=args.day_to)
        if args.json:
            console.print_json(out.to_json(rejects))
            return 0
        table = Table(title=f"{len(rejects)} invoice(s) not integrated")
        for name in ("day", "issuer", "flow number", "invoice", "reason"):
            table.add_column(name)
        for r in rejects:
            day = r.deposited_at.date().isoformat() if r.deposited_at else ""
            table.add_row(day, r.issuer_siret, r.flow_number, r.invoice_number or r.document, escape(r.reason))
        console.print(table)
    elif action == "structures":
        table = Table(title="structures")
        for name in ("siret", "name", "provider", "services"):
            table.add_column(name)
        for s in await client.list_structures():
            table.add_row(s.siret, s.name, "yes" if s.is_provider else "", ", ".join(s.services))
        console.print(table)
    return 0
