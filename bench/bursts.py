"""What this machine charges for work done in short bursts: the same small piece of work (four rows written
to SQLite in one transaction, with JSON in and out, ~0.5 ms: the shape of a pump's turn) run back to back,
then with a sleep before each run, as the engine's pump does its turns between the checks' replies.

The CPU each run takes is measured on its own thread (``time.thread_time``), so the sleeps are not
counted; sleep lengths take turns within each round, and each line gives the median of the rounds with
the ratio to back to back measured in the same round. Nothing of fluxdepot runs here: the figures are the
machine's, the baseline for reading ``bench.pipeline``'s (c) against (c0) and (c1).

    .venv/bin/python -m bench.bursts [--rounds 5] [--runs 600]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

SLEEPS_MS = (0, 1, 3, 8)
_DOC = {"lines": [{"id": i, "name": str(i) * 5} for i in range(60)]}


class Burst:
    """One burst: a write transaction of four rows on a WAL database (``synchronous=NORMAL``, as the pump's)."""

    def __init__(self, folder: Path) -> None:
        self.db = sqlite3.connect(folder / "bursts.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v TEXT)")
        self.db.execute("CREATE INDEX t_k ON t (k)")
        self.n = 0

    def run(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        for _ in range(4):
            self.n += 1
            key = f"k{self.n % 997}"
            self.db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (key, json.dumps(_DOC)))
            self.db.execute("SELECT count(*) FROM t WHERE k = ?", (key,)).fetchone()
            json.loads(json.dumps(_DOC))
        self.db.execute("COMMIT")

    def cpu_ms(self, sleep_ms: int, runs: int) -> float:
        """Median CPU ms of ``runs`` bursts, each after ``sleep_ms`` asleep."""
        spent = []
        for _ in range(runs):
            if sleep_ms:
                time.sleep(sleep_ms / 1000)
            started = time.thread_time()
            self.run()
            spent.append(time.thread_time() - started)
        return statistics.median(spent) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=600, help="bursts per sleep length and round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fluxdepot-bench-bursts-") as folder:
        burst = Burst(Path(folder))
        burst.cpu_ms(0, 200)  # warm
        rounds = [{ms: burst.cpu_ms(ms, args.runs) for ms in SLEEPS_MS} for _ in range(max(1, args.rounds))]
        burst.db.close()
    for ms in SLEEPS_MS:
        spent = [r[ms] for r in rounds]
        ratios = [r[ms] / r[0] for r in rounds]
        label = "back to back" if ms == 0 else f"{ms} ms asleep before each"
        print(
            f"{label:<26} {statistics.median(spent):.3f} ms of CPU per burst ({min(spent):.3f}-{max(spent):.3f}); "
            f"{statistics.median(ratios):.2f}x back to back ({min(ratios):.2f}-{max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
