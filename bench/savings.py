"""Benchmark: baseline fit + savings for one year of hourly data (plus a reporting year).

Run: .venv/bin/python bench/savings.py

Measures, in the same run:
  cold   one `epcwatch savings fit --json` process per model (interpreter start, imports, CSV
         parsing, fit, savings), against the floor of starting Python and importing the stack;
  warm   in-process repeats of fit + savings on the already-parsed data, against the floor of
         one least-squares solve of the same size (TOWT's 8,784 × 180 design; the daily models'
         366-row grid searches).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from epcwatch.savings import synthetic
from epcwatch.savings.csvfit import fit_csv
from epcwatch.savings.engine import Period

BASE, REP = "2024-01-01/2024-12-31", "2025-01-01/2025-12-31"
EXE = str(Path(sys.executable).parent / "epcwatch")


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="epcwatch-bench-"))
    csv = tmp / "hourly.csv"
    frame = synthetic.hourly(seed=0)
    synthetic.to_csv(frame, str(csv))
    rows = len(frame)
    n_base = int((frame["timestamp"] < "2025-01-01").sum())
    print(
        f"data: {rows:,} hourly rows ({n_base:,} baseline + {rows - n_base:,} reporting hours), "
        f"{csv.stat().st_size / 1e6:.1f} MB CSV"
    )

    floor_cold = statistics.median(
        timed(
            lambda: subprocess.run(
                [sys.executable, "-c", "import numpy, scipy.stats, pandas, epcwatch.savings.engine"],
                check=True,
                cwd=tmp,  # not the checkout, whose epcwatch/ folder would shadow the installed package
            ),
            3,
        )
    )
    print(f"cold floor: python + numpy/scipy/pandas/epcwatch imports  {floor_cold:6.2f} s")
    for model in ("auto", "towt"):
        cold = statistics.median(
            timed(
                lambda m=model: subprocess.run(
                    [
                        EXE,
                        "savings",
                        "fit",
                        "--data",
                        str(csv),
                        "--baseline",
                        BASE,
                        "--reporting",
                        REP,
                        "--model",
                        m,
                        "--json",
                    ],
                    check=True,
                    capture_output=True,
                ),
                3,
            )
        )
        print(
            f"cold  fit --model {model:5s} (process, 3 runs median)      {cold:6.2f} s"
            f"  = {cold / floor_cold:4.1f}× floor"
        )

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


if __name__ == "__main__":
    main()
