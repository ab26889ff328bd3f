"""The report's charts as inline SVG (matplotlib, no pyplot state, no external resources).

Each chart gets its own ``svg.hashsalt`` so element ids of different charts never collide when
several SVGs share one HTML document.
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
from matplotlib.figure import Figure

from epcwatch.savings.models import FittedModel, Frequency, Observations

INK = "#1f2d3d"
BLUE = "#1f6fb2"
ORANGE = "#d9822b"
GREEN = "#2e8b57"
GREY = "#8a96a3"
RC: Any = {
    "font.size": 9,
    "axes.edgecolor": "#c5ccd3",
    "axes.labelcolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6eaee",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
}


def _svg(fig: Figure, name: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({**RC, "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # responsive width inside the page, aspect kept by the viewBox
    return re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r'<svg\1 width="100%"', text, count=1)


def fit_chart(baseline: pd.DataFrame, model: FittedModel, unit: str = "kWh") -> str:
    """Baseline days: energy vs temperature, working and non-working days, with the model."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(9.0, 3.8))
        ax = fig.subplots()
        ok = np.isfinite(baseline["energy"]) & np.isfinite(baseline["temperature"])
        b = baseline[ok]
        nw = b["nonworking"].to_numpy(dtype=float) > 0.5
        ax.scatter(b["temperature"][~nw], b["energy"][~nw], s=9, color=BLUE, alpha=0.6, label="working days")
        if nw.any():
            ax.scatter(
                b["temperature"][nw], b["energy"][nw], s=9, color=GREY, alpha=0.6, label="non-working days"
            )
        grid = np.linspace(float(b["temperature"].min()), float(b["temperature"].max()), 200)
        for flag, color, label in ((0.0, BLUE, "model, working"), (1.0, INK, "model, non-working")):
            if flag and not model.day_type:
                continue
            # named variables (occupancy, production) at their baseline means
            names = tuple(str(v) for v in model.extra.get("variables", ()))
            means = [float(np.nanmean(b[v])) if v in b else 0.0 for v in names]
            obs = Observations(
                energy=np.full(len(grid), np.nan),
                temp=grid,
                frequency=Frequency.DAILY,
                nonworking=np.full(len(grid), flag),
                extra=np.tile(np.asarray(means, dtype=np.float64), (len(grid), 1)),
                extra_names=names,
            )
            ax.plot(grid, model.predict(obs), color=color if flag else ORANGE, lw=2, label=label)
        ax.set_xlabel("daily mean outdoor temperature (°C)")
        ax.set_ylabel(f"daily energy ({unit})")
        ax.legend(frameon=False, loc="upper center", ncol=4, fontsize=8)
    return _svg(fig, "fit")


def timeline_chart(daily: pd.DataFrame, unit: str = "kWh") -> str:
    """Actual vs adjusted baseline per day, with 7-day means."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(9.0, 3.4))
        ax = fig.subplots()
        d = daily.set_index("date")
        base = d["adjusted_baseline"] + d["adjustment"].fillna(0.0)
        ax.plot(d.index, base, color=ORANGE, lw=0.6, alpha=0.35)
        ax.plot(d.index, d["actual"], color=BLUE, lw=0.6, alpha=0.35)
        ax.plot(
            d.index, base.rolling(7, min_periods=4).mean(), color=ORANGE, lw=1.8, label="adjusted baseline"
        )
        ax.plot(d.index, d["actual"].rolling(7, min_periods=4).mean(), color=BLUE, lw=1.8, label="actual")
        ax.fill_between(
            d.index,
            d["actual"].rolling(7, min_periods=4).mean(),
            base.rolling(7, min_periods=4).mean(),
            color=GREEN,
            alpha=0.12,
            label="savings",
        )
        ax.set_ylabel(f"daily energy ({unit})")
        ax.legend(frameon=False, loc="upper center", ncol=3, fontsize=8)
        fig.autofmt_xdate()
    return _svg(fig, "timeline")


def cumulative_chart(daily: pd.DataFrame, band90: np.ndarray, unit: str = "kWh") -> str:
    """Cumulative savings with its 90 % band, against the pro-rated guarantee."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(9.0, 3.4))
        ax = fig.subplots()
        d = daily
        cum = d["cumulative_savings"].to_numpy(dtype=float)
        ax.fill_between(
            d["date"], cum - band90, cum + band90, color=GREEN, alpha=0.15, label="90 % uncertainty"
        )
        ax.plot(d["date"], cum, color=GREEN, lw=2, label="cumulative savings")
        if float(d["guaranteed_cumulative"].max()) > 0:
            ax.plot(
                d["date"],
                d["guaranteed_cumulative"],
                color=INK,
                lw=1.4,
                ls="--",
                label="guarantee (pro rata)",
            )
        ax.set_ylabel(f"cumulative savings ({unit})")
        ax.legend(frameon=False, loc="upper left", fontsize=8)
        fig.autofmt_xdate()
    return _svg(fig, "cumulative")
