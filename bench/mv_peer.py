"""M&V peer benchmark: epcwatch against opendsm (OpenEEmeter) on buildings with known savings.

Run: .venv/bin/python bench/mv_peer.py [--replicates 30] [--peer-replicates 3] [--no-peer]
     .venv/bin/python bench/mv_peer.py --data DIR      (cases from DIR/cases.json instead)

Synthetic buildings (``epcwatch.savings.synthetic.building``): heating and/or cooling on a
lagged temperature (thermal mass), occupancy on China's working days (holidays and make-up
days), AR(1) noise at the data's frequency, missing days; daily and hourly data; a 2023 baseline
and a 2024 reporting year with 15 % true savings. The truth is Σ(counterfactual − energy) over
the reporting periods with energy (the same periods both engines sum over).

Per case it prints each engine's savings error (mean signed and mean absolute, % of the true
savings) on the replicates both engines ran, and the share of all replicates in which
epcwatch's two-sided 68 % and 90 % bands contain the truth.

opendsm is never a dependency of epcwatch: it is installed into its own virtualenv
(~/.cache/epcwatch-bench/opendsm-venv, ``pip install opendsm "multimethod<2"``; multimethod 2
breaks scikit-fda, which opendsm imports) and called through ``bench/opendsm_driver.py`` in a
subprocess. Its first daily fit compiles numba code (a few minutes, once per run).

``--data DIR``: DIR/cases.json lists ``{"name", "frequency", "csv", "baseline": [start, end],
"reporting": [start, end]}``; each CSV has ``timestamp,energy,temperature,counterfactual``;
entries with the same name are replicates of one case.
"""

from __future__ import annotations

import os

# one BLAS thread: on a shared 2-core machine OpenBLAS's own threads make small solves ~20× slower
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from epcwatch.savings import synthetic  # noqa: E402
from epcwatch.savings.csvfit import fit_csv  # noqa: E402
from epcwatch.savings.engine import Period  # noqa: E402
from epcwatch.savings.errors import SavingsError  # noqa: E402
from epcwatch.savings.models import ModelError  # noqa: E402

HERE = Path(__file__).resolve().parent
VENV = Path.home() / ".cache" / "epcwatch-bench" / "opendsm-venv"
BASELINE, REPORTING = ("2023-01-01", "2023-12-31"), ("2024-01-01", "2024-12-31")
TZ = "Asia/Shanghai"

#: name, frequency, building() keyword arguments
CASES: list[tuple[str, str, dict[str, float]]] = [
    ("daily heat+cool ρ=0", "daily", {"rho": 0.0}),
    ("daily heat+cool lag24h ρ=0.5", "daily", {"rho": 0.5, "lag_hours": 24}),
    (
        "daily cooling lag12h ρ=0.8",
        "daily",
        {"rho": 0.8, "heating": 0.0, "lag_hours": 12, "climate_mean": 21},
    ),
    ("daily heating ρ=0.9", "daily", {"rho": 0.9, "cooling": 0.0, "climate_mean": 10}),
    ("daily constant load ρ=0.5", "daily", {"rho": 0.5, "heating": 0.0, "cooling": 0.0}),
    ("hourly heat+cool lag6h ρ=0.5", "hourly", {"rho": 0.5, "lag_hours": 6}),
    (
        "hourly cooling lag12h ρ=0.9",
        "hourly",
        {"rho": 0.9, "heating": 0.0, "lag_hours": 12, "climate_mean": 21},
    ),
    (
        "hourly heating lag24h ρ=0.8",
        "hourly",
        {"rho": 0.8, "cooling": 0.0, "lag_hours": 24, "climate_mean": 10},
    ),
]


@dataclass
class Replicate:
    csv: Path
    frequency: str
    baseline: tuple[str, str]
    reporting: tuple[str, str]
    truth: float = math.nan
    epc: float = math.nan
    u68: float = math.nan
    u90: float = math.nan
    peer: float | None = None
    note: str = ""


@dataclass
class Case:
    name: str
    frequency: str
    reps: list[Replicate] = field(default_factory=list)


def truth_of(frame: pd.DataFrame, key: str, reporting: tuple[str, str]) -> float:
    t = pd.to_datetime(frame[key])
    rep = frame[(t >= reporting[0]) & (t < pd.Timestamp(reporting[1]) + pd.Timedelta(days=1))]
    ok = rep["energy"].notna()
    return float((rep["counterfactual"] - rep["energy"])[ok].sum())


def synthetic_cases(replicates: int, tmp: Path, only: str | None) -> list[Case]:
    cases = []
    for i, (name, freq, kw) in enumerate(CASES):
        if only and only not in name:
            continue
        case = Case(name, freq)
        for r in range(replicates):
            frame = synthetic.building(seed=1000 * i + r, frequency=freq, noise_share=0.05, **kw)
            key = "date" if freq == "daily" else "timestamp"
            path = tmp / f"case{i}_{r}.csv"
            synthetic.to_csv(frame, str(path), daily_rows=freq == "daily")
            rep = Replicate(path, freq, BASELINE, REPORTING, truth=truth_of(frame, key, REPORTING))
            case.reps.append(rep)
        cases.append(case)
    return cases


def data_cases(directory: Path, only: str | None = None) -> list[Case]:
    entries = json.loads((directory / "cases.json").read_text())
    by_name: dict[str, Case] = {}
    for e in entries:
        if only and only not in e["name"]:
            continue
        path = Path(e["csv"]) if Path(e["csv"]).is_absolute() else directory / e["csv"]
        frame = pd.read_csv(path)
        rep = Replicate(path, e["frequency"], tuple(e["baseline"]), tuple(e["reporting"]))
        rep.truth = truth_of(frame, "timestamp", rep.reporting)
        by_name.setdefault(e["name"], Case(e["name"], e["frequency"])).reps.append(rep)
    return list(by_name.values())


HOURLY_MODEL = "towt"


def run_epcwatch(rep: Replicate) -> None:
    model = HOURLY_MODEL if rep.frequency == "hourly" else "auto"
    try:
        o = fit_csv(
            rep.csv,
            Period.parse("/".join(rep.baseline)),
            Period.parse("/".join(rep.reporting)),
            model=model,
            calendar="cn",
            allow_insufficient=True,
        )
    except (SavingsError, ModelError, ValueError) as exc:
        rep.note = f"epcwatch refused: {exc}"
        return
    s = o.summary
    rep.epc, rep.u68, rep.u90 = s.avoided_energy_use, s.uncertainty["68"], s.uncertainty["90"]


def ensure_peer() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "opendsm", "multimethod<2"], check=True)
    return py


def run_peer(reps: list[Replicate], tmp: Path) -> None:
    if not reps:
        return
    py = ensure_peer()
    jobs = [
        {
            "csv": str(r.csv),
            "frequency": r.frequency,
            "baseline": list(r.baseline),
            "reporting": list(r.reporting),
            "timezone": TZ,
        }
        for r in reps
    ]
    jf, of = tmp / "peer_jobs.json", tmp / "peer_out.json"
    jf.write_text(json.dumps(jobs))
    subprocess.run(
        [str(py), str(HERE / "opendsm_driver.py"), str(jf), str(of)], check=True, stderr=subprocess.DEVNULL
    )
    for r, res in zip(reps, json.loads(of.read_text()), strict=True):
        r.peer = res.get("savings")
        if res.get("error"):
            r.note = f"opendsm failed: {res['error']}"


def peer_from(cases: list[Case], path: Path) -> int:
    """opendsm's savings from an earlier run's JSON, matched by case name and replicate order
    (the data are seeded, so the same replicate is the same building); the truths must agree.
    Returns the number of leading replicates per case that have a peer result."""
    earlier: dict[str, list[dict[str, Any]]] = {}
    for row in json.loads(path.read_text())["replicates"]:
        earlier.setdefault(row["case"], []).append(row)
    k = math.inf
    for c in cases:
        rows = earlier.get(c.name, [])
        have = 0
        for r, row in zip(c.reps, rows, strict=False):
            if row.get("opendsm") is None:
                break
            if not math.isclose(row["truth"], r.truth, rel_tol=1e-9):
                raise SystemExit(f"{path}: case {c.name!r} has other data ({row['truth']} vs {r.truth})")
            r.peer = row["opendsm"]
            have += 1
        k = min(k, have)
    return int(k) if math.isfinite(k) else 0


def pct(x: float, truth: float) -> float:
    return 100.0 * (x - truth) / abs(truth) if truth else math.nan


def summarise(cases: list[Case], peer_k: int) -> dict[str, Any]:
    rows = []
    for c in cases:
        done = [r for r in c.reps if math.isfinite(r.epc)]
        both = [r for r in c.reps[:peer_k] if math.isfinite(r.epc) and r.peer is not None]
        e_all = [pct(r.epc, r.truth) for r in done]
        cov68 = float(np.mean([abs(r.epc - r.truth) <= r.u68 for r in done])) if done else math.nan
        cov90 = float(np.mean([abs(r.epc - r.truth) <= r.u90 for r in done])) if done else math.nan
        rows.append(
            {
                "case": c.name,
                "frequency": c.frequency,
                "replicates": len(done),
                "truth": float(np.mean([r.truth for r in c.reps])),
                "epc_abs_err_all": float(np.mean(np.abs(e_all))) if e_all else math.nan,
                "epc_err_all": float(np.mean(e_all)) if e_all else math.nan,
                "common": len(both),
                "epc_abs_err": float(np.mean([abs(pct(r.epc, r.truth)) for r in both])) if both else math.nan,
                "peer_abs_err": float(np.mean([abs(pct(r.peer or 0.0, r.truth)) for r in both]))
                if both
                else math.nan,
                "cov68": cov68,
                "cov90": cov90,
                "refused": sum(1 for r in c.reps if not math.isfinite(r.epc)),
            }
        )
    return {"rows": rows}


def print_table(summary: dict[str, Any]) -> None:
    rows = summary["rows"]
    print(
        f"{'case':34s} {'truth kWh':>10s} {'n':>3s} {'epc |err|%':>10s} {'epc err%':>9s} "
        f"{'k':>2s} {'epc|e|%k':>9s} {'opendsm|e|%k':>12s} {'cov68':>6s} {'cov90':>6s}"
    )
    for r in rows:
        print(
            f"{r['case']:34s} {r['truth']:10,.0f} {r['replicates']:3d} {r['epc_abs_err_all']:10.2f} "
            f"{r['epc_err_all']:9.2f} {r['common']:2d} {r['epc_abs_err']:9.2f} {r['peer_abs_err']:12.2f} "
            f"{100 * r['cov68']:5.0f}% {100 * r['cov90']:5.0f}%"
        )
    cmp = [r for r in rows if r["common"] > 0]
    if cmp:
        e = float(np.mean([r["epc_abs_err"] for r in cmp]))
        p = float(np.mean([r["peer_abs_err"] for r in cmp]))
        wins = sum(1 for r in cmp if r["epc_abs_err"] <= r["peer_abs_err"])
        print(
            f"mean |error| on common replicates: epcwatch {e:.2f} %, opendsm {p:.2f} %; "
            f"epcwatch at least as good on {wins}/{len(cmp)} cases"
        )
    for freq in ("daily", "hourly"):
        sel = [r for r in rows if r["frequency"] == freq and r["replicates"]]
        if sel:
            n = sum(r["replicates"] for r in sel)
            c68 = sum(r["cov68"] * r["replicates"] for r in sel) / n
            c90 = sum(r["cov90"] * r["replicates"] for r in sel) / n
            print(
                f"{freq}: coverage over {n} replicates: "
                f"68 % band {100 * c68:.1f} %, 90 % band {100 * c90:.1f} %"
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicates", type=int, default=30, help="Monte Carlo replicates per case (epcwatch)")
    ap.add_argument("--peer-replicates", type=int, default=3, help="replicates per case also run on opendsm")
    ap.add_argument("--no-peer", action="store_true", help="epcwatch only (accuracy and coverage)")
    ap.add_argument("--case", help="only cases whose name contains this text")
    ap.add_argument("--data", type=Path, help="directory with cases.json (instead of synthetic cases)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument(
        "--peer-from",
        type=Path,
        help="take opendsm's results from an earlier run's --json (same cases and seeds) instead of "
        "running it again (opendsm does not change when epcwatch does)",
    )
    ap.add_argument(
        "--hourly-model",
        default="towt",
        choices=("towt", "towt-monthly"),
        help="epcwatch's model on hourly cases (towt-monthly: month-segmented TOWT where it predicts "
        "held-out months better)",
    )
    args = ap.parse_args(argv)
    global HOURLY_MODEL
    HOURLY_MODEL = args.hourly_model
    tmp = Path(tempfile.mkdtemp(prefix="epcwatch-mvpeer-"))
    cases = (
        data_cases(args.data, args.case) if args.data else synthetic_cases(args.replicates, tmp, args.case)
    )
    t0 = time.perf_counter()
    for c in cases:
        for r in c.reps:
            run_epcwatch(r)
    t_epc = time.perf_counter() - t0
    k = 0 if args.no_peer else args.peer_replicates
    t0 = time.perf_counter()
    if args.peer_from:
        k = peer_from(cases, args.peer_from)
    else:
        run_peer([r for c in cases for r in c.reps[:k]], tmp)
    t_peer = time.perf_counter() - t0
    summary = summarise(cases, k)
    summary["seconds"] = {"epcwatch": t_epc, "opendsm": t_peer}
    summary["replicates"] = [
        {
            "case": c.name,
            "csv": str(r.csv),
            "truth": r.truth,
            "epcwatch": r.epc,
            "u68": r.u68,
            "u90": r.u90,
            "opendsm": r.peer,
            "note": r.note,
        }
        for c in cases
        for r in c.reps
    ]
    print_table(summary)
    print(f"time: epcwatch {t_epc:.0f} s for {sum(len(c.reps) for c in cases)} fits; opendsm {t_peer:.0f} s")
    for c in cases:
        for r in c.reps:
            if r.note:
                print(f"note [{c.name}] {r.csv.name}: {r.note}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
