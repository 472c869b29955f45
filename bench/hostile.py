"""Hostile inputs against the running daemon: what each costs, and what it costs everybody else.

Starts the real daemon (``fluxdepot serve``, demo configuration, a fresh SQLite data folder), then deposits
over gRPC, one after the other: a benign invoice (the baseline, measured in the same run), then each
hostile input of ``tests.hostile`` (built small on disk, declaring or expanding to GBs), then ten 29 MiB
deposits at once. For each it prints:

* the time from the deposit call to the flow's final status, and the report's error codes;
* the peak RSS of the daemon's own process and of its validation processes while it ran (sampled from
  ``/proc`` every 10 ms), and the daemon's RSS once it was over (what it kept);
* another user's latency meanwhile: a loop of ``GetFlow`` calls by the manager, p50 / p99 / max, and the
  p99 as a ratio to the benign baseline's.

Caps checked (issue 15): the daemon under 300 MB, another user's p99 under 100 ms.

    .venv/bin/python -m bench.hostile [--only NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.cpu import children
from clients.client import Client
from fluxdepot.v1 import flows_pb2 as pb
from fluxdepot.v1 import flows_pb2_grpc as pb_grpc
from tests import hostile
from tests.e2e.daemon import REPO, RunningDaemon, start_daemon

TECH, MANAGER = "demo-technical-token", "demo-manager-token"
DAEMON_CAP_MB = 300.0
P99_CAP_MS = 100.0
SAMPLE_S = 0.01
MB = 1024 * 1024


@dataclass
class Figures:
    name: str
    seconds: float
    codes: str
    daemon_peak_mb: float
    daemon_after_mb: float
    validation_peak_mb: float
    latencies_ms: list[float]

    def p(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def validation_pids(daemon_pid: int) -> list[int]:
    """The daemon's children running the validation pool (spawned multiprocessing workers)."""
    pids = []
    for child in children(daemon_pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
            pids.append(child)
    return pids


class Watcher:
    """Samples memory and times another user's GetFlow calls while a hostile input is processed."""

    def __init__(self, daemon: RunningDaemon, probe_flow: str) -> None:
        self.pid = daemon.proc.pid
        self.target = daemon.ready["grpc"]
        self.probe_flow = probe_flow
        self._stop = threading.Event()

    def __enter__(self) -> Watcher:
        self.daemon_peak = self.validation_peak = 0.0
        self.latencies: list[float] = []
        self._stop.clear()
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._probe)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.daemon_peak = max(self.daemon_peak, rss_mb(self.pid))
            for pid in validation_pids(self.pid):
                self.validation_peak = max(self.validation_peak, rss_mb(pid))
            time.sleep(SAMPLE_S)

    def _probe(self) -> None:
        with Client(self.target, token=MANAGER) as fd:
            while not self._stop.is_set():
                started = time.perf_counter()
                fd.get_flow(self.probe_flow)
                self.latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.005)


def deposit_and_wait(target: str, content: bytes, name: str) -> tuple[str, str]:
    """Deposit, follow to the final status; (status, error codes) — or the refusal's class and message."""
    with Client(target, token=TECH) as fd:
        try:
            receipt = fd.deposit(content, name)
        except Exception as exc:  # refused at the door: that is an outcome too
            return "refused", f"{type(exc).__name__}: {str(exc)[:60]}"
        flow = fd.wait_final(receipt.flow_number)
        report = fd.get_report(flow.flow_number)
        codes = {e.code for e in report.errors} | {e.code for i in report.invoices for e in i.errors}
        return flow.status, ",".join(sorted(codes)) or "-"


def measure(daemon: RunningDaemon, probe_flow: str, name: str, run: Callable[[], str]) -> Figures:
    with Watcher(daemon, probe_flow) as watch:
        time.sleep(0.3)  # a few probes before the input arrives
        started = time.monotonic()
        codes = run()
        seconds = time.monotonic() - started
        time.sleep(0.3)
    time.sleep(1.0)
    return Figures(
        name, seconds, codes, watch.daemon_peak, rss_mb(daemon.proc.pid), watch.validation_peak, watch.latencies
    )


def inputs(folder: Path) -> dict[str, tuple[bytes, str]]:
    """name → (content, file name): the hostile inputs, each built small."""
    built: dict[str, tuple[bytes, str]] = {}
    tar = hostile.huge_extended_header(folder / "pax.tar.gz")
    built["tar.gz pax header of 2 GiB"] = (tar.read_bytes(), "pax.tar.gz")
    zipped = hostile.zip_with_directory(folder / "many.zip", 300_000)
    built["zip of 300,000 entries"] = (zipped.read_bytes(), "many.zip")
    zeros = hostile.deflated_zeros(70 * MB)
    attachments = [hostile.Attachment(f"zeros{i}.bin", zeros) for i in range(30)]
    built["PDF, 30 x 70 MB attachments"] = (hostile.pdf_with_attachments(attachments), "attached.pdf")
    built["PDF, 1.4 M xref entries"] = (hostile.pdf_with_xref_entries(1_400_000), "xref.pdf")
    built["XML, 7 M elements"] = (b"<Invoice>" + b"<a/>" * 7_000_000 + b"</Invoice>", "wide.xml")
    built["XML, 100,000 deep"] = (b"<a>" * 100_000 + b"</a>" * 100_000, "deep.xml")
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="names (substrings) of the inputs to run")
    args = parser.parse_args()
    probe = (REPO / "config/demo/invoices/ok/ubl_service_code.xml").read_bytes()
    benign = invoice("FA-HOSTILE-BASE", 20 * 1024)
    with tempfile.TemporaryDirectory(prefix="fluxdepot-hostile-") as tmp:
        root = Path(tmp)
        built = inputs(root)
        daemon = start_daemon(root / "data")
        try:
            target = daemon.ready["grpc"]
            with Client(target, token=TECH) as fd:
                probe_flow = fd.deposit(probe, "probe.xml").flow_number
                fd.wait_final(probe_flow)
            rows = [measure(daemon, probe_flow, "baseline: a benign invoice", lambda: _codes(target, benign, "b.xml"))]
            for name, (content, file_name) in built.items():
                if args.only is None or any(o in name for o in args.only):
                    rows.append(measure(daemon, probe_flow, name, lambda c=content, f=file_name: _codes(target, c, f)))
            for streamed in (False, True):
                name = f"10 parallel 29 MiB, {'streamed' if streamed else 'unary'}"
                if args.only is None or any(o in name for o in args.only):
                    rows.append(measure(daemon, probe_flow, name, lambda s=streamed: _parallel(target, s, root)))
        finally:
            daemon.signal(15)
            daemon.wait(60)
    _print(rows)


def _codes(target: str, content: bytes, name: str) -> str:
    status, codes = deposit_and_wait(target, content, name)
    return f"{status} {codes}"


def invoice(number: str, size: int) -> bytes:
    """A real invoice padded with an XML comment to ``size`` bytes: stored and checked like any other."""
    from tests.factory import DEMO_BUYER_SERVICE, DEMO_SUPPLIER, InvoiceSpec, ubl_invoice

    base = ubl_invoice(InvoiceSpec(number, DEMO_SUPPLIER, DEMO_BUYER_SERVICE, service_code="SERV-COMPTA"))
    block = b"<!--" + b"x" * (MB - 7) + b"-->"  # libxml2 refuses a single comment past 10 MB
    blocks, rest = divmod(size - len(base), len(block))
    return base + block * blocks + (b"<!--" + b"x" * (rest - 7) + b"-->" if rest >= 7 else b" " * rest)


def _parallel(target: str, streamed: bool, folder: Path) -> str:
    """Ten 29 MiB deposits at once, as ``Deposit`` calls or streamed from files (``DepositStream``)."""
    tag = "S" if streamed else "U"
    paths = []
    for i in range(10):
        paths.append(folder / f"big{tag}{i}.xml")
        paths[-1].write_bytes(invoice(f"FA-BIG-{tag}{i}", 29 * MB))

    def one(path: Path) -> str:
        if not streamed:  # the raw unary call, as a client other than ours may send it
            return _unary(target, path)
        with Client(target, token=TECH) as fd:
            receipt = fd.deposit_file(path)  # past 1 MiB: DepositStream
            return fd.wait_final(receipt.flow_number).status

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(one, paths))
    return ",".join(sorted(set(statuses)))


def _unary(target: str, path: Path) -> str:
    options = [("grpc.max_send_message_length", 64 * MB)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = pb_grpc.FlowServiceStub(channel)
        request = pb.DepositRequest(file_name=path.name, content=path.read_bytes())
        try:
            stub.Deposit(request, metadata=(("authorization", f"Bearer {TECH}"),), timeout=120)
        except grpc.RpcError as exc:
            return f"refused {exc.code().name}"  # type: ignore[attr-defined]
    return "accepted"


def _print(rows: list[Figures]) -> None:
    base_p99 = rows[0].p(0.99)
    print(
        f"{'input':<32} {'to final':>9} {'daemon peak':>11} {'kept':>7} {'validation':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p99/base':>8}  outcome"
    )
    for r in rows:
        over = []
        if r.daemon_peak_mb > DAEMON_CAP_MB:
            over.append(f"daemon over {DAEMON_CAP_MB:.0f} MB")
        if r.p(0.99) > P99_CAP_MS:
            over.append(f"p99 over {P99_CAP_MS:.0f} ms")
        print(
            f"{r.name:<32} {r.seconds:>8.2f}s {r.daemon_peak_mb:>9.0f}MB {r.daemon_after_mb:>5.0f}MB "
            f"{r.validation_peak_mb:>8.0f}MB {r.p(0.5):>7.1f} {r.p(0.99):>7.1f} "
            f"{max(r.latencies_ms, default=float('nan')):>7.1f} {r.p(0.99) / base_p99:>8.2f}  {r.codes}"
            + (f"  [{'; '.join(over)}]" if over else "")
        )
    print(
        f"caps: daemon peak <= {DAEMON_CAP_MB:.0f} MB, another user's p99 <= {P99_CAP_MS:.0f} ms "
        f"({len(rows[0].latencies_ms)} baseline probes, median {statistics.median(rows[0].latencies_ms):.1f} ms)"
    )


if __name__ == "__main__":
    main()
