"""``epcwatch savings report``: a contract's data in, report files and InfluxDB points out."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from epcwatch import __version__
from epcwatch.clock import Clock, SystemClock
from epcwatch.logs import fields
from epcwatch.savings import sufficiency
from epcwatch.savings.carriers import carrier_totals, contract_table
from epcwatch.savings.contract import Contract, CsvSeries, CsvWeather, resolve
from epcwatch.savings.engine import Outcome, Period, complete_days, daily_observations, period_warnings, run
from epcwatch.savings.errors import DataError
from epcwatch.savings.frozen import FrozenBaseline, freeze
from epcwatch.savings.influx import MODEL_NAMES, DailySource, model_line, savings_lines
from epcwatch.savings.models import FittedModel, Frequency, Observations
from epcwatch.savings.savings import guarantee, to_co2_tonnes, to_tce
from epcwatch.savings.sufficiency import DataWarning
from epcwatch.savings.tariff import Band, blended_price, savings_cost
from epcwatch.savings.verified import VerifiedShare
from epcwatch.savings.weather import load_normal_year

log = logging.getLogger("epcwatch.savings")

SAVINGS_FIELDS = (
    "actual",
    "adjusted_baseline",
    "savings",
    "cumulative_savings",
    "guaranteed_cumulative",
    "temperature",
)


@dataclass
class RunResult:
    contract: Contract
    outcome: Outcome
    baseline: pd.DataFrame
    daily: pd.DataFrame
    doc: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    points_written: int = 0


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _csv_daily_mean(
    path: Path, what: str, column: str, tz: str, *, lower: bool = False, fahrenheit: bool = False
) -> pd.DataFrame:
    """Daily mean of ``column`` of a CSV with ``timestamp`` (or ``date``): columns ``date`` and
    ``value``. Timestamps with a UTC offset are converted to ``tz``; naive ones are local time.
    ``lower``: column names are matched lower-cased; ``fahrenheit``: values converted to °C."""
    try:
        raw = pd.read_csv(path, comment="#", skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{what} CSV {path}: {exc}") from None
    if lower:
        raw.columns = [str(c).strip().lower() for c in raw.columns]
    tcol = "timestamp" if "timestamp" in raw.columns else "date"
    if tcol not in raw.columns or column not in raw.columns:
        raise DataError(f"{what} CSV {path}: needs columns timestamp (or date) and {column}")
    try:
        ts = pd.to_datetime(raw[tcol].astype(str), format="ISO8601", utc=False)
    except (ValueError, TypeError):  # mixed UTC offsets (a DST change)
        ts = pd.to_datetime(raw[tcol].astype(str), format="ISO8601", utc=True)
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert(tz).dt.tz_localize(None)
    value = pd.to_numeric(raw[column], errors="coerce")
    if fahrenheit:
        value = (value - 32.0) / 1.8
    df = pd.DataFrame({"date": ts.dt.normalize(), "value": value})
    return df.groupby("date")["value"].mean().reset_index()


def csv_temperature(spec: CsvWeather, contract_path: str | os.PathLike[str] | None, tz: str) -> pd.DataFrame:
    """Daily mean temperature from a CSV of ``timestamp``/``date`` and ``temperature``."""
    path = resolve(spec.path, contract_path)
    df = _csv_daily_mean(path, "weather", "temperature", tz, lower=True, fahrenheit=spec.unit == "F")
    return df.rename(columns={"value": "temperature"})


def csv_series(spec: CsvSeries, contract_path: str | os.PathLike[str] | None, tz: str) -> pd.DataFrame:
    """Daily mean of one column of a CSV with ``timestamp`` (or ``date``)."""
    return _csv_daily_mean(resolve(spec.path, contract_path), "variable", spec.column, tz)


def variable_frames(
    c: Contract, source: DailySource, contract_path: str | os.PathLike[str] | None, start: date, end: date
) -> list[pd.DataFrame]:
    """Each contract variable's daily means (columns ``date`` and the variable's name)."""
    out = []
    for v in c.variables:
        if v.influx is not None:
            spec = v.influx if v.influx.site else v.influx.model_copy(update={"site": c.site})
            d = source.daily_temperature(c.site, spec, start, end, c.timezone).rename(
                columns={"temperature": "value"}
            )
        else:
            assert v.csv is not None
            d = csv_series(v.csv, contract_path, c.timezone)
        out.append(d[["date", "value"]].rename(columns={"value": v.name}))
    return out


def _frame(
    energy: pd.DataFrame,
    temps: pd.DataFrame,
    period: Period,
    c: Contract,
    extras: list[pd.DataFrame] | None = None,
) -> pd.DataFrame:
    e = complete_days(energy[["date", "energy"]], period)
    t = complete_days(temps[["date", "temperature"]], period)
    df = e.merge(t, on="date", how="left")
    for x in extras or []:
        df = df.merge(x.assign(date=pd.to_datetime(x["date"])), on="date", how="left")
    df["nonworking"] = np.array(c.calendar.nonworking([d.date() for d in df["date"]]), dtype=float)
    return df


def _adjustments(c: Contract, days: list[date]) -> tuple[np.ndarray, np.ndarray]:
    amount = np.zeros(len(days))
    frac = np.zeros(len(days))
    for a in c.adjustments:
        inside = np.array([a.start <= d <= a.end for d in days])
        if a.amount_kwh is not None:
            amount[inside] += a.amount_kwh / ((a.end - a.start).days + 1)
        if a.fraction is not None:
            frac[inside] += a.fraction
    return amount, frac


def _normal_obs(c: Contract, contract_path: str | os.PathLike[str] | None) -> Observations | None:
    if c.normal_year is None:
        return None
    spec = c.normal_year
    if not spec.startswith("builtin:"):
        spec = str(resolve(spec, contract_path))
    try:
        temps = load_normal_year(spec)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    # the normal year is laid on the reporting year's calendar (for the day-type shift)
    days = [c.reporting.start + timedelta(days=i) for i in range(365)]
    return Observations(
        energy=np.full(365, np.nan),
        temp=temps,
        frequency=Frequency.DAILY,
        nonworking=np.array(c.calendar.nonworking(days), dtype=float),
    )


def _placebo(
    c: Contract,
    source: DailySource,
    *,
    contract_path: str | os.PathLike[str] | None,
    model: FittedModel,
    bd: pd.DataFrame,
    bp: Period,
    temps: pd.DataFrame,
) -> dict[str, Any] | None:
    """The placebo test where the source holds the year before the baseline: the chosen model
    form fitted on that year predicts the baseline year (true savings 0). None: no such year."""
    from epcwatch.savings.evidence import placebo

    prior = Period(bp.start - timedelta(days=365), bp.start - timedelta(days=1))
    pe = source.daily_energy(c.site, c.meters, prior.start, prior.end, c.timezone)
    if pe.empty or not np.isfinite(pe["energy"].to_numpy(dtype=float)).any():
        return None
    if c.weather.influx is not None:
        pt = source.daily_temperature(c.site, c.weather.influx, prior.start, prior.end, c.timezone)
    else:
        pt = temps
    names = tuple(v.name for v in c.variables)
    px = variable_frames(c, source, contract_path, prior.start, prior.end) if names else []
    return placebo(
        model, daily_observations(_frame(pe, pt, prior, c, px), names), daily_observations(bd, names)
    )


def compute(
    c: Contract, source: DailySource, contract_path: str | os.PathLike[str] | None = None
) -> RunResult:
    """Read the contract's data and compute everything (no files written)."""
    tz = c.timezone
    bp, rp = Period(c.baseline.start, c.baseline.end), Period(c.reporting.start, c.reporting.end)
    be = source.daily_energy(c.site, c.meters, bp.start, bp.end, tz)
    re_ = source.daily_energy(c.site, c.meters, rp.start, rp.end, tz)
    if c.weather.influx is not None:
        temps = source.daily_temperature(c.site, c.weather.influx, bp.start, rp.end, tz)
    else:
        assert c.weather.csv is not None
        temps = csv_temperature(c.weather.csv, contract_path, tz)
    if not np.isfinite(be["energy"].to_numpy(dtype=float)).any():
        sel = "; ".join(", ".join(f"{k}={v}" for k, v in m.tags().items()) for m in c.meters)
        raise DataError(
            f"no daily energy for site {c.site} meters [{sel}] in the baseline {bp} "
            f"(looked in energy_interval and raw counters)"
        )
    extras = variable_frames(c, source, contract_path, bp.start, rp.end)
    names = tuple(v.name for v in c.variables)
    bd, rd = _frame(be, temps, bp, c, extras), _frame(re_, temps, rp, c, extras)
    fb: FrozenBaseline | None = None
    current_bd = bd
    if c.frozen_baseline is not None:
        path = resolve(c.frozen_baseline, contract_path)
        try:
            fb = FrozenBaseline.from_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"frozen baseline {path}: {exc.strerror}") from None
        if fb.kind != "daily" or fb.baseline != str(bp):
            raise DataError(f"frozen baseline {path} holds {fb.kind} rows for {fb.baseline}, not daily {bp}")
        bd = fb.rows()
        if any(n not in bd.columns for n in names):
            raise DataError(f"frozen baseline {path} does not hold the contract's variables {list(names)}")
    warnings = period_warnings(bd, bp, "baseline") + period_warnings(rd, rp, "reporting")
    if c.allow_insufficient_baseline and sufficiency.disqualified(warnings):
        warnings.append(
            DataWarning(
                "epcwatch.sufficiency.overridden",
                "the baseline fails data sufficiency and is used because the contract says "
                "allow_insufficient_baseline: true",
            )
        )
    days = [d.date() for d in rd["date"]]
    amount, frac = _adjustments(c, days)
    day_type = {"auto": None, "on": True, "off": False}[c.model.day_type]
    groups = [
        (np.array([a.start <= d <= a.end for d in days]), a.uncertainty)
        for a in c.adjustments
        if a.uncertainty
    ]
    outcome = run(
        daily_observations(bd, names),
        daily_observations(rd, names),
        pd.DatetimeIndex(rd["date"]),
        warnings,
        model=c.model.type,
        day_type=day_type,
        allow_insufficient=c.allow_insufficient_baseline,
        adjustments=amount,
        adjustment_fractions=frac,
        # a normal year holds temperatures only: no normalised savings with named variables
        normal=_normal_obs(c, contract_path) if not names else None,
        adjustment_uncertainty=groups,
        baseline_labels=pd.DatetimeIndex(bd["date"]),
        frozen=fb.model if fb is not None else None,
    )
    prior_placebo = _placebo(
        c, source, contract_path=contract_path, model=outcome.model, bd=bd, bp=bp, temps=temps
    )
    if prior_placebo is not None:
        outcome.extra["evidence"]["placebo"] = prior_placebo
    s = outcome.series
    daily = pd.DataFrame(
        {
            "date": rd["date"],
            "temperature": rd["temperature"],
            "nonworking": rd["nonworking"].astype(bool),
            "actual": s.actual,
            "adjusted_baseline": s.adjusted_baseline,
            "adjustment": s.adjustments,
            "savings": s.savings,
            "cumulative_savings": s.cumulative,
        }
    )
    annual = c.guarantee.annual_kwh if c.guarantee else 0.0
    daily["guaranteed_cumulative"] = annual * np.cumsum(np.isfinite(s.savings)) / 365.0
    doc = outcome.to_dict()
    doc["frozen_baseline"] = fb.describe(current_bd) if fb is not None else {"loaded": False}
    doc["contract"] = json.loads(c.model_dump_json())
    doc["data"] = {
        "energy_source": be.attrs.get("source"),
        "devices": be.attrs.get("devices", []),
        "baseline_days": bp.days,
        "reporting_days": rp.days,
    }
    avoided = outcome.summary.avoided_energy_use
    if c.guarantee is not None:
        # pro-rated over the valid reporting days: the days the savings are counted on
        doc["guarantee"] = guarantee(
            c.guarantee.annual_kwh, outcome.summary.periods, outcome.summary
        ).to_dict()
    t = c.tariff
    if t.flat is not None:
        price = t.flat
    else:
        assert t.time_of_use is not None
        price = blended_price(
            [
                Band(b.name, b.price, b.share if b.share is not None else b.hours_count() / 24.0)
                for b in t.time_of_use
            ]
        )
    dc = t.demand_charge
    doc["cost"] = savings_cost(
        avoided,
        currency=t.currency,
        price=price,
        reporting_days=rp.days,
        demand_kw=dc.demand_reduction_kw if dc else 0.0,
        demand_price_per_kw_month=dc.price_per_kw_month if dc else 0.0,
        kwh_uncertainty=outcome.summary.uncertainty,
    ).to_dict()
    f = c.factors
    unc = outcome.summary.uncertainty
    doc["conversions"] = {
        "tce_basis": f.tce_basis,
        "kgce_per_kwh": f.tce_kgce_per_kwh,
        "tce": to_tce(avoided, f.tce_kgce_per_kwh),
        "tce_calorific": to_tce(avoided, f.tce_calorific_kgce_per_kwh),
        "tce_equal_value": (
            to_tce(avoided, f.tce_equal_value_kgce_per_kwh) if f.tce_equal_value_kgce_per_kwh else None
        ),
        "co2_kg_per_kwh": f.co2_kg_per_kwh,
        "co2_tonnes": to_co2_tonnes(avoided, f.co2_kg_per_kwh),
        # two-sided half-widths at 68/80/90 %, from the savings uncertainty (factors taken as exact)
        "tce_uncertainty": {k: to_tce(v, f.tce_kgce_per_kwh) for k, v in unc.items()},
        "co2_tonnes_uncertainty": {k: to_co2_tonnes(v, f.co2_kg_per_kwh) for k, v in unc.items()},
    }
    # the reporting period's consumption of the contract's meters per energy carrier, in tce
    doc["carriers"] = carrier_totals(
        {"electricity": (float(np.nansum(s.actual)), "kWh")},
        contract_table(f.tce_calorific_kgce_per_kwh, f.tce_equal_value_kgce_per_kwh, f.co2_kg_per_kwh),
        f.tce_basis,
    )
    doc["adjustments"] = [
        {
            **json.loads(a.model_dump_json()),
            "applied_kwh": float(np.nansum(s.adjustments[[a.start <= d <= a.end for d in days]])),
        }
        for a in c.adjustments
    ]
    return RunResult(contract=c, outcome=outcome, baseline=bd, daily=daily, doc=doc)


def model_fields(result: RunResult) -> dict[str, object]:
    """Fields of the ``savings_model`` point (docs/data-model.md) for the dashboards."""
    fr = result.outcome.baseline_fit
    st = fr.stats
    s = result.outcome.summary
    return {
        "model": MODEL_NAMES.get(fr.model.type, fr.model.type),
        "day_type": fr.model.day_type,
        "cv_rmse": st.cvrmse,
        "nmbe": st.nmbe,
        "r2": st.r2,
        "n_points": st.n,
        "n_params": st.p,
        "autocorrelation": st.autocorrelation,
        "fractional_uncertainty": 100.0 * s.fsu["68"],
        "savings_uncertainty": s.uncertainty["68"],
        "g14_pass": fr.verdict.passed,
    }


def run_contract(
    c: Contract,
    source: DailySource,
    out_dir: Path,
    *,
    write_back: bool = True,
    contract_path: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
    verified: VerifiedShare | None = None,
) -> RunResult:
    """Compute, write report.html/.json/.csv and model.json, and the ``savings`` points.
    ``verified``: the share of the energy on verified readings (docs/provenance.md), stated in the report."""
    from epcwatch.savings.report import render_html

    result = compute(c, source, contract_path)
    if verified is not None:
        from epcwatch.savings.verified import verified_doc

        result.doc["verified_readings"] = verified_doc(verified)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = (clock or SystemClock()).now()
    if not result.doc["frozen_baseline"].get("loaded"):
        # every report exports its baseline as a frozen baseline: sign it off by naming it in
        # the contract (frozen_baseline: baseline.json) and later reports reuse it unchanged
        fb = freeze(
            "daily",
            result.baseline,
            result.outcome.model,
            baseline=f"{c.baseline.start}/{c.baseline.end}",
            settings={"contract": c.id, "timezone": c.timezone},
            created=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            software_version=__version__,
            input_sha256=hashlib.sha256(
                result.baseline.to_csv(index=False, float_format="%.6f").encode()
            ).hexdigest(),
            statistics={
                "label": result.outcome.baseline_fit.label,
                **result.outcome.baseline_fit.stats.to_dict(),
            },
        )
        (out_dir / "baseline.json").write_text(fb.to_json(), encoding="utf-8")
        result.doc["frozen_baseline"] = {
            "loaded": False,
            "exported": "baseline.json",
            "sha256": fb.hash,
            "statement": "The baseline was fitted for this report and exported as baseline.json "
            f"(sha256 {fb.hash[:12]}…); name it in the contract to freeze it.",
        }
    files = {
        "json": out_dir / "report.json",
        "csv": out_dir / "report.csv",
        "html": out_dir / "report.html",
        "model": out_dir / "model.json",
    }
    files["json"].write_text(json.dumps(result.doc, indent=2, default=str))
    csv = result.daily.copy()
    csv["date"] = csv["date"].dt.strftime("%Y-%m-%d")
    csv.to_csv(files["csv"], index=False, float_format="%.3f")
    files["model"].write_text(json.dumps(result.outcome.model.to_dict(), indent=2))
    html = render_html(result, datetime.fromtimestamp(now, UTC), verified)
    files["html"].write_text(html, encoding="utf-8")
    result.files = files
    if write_back:
        lines = savings_lines(c.id, c.site, c.timezone, result.daily, SAVINGS_FIELDS)
        lines.append(model_line(c.id, c.site, c.timezone, c.reporting.end, model_fields(result)))
        source.write_lines(lines)
        result.points_written = len(lines)
    log.info(
        "report written",
        extra=fields(
            contract=c.id,
            out=str(out_dir),
            points=result.points_written,
            model=result.outcome.baseline_fit.label,
        ),
    )
    return result
