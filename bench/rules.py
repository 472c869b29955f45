"""Rules per invoice: the CEN EN 16931 XSLTs as the engine runs them (saxonche) beside Saxon-HE on the JVM.

For one UBL and one CII corpus invoice, ours is ``engine.validation.rules.run_schematron`` (Saxon parses the
text, the guards read the lxml tree the worker already holds for the XSD, the compiled stylesheet runs, the
failed asserts are read back), timed per call in CPU time after a warm-up. The JVM column is the same
official XSLT file run by Debian's Saxon-HE 9.9 (``libsaxonhe-java``, the engine JVM validators such as
KoSIT's use) through a small s9api harness compiled here with ``javac``: parse the bytes, transform,
serialise the SVRL, per invoice, after its own warm-up (JIT); its CPU time is the whole JVM process's (JIT
and GC threads included) divided by the invoices. Rounds alternate ours and the JVM's on a shared machine;
medians of the rounds are printed.

Per core: both sides also run pinned to one CPU (``sched_setaffinity``), timed by the wall clock over the
whole loop, so the JVM's JIT and GC threads share that core as they would on a loaded server: the invoices a
core checks per second, the framing of issue 20 ("checks more invoices per core"). The JVM is a benchmark
baseline only, never a dependency of the product: without ``java``/``javac`` or the jar the column is
skipped with a note.

    .venv/bin/python -m bench.rules [--rounds 3] [--count 300]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from engine.formats import xmlparse
from engine.validation import rules
from engine.validation.artefacts import Artefact, location
from tests.corpus import CORPUS

SAXON_JAR = Path("/usr/share/java/Saxon-HE.jar")
CASES = (
    ("UBL", "ubl/akretion__ubl-21-extended-ctc-fr.xml", Artefact.EN16931_UBL_XSLT),
    ("CII", "cii/zcorpus__EN16931_Miete.cii.xml", Artefact.EN16931_CII_XSLT),
)
_HARNESS = """
import java.io.*;
import java.lang.management.ManagementFactory;
import java.nio.file.*;
import java.util.Arrays;
import javax.xml.transform.stream.StreamSource;
import net.sf.saxon.s9api.*;

public class RulesBench {
    public static void main(String[] args) throws Exception {
        Processor processor = new Processor(false);
        XsltExecutable executable = processor.newXsltCompiler().compile(new StreamSource(new File(args[0])));
        byte[] data = Files.readAllBytes(Paths.get(args[1]));
        int warm = Integer.parseInt(args[2]), n = Integer.parseInt(args[3]);
        com.sun.management.OperatingSystemMXBean os =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        DocumentBuilder builder = processor.newDocumentBuilder();
        long[] thread = new long[n];
        long processCpu = 0, wall = 0;
        for (int i = 0; i < warm + n; i++) {
            if (i == warm) { processCpu = os.getProcessCpuTime(); wall = System.nanoTime(); }
            long t = ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
            XdmNode doc = builder.build(new StreamSource(new ByteArrayInputStream(data)));
            XsltTransformer transformer = executable.load();
            transformer.setInitialContextNode(doc);
            StringWriter svrl = new StringWriter();
            transformer.setDestination(processor.newSerializer(svrl));
            transformer.transform();
            if (svrl.toString().isEmpty()) throw new IllegalStateException("no SVRL");
            if (i >= warm) thread[i - warm] = ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() - t;
        }
        processCpu = os.getProcessCpuTime() - processCpu;
        wall = System.nanoTime() - wall;
        Arrays.sort(thread);
        System.out.println((thread[n / 2] / 1e6) + " " + (processCpu / 1e6 / n) + " " + (wall / 1e6 / n));
    }
}
"""


def ours(artefact: Artefact, text: str, count: int) -> tuple[float, float]:
    """(median, mean) CPU ms per invoice of ``run_schematron``, after a warm-up."""
    tree = xmlparse.parse(text.encode(), "bench")  # the worker parses it once per flow, for the XSD
    for _ in range(max(20, count // 10)):
        rules.run_schematron(artefact, text, None, tree)
    samples = []
    for _ in range(count):
        started = time.process_time()
        rules.run_schematron(artefact, text, None, tree)
        samples.append(time.process_time() - started)
    return statistics.median(samples) * 1000, statistics.fmean(samples) * 1000


def pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


def ours_wall(artefact: Artefact, text: str, count: int) -> float:
    """Wall ms per invoice of ``run_schematron`` over a warm loop (run in a process pinned to one core)."""
    tree = xmlparse.parse(text.encode(), "bench")
    for _ in range(max(20, count // 10)):
        rules.run_schematron(artefact, text, None, tree)
    started = time.perf_counter()
    for _ in range(count):
        rules.run_schematron(artefact, text, None, tree)
    return (time.perf_counter() - started) * 1000 / count


def ours_pinned(artefact: Artefact, text: str, count: int, core: int) -> float:
    with ProcessPoolExecutor(max_workers=1, initializer=pin, initargs=(core,)) as pool:
        return pool.submit(ours_wall, artefact, text, count).result()


def build_harness(folder: Path) -> str | None:
    """The compiled JVM harness's class path, or why there is none."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if java is None or javac is None or not SAXON_JAR.exists():
        return None
    (folder / "RulesBench.java").write_text(_HARNESS)
    subprocess.run([javac, "-cp", str(SAXON_JAR), "RulesBench.java"], cwd=folder, check=True, capture_output=True)
    return f"{SAXON_JAR}:{folder}"


def jvm(class_path: str, artefact: Artefact, path: Path, count: int, core: int | None = None) -> tuple[float, ...]:
    """(median thread CPU, process CPU per invoice, wall per invoice) in ms for the same XSLT on Saxon-HE,
    JIT warm; pinned to ``core`` when given."""
    warm = max(600, count)
    command = ["java", "-cp", class_path, "RulesBench", str(location(artefact, None)), str(path), str(warm), str(count)]
    pinning = None if core is None else functools.partial(pin, core)
    out = subprocess.run(command, check=True, capture_output=True, text=True, preexec_fn=pinning).stdout.split()
    return tuple(float(x) for x in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=300, help="invoices timed per round and side")
    parser.add_argument("--core", type=int, default=1, help="the CPU both sides are pinned to for the per-core figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fluxdepot-bench-rules-") as folder:
        class_path = build_harness(Path(folder))
        if class_path is None:
            print(f"no JVM column: java, javac or {SAXON_JAR} missing (apt-get install default-jdk libsaxonhe-java)")
        for label, name, artefact in CASES:
            path = CORPUS / name
            text = path.read_bytes().decode("utf-8-sig")
            rules.warm_up(artefact)
            mine: list[tuple[float, float]] = []
            theirs: list[tuple[float, ...]] = []
            mine_pinned: list[float] = []
            theirs_pinned: list[float] = []
            for _ in range(args.rounds):  # alternate, so both sides see the same machine load
                mine.append(ours(artefact, text, args.count))
                mine_pinned.append(ours_pinned(artefact, text, args.count, args.core))
                if class_path is not None:
                    theirs.append(jvm(class_path, artefact, path, args.count))
                    theirs_pinned.append(jvm(class_path, artefact, path, args.count, args.core)[2])
            median_ms = statistics.median(m for m, _ in mine)
            mean_ms = statistics.median(m for _, m in mine)
            hits = len(rules.run_schematron(artefact, text))
            print(f"{label} {path.name} ({path.stat().st_size // 1024} KB, {hits} asserts fired)")
            print(f"  ours   saxonche in-process: {median_ms:6.2f} ms median, {mean_ms:6.2f} ms mean CPU per invoice")
            if theirs:
                thread_ms = statistics.median(t[0] for t in theirs)
                process_ms = statistics.median(t[1] for t in theirs)
                print(f"  JVM    Saxon-HE 9.9 s9api:  {thread_ms:6.2f} ms median, {process_ms:6.2f} ms process CPU")
                print(
                    f"  ratio  ours/JVM: {median_ms / thread_ms:.2f} (medians), {mean_ms / process_ms:.2f} "
                    "(CPU per invoice, JIT and GC included); below 1 means we are faster"
                )
                mine_core, theirs_core = statistics.median(mine_pinned), statistics.median(theirs_pinned)
                print(
                    f"  one core, wall per invoice: ours {mine_core:.2f} ms ({1000 / mine_core:.0f}/s), JVM "
                    f"{theirs_core:.2f} ms ({1000 / theirs_core:.0f}/s); ratio ours/JVM {mine_core / theirs_core:.2f}"
                )


if __name__ == "__main__":
    main()
