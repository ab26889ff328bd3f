"""Command-line start-up: wall time of ``epcwatch --version`` and ``epcwatch --help`` in fresh
processes (target <= 0.2 s each), next to a bare ``python -c pass`` measured in the same run.

    .venv/bin/python bench/cli.py [--runs 10]

The best of N runs is reported (the machine is shared: the minimum is the least disturbed run),
with peak RSS of the child.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

EPCWATCH = str(Path(sys.executable).with_name("epcwatch"))


#: as installed: bytecode cached (a wheel install compiles it; some shells set
#: PYTHONDONTWRITEBYTECODE, which would make every start compile the sources again)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def best(argv: list[str], runs: int) -> tuple[float, float]:
    """Best wall time (s) of ``runs`` runs after a warm-up run, and the largest peak RSS (MiB)
    of a child so far."""
    times = []
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return min(times), rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    base, _ = best([sys.executable, "-c", "pass"], args.runs)
    print(f"python -c pass:      {base:.3f} s")
    worst = 0.0
    for what in (["--version"], ["--help"]):
        t, rss = best([EPCWATCH, *what], args.runs)
        worst = max(worst, t)
        print(f"epcwatch {what[0]:<10s} {t:.3f} s  (peak RSS so far {rss:.0f} MiB)")
    print(f"CLI start-up: {worst:.3f} s  (target <= 0.2 s: {'met' if worst <= 0.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
