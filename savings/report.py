"""The M&V report as one self-contained HTML file (inline CSS and SVG, no scripts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from epcwatch import __version__
from epcwatch.savings import charts
from epcwatch.savings.savings import cumulative_uncertainty
from epcwatch.savings.selection import CRITERION
from epcwatch.savings.stats import CONFIDENCE_LEVELS, FSU_FACTOR, t_quantile

if TYPE_CHECKING:
    from epcwatch.savings.runner import RunResult
    from epcwatch.savings.verified import VerifiedShare

PARAM_LABELS = {
    "intercept": ("Base load (working day)", "kWh/day"),
    "slope": ("Temperature slope", "kWh/day/°C"),
    "heating_slope": ("Heating slope", "kWh/day/°C"),
    "cooling_slope": ("Cooling slope", "kWh/day/°C"),
    "hdd_slope": ("Heating degree-day slope", "kWh/°C·day"),
    "cdd_slope": ("Cooling degree-day slope", "kWh/°C·day"),
    "nonworking_shift": ("Non-working-day shift", "kWh/day"),
    "heating_change_point": ("Heating change point", "°C"),
    "cooling_change_point": ("Cooling change point", "°C"),
    "change_point": ("Change point", "°C"),
    "heating_balance_point": ("Heating balance point", "°C"),
    "cooling_balance_point": ("Cooling balance point", "°C"),
}
MODEL_NAMES = {
    "mean": "mean (constant)",
    "2p": "two-parameter (2P) linear",
    "3pc": "three-parameter cooling (3PC) change-point",
    "3ph": "three-parameter heating (3PH) change-point",
    "4p": "four-parameter (4P) change-point",
    "5p": "five-parameter (5P) change-point",
    "hdd_cdd": "HDD/CDD degree-day regression",
    "towt": "time-of-week-and-temperature (TOWT)",
    "towt-monthly": (
        "TOWT segmented by calendar month (CalTRACK hourly: one model a month, adjacent months weighted 0.5)"
    ),
}


def _num(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    text = f"{v:,.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # no "-0.000"


def _pval(v: float) -> str:
    return "< 0.0001" if v < 1e-4 else f"{v:.4f}"


def _pct(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * v:.{digits}f} %"


def share_text(v: float | None) -> str:
    """A share as ``100 %``, ``99.7 %`` (one decimal, none when whole); ``–`` when undefined."""
    if v is None:
        return "–"
    text = f"{math.floor(v * 1000 + 1e-9) / 10:.1f}"  # rounded down: 99.96 % is not 100 %
    return (text[:-2] if text.endswith(".0") else text) + " %"


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("epcwatch.savings", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["sharepct"] = share_text
    env.filters["pval"] = _pval
    return env


def cumulative_band(result: RunResult, confidence: float = 0.90) -> np.ndarray:
    """±U of cumulative savings after each reporting day (two-sided, the engine's method with
    the days so far)."""
    fr = result.outcome.baseline_fit
    rep = result.outcome.reporting_obs
    if fr.uncertainty is not None and rep is not None:
        valid = np.isfinite(result.outcome.series.savings)
        return cumulative_uncertainty(fr.model, fr.uncertainty, rep, valid, confidence)
    st = fr.stats
    d = result.daily
    valid = np.isfinite(d["savings"].to_numpy(dtype=float))
    base = (d["adjusted_baseline"].fillna(0.0) + d["adjustment"].fillna(0.0)).to_numpy(dtype=float)
    m = np.cumsum(valid)
    eb = np.cumsum(np.where(valid, base, 0.0))
    t = t_quantile(confidence, st.n_effective - st.p)
    cv = st.cvrmse / 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = t * FSU_FACTOR * cv * np.sqrt((st.n / st.n_effective) * (1 + 2 / st.n_effective) / m) * eb
    return np.asarray(np.where(m > 0, u, 0.0), dtype=float)


def _monthly(daily: pd.DataFrame) -> list[dict[str, Any]]:
    d = daily.copy()
    d["month"] = d["date"].dt.strftime("%Y-%m")
    rows = []
    cum = 0.0
    for month, g in d.groupby("month", sort=True):
        ok = np.isfinite(g["savings"])
        sav = float(g["savings"][ok].sum())
        cum += sav
        rows.append(
            {
                "month": month,
                "days": int(ok.sum()),
                "of_days": len(g),
                "temperature": float(g["temperature"].mean()),
                "baseline": float(g["adjusted_baseline"][ok].sum()),
                "adjustment": float(g["adjustment"][ok].sum()),
                "actual": float(g["actual"][ok].sum()),
                "savings": sav,
                "fraction": sav / float(g["adjusted_baseline"][ok].sum()) if ok.any() else math.nan,
                "cumulative": cum,
            }
        )
    return rows


def render_html(result: RunResult, generated: datetime, verified: VerifiedShare | None = None) -> str:
    c = result.contract
    o = result.outcome
    fr = o.baseline_fit
    doc = result.doc
    st = fr.stats
    coefs = [
        {
            **cf.to_dict(),
            "label": PARAM_LABELS.get(cf.name, (cf.name, ""))[0],
            "unit": PARAM_LABELS.get(cf.name, ("", ""))[1],
        }
        for cf in fr.coefficients
    ]
    nonlinear = [
        {
            "name": k,
            "value": v,
            "label": PARAM_LABELS.get(k, (k, ""))[0],
            "unit": PARAM_LABELS.get(k, ("", ""))[1],
        }
        for k, v in fr.model.nonlinear.items()
    ]
    s = o.summary
    dof = fr.uncertainty.dof if fr.uncertainty is not None else st.n_effective - st.p
    unc = [
        {
            "confidence": f"{round(cl * 100)} % (two-sided)",
            "t": (s.multipliers or {}).get(str(round(cl * 100))) or t_quantile(cl, dof),
            "absolute": s.uncertainty[str(round(cl * 100))],
            "fsu": s.fsu[str(round(cl * 100))],
        }
        for cl in CONFIDENCE_LEVELS
    ]
    band = cumulative_band(result)
    ctx = {
        "c": c,
        "doc": doc,
        "fr": fr,
        "st": st,
        "verdict": fr.verdict,
        "model_name": MODEL_NAMES.get(fr.model.type, fr.model.type)
        + (" with a non-working-day shift" if fr.model.day_type else ""),
        "coefs": coefs,
        "nonlinear": nonlinear,
        "candidates": o.selection.candidates,
        "criterion": CRITERION,
        "s": s,
        "unc": unc,
        "norm": o.normalised,
        "warnings": o.warnings,
        "monthly": _monthly(result.daily),
        "fit_svg": charts.fit_chart(result.baseline, fr.model),
        "timeline_svg": charts.timeline_chart(result.daily),
        "cumulative_svg": charts.cumulative_chart(result.daily, band),
        "band90_end": float(band[-1]) if len(band) else math.nan,
        "generated": generated.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "fsu68_ok": s.fsu.get("68", math.inf) < 0.5,
        "verified": verified,
    }
    return _env().get_template("report.html.j2").render(**ctx)
