"""Benchmark: baseline fit + savings for one year of hourly data (plus a reporting year).

Run: .venv/bin/python bench/savings.py [--runs 5]

Measures, in the same run:
  cold   one `epcwatch savings fit --json` process per model (interpreter start, imports, CSV
         parsing, fit, savings), against the floor of starting Python and importing the libraries
         the fit path needs (numpy, pandas, typer); target <= 1 s wall. Also `epcwatch --version`
         and `--help` (target <= 0.2 s; bench/cli.py measures them alone). Each child's wall time,
         CPU time (user + system) and peak RSS; the best and the median of N runs. The machine is
         shared: the CPU time is what a quiet machine's wall time would be, near enough (one
         thread of work), and the load average is printed before and after;
  warm   in-process repeats of fit + savings on the already-parsed data, against the floor of
         one least-squares solve of the same size (TOWT's 8,784 × 180 design; the daily models'
         366-row grid searches).

Children run without PYTHONDONTWRITEBYTECODE: an installed wheel has its bytecode compiled, and
a shell that sets the variable would make every start compile the sources again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# as the CLI does (cli.main): one BLAS thread unless set
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

BASE, REP = "2024-01-01/2024-12-31", "2025-01-01/2025-12-31"
EXE = str(Path(sys.executable).parent / "epcwatch")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def child(argv: list[str], cwd: Path) -> tuple[float, float, float]:
    """One fresh process: (wall s, CPU s user + system, peak RSS MiB), from its own rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def cold(label: str, argv: list[str], runs: int, cwd: Path, target: float | None = None) -> float:
    child(argv, cwd)  # warm-up: bytecode written, files in the page cache
    res = [child(argv, cwd) for _ in range(runs)]
    walls, cpus, rss = [r[0] for r in res], [r[1] for r in res], max(r[2] for r in res)
    verdict = ""
    if target is not None:
        verdict = f"  target <= {target:g} s: {'met' if min(walls) <= target else 'NOT met'} (best wall)"
    print(
        f"{label:44s} wall best {min(walls):5.2f} s  median {statistics.median(walls):5.2f} s  "
        f"CPU median {statistics.median(cpus):5.2f} s  peak RSS {rss:4.0f} MiB{verdict}"
    )
    return min(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    tmp = Path(tempfile.mkdtemp(prefix="epcwatch-bench-"))
    csv = tmp / "hourly.csv"
    # in a child: this process stays small until the cold runs are done (a forked child's peak
    # RSS starts from its parent's)
    make = f"from epcwatch.savings import synthetic; synthetic.to_csv(synthetic.hourly(seed=0), {str(csv)!r})"
    subprocess.run([sys.executable, "-c", make], check=True, cwd=tmp)
    stamps = [line.split(",", 1)[0] for line in csv.read_text().splitlines()[1:]]
    rows = len(stamps)
    n_base = sum(1 for ts in stamps if ts < "2025-01-01")
    print(
        f"data: {rows:,} hourly rows ({n_base:,} baseline + {rows - n_base:,} reporting hours), "
        f"{csv.stat().st_size / 1e6:.1f} MB CSV"
    )

    # cwd=tmp: not the checkout, whose epcwatch/ folder would shadow the installed package
    floor = [sys.executable, "-c", "import numpy, pandas, typer"]
    cold("cold floor: python + numpy, pandas, typer", floor, args.runs, tmp)
    for model in ("auto", "towt"):
        argv = [EXE, "savings", "fit", "--data", str(csv), "--baseline", BASE, "--reporting", REP]
        cold(f"cold  savings fit --model {model}", [*argv, "--model", model, "--json"], args.runs, tmp, 1.0)
    for flag in ("--version", "--help"):
        cold(f"cold  epcwatch {flag}", [EXE, flag], args.runs, tmp, 0.2)

    import numpy as np

    from epcwatch.savings.csvfit import fit_csv
    from epcwatch.savings.engine import Period

    b, r = Period.parse(BASE), Period.parse(REP)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8784, 180))
    y = rng.normal(size=8784)
    floor_warm = statistics.median(timed(lambda: np.linalg.lstsq(x, y, rcond=None), 10))
    print(f"warm floor: one lstsq 8784×180                            {floor_warm * 1e3:6.1f} ms")
    for model in ("auto", "towt"):
        ts = timed(lambda m=model: fit_csv(csv, b, r, model=m), 5)
        med = statistics.median(ts)
        print(
            f"warm  fit_csv model={model:5s} (5 runs, median)          {med * 1e3:6.0f} ms"
            f"  = {med / floor_warm:5.1f}× one lstsq   ({rows / med:,.0f} rows/s incl. CSV parse)"
        )
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
