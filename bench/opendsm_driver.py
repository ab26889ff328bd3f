"""Run opendsm (OpenEEmeter) on M&V benchmark cases; executed inside its own virtualenv.

Reads a JSON list of jobs from argv[1] and writes a JSON list of results to argv[2]. Each job:
``{"csv": path, "frequency": "daily"|"hourly", "baseline": [start, end], "reporting": [start,
end], "timezone": tz}`` (dates inclusive); the CSV has ``timestamp,energy,temperature`` (°C,
naive local time). Result: ``{"savings": Σ(predicted − observed) over reporting periods with
energy, "error": text or null, "seconds": fit time}``. Not part of epcwatch: never imported by it.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def _frame(job: dict) -> pd.DataFrame:
    df = pd.read_csv(job["csv"])
    ts = pd.to_datetime(df["timestamp"]).dt.tz_localize(
        job["timezone"], nonexistent="shift_forward", ambiguous="NaT"
    )
    out = pd.DataFrame(
        {
            "observed": df["energy"].to_numpy(float),
            "temperature": df["temperature"].to_numpy(float) * 1.8 + 32.0,
        },
        index=pd.DatetimeIndex(ts, name="datetime"),
    )
    return out[out.index.notna()]


def _period(df: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    lo = pd.Timestamp(start).tz_localize(df.index.tz)
    hi = (pd.Timestamp(end) + pd.Timedelta(days=1)).tz_localize(df.index.tz)
    return df[(df.index >= lo) & (df.index < hi)]


def run(job: dict) -> dict:
    from opendsm import eemeter as em

    t0 = time.perf_counter()
    df = _frame(job)
    base, rep = _period(df, *job["baseline"]), _period(df, *job["reporting"])
    if job["frequency"] == "hourly":
        bd = em.HourlyBaselineData(base, is_electricity_data=True)
        rd = em.HourlyReportingData(rep, is_electricity_data=True)
        model = em.HourlyModel().fit(bd, ignore_disqualification=True)
    else:
        bd = em.DailyBaselineData(base, is_electricity_data=True)
        rd = em.DailyReportingData(rep, is_electricity_data=True)
        model = em.DailyModel().fit(bd, ignore_disqualification=True)
    pred = model.predict(rd, ignore_disqualification=True)
    col = "predicted" if "predicted" in pred.columns else "predicted_usage"
    p = pred[col].reindex(rep.index) if len(pred) == len(rep) else pred[col]
    obs = rep["observed"].reindex(p.index)
    ok = np.isfinite(obs.to_numpy(float)) & np.isfinite(p.to_numpy(float))
    return {
        "savings": float((p.to_numpy(float) - obs.to_numpy(float))[ok].sum()),
        "periods": int(ok.sum()),
        "error": None,
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    out = []
    for job in jobs:
        try:
            out.append(run(job))
        except Exception as exc:
            out.append(
                {"savings": None, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            )
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
