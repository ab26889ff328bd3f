"""ASHRAE Guideline 14 statistics, coefficient t-statistics and savings uncertainty.

With n periods, p model parameters (change points included), y the measured and ŷ the
modelled energy, ȳ the mean of y:

    CV(RMSE) = 100·√(Σ(y−ŷ)²/(n−p)) / ȳ                     [%]
    NMBE     = 100·Σ(y−ŷ) / ((n−p)·ȳ)                         [%]
    R²       = 1 − Σ(y−ŷ)² / Σ(y−ȳ)²
    adj. R²  = 1 − (1−R²)·(n−1)/(n−p)

Fractional savings uncertainty (G14 Annex B, with the autocorrelation correction):

    ΔE/E = t·1.26·CV·√((n/n′)(1 + 2/n′)(1/m)) / F,   n′ = n(1−ρ)/(1+ρ)

ρ the lag-1 autocorrelation of the baseline residuals (taken as 0 when negative), m the number
of reporting periods, F the savings fraction, t Student's two-sided quantile with n′ − p degrees
of freedom.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sstats

from epcwatch.savings.models import Array, Frequency

#: ASHRAE Guideline 14 acceptance limits (CV(RMSE) %, |NMBE| %). G14 states limits for monthly
#: and hourly data only; daily data are interval data and are held to the hourly limits.
G14_LIMITS: dict[Frequency, tuple[float, float]] = {
    Frequency.MONTHLY: (15.0, 5.0),
    Frequency.DAILY: (30.0, 10.0),
    Frequency.HOURLY: (30.0, 10.0),
}
CONFIDENCE_LEVELS = (0.68, 0.80, 0.90)
FSU_FACTOR = 1.26


@dataclass(frozen=True)
class FitStats:
    """Goodness of fit of a model on n periods with p parameters (CV(RMSE), NMBE in %)."""

    n: int
    p: int
    r2: float
    adj_r2: float
    cvrmse: float
    nmbe: float
    rmse: float
    mean: float
    autocorrelation: float
    n_effective: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class G14Verdict:
    frequency: Frequency
    cvrmse_limit: float
    nmbe_limit: float
    cvrmse_pass: bool
    nmbe_pass: bool

    @property
    def passed(self) -> bool:
        return self.cvrmse_pass and self.nmbe_pass

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency.value,
            "cvrmse_limit": self.cvrmse_limit,
            "nmbe_limit": self.nmbe_limit,
            "cvrmse_pass": self.cvrmse_pass,
            "nmbe_pass": self.nmbe_pass,
            "pass": self.passed,
        }


@dataclass(frozen=True)
class Coefficient:
    name: str
    value: float
    std_error: float
    t: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lag1_autocorrelation(resid: Array) -> float:
    """ρ = Σ(eₜ−ē)(eₜ₋₁−ē) / Σ(eₜ−ē)² over consecutive residuals."""
    e = np.asarray(resid, dtype=np.float64)
    if len(e) < 3:
        return 0.0
    d = e - e.mean()
    den = float(d @ d)
    if den == 0.0:
        return 0.0
    return float(d[1:] @ d[:-1]) / den


def effective_n(n: int, rho: float) -> float:
    """n′ = n(1−ρ)/(1+ρ); no correction for negative ρ (it would claim more information)."""
    if rho <= 0.0:
        return float(n)
    return n * (1.0 - rho) / (1.0 + rho)


def fit_stats(y: Array, yhat: Array, p: int) -> FitStats:
    """G14 statistics of ``yhat`` against ``y`` (time order matters for ρ only)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= p:
        raise ValueError(f"{n} periods cannot support {p} parameters")
    resid = y - yhat
    sse = float(resid @ resid)
    ybar = float(y.mean())
    sst = float(((y - ybar) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else 0.0
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - p)
    rmse = math.sqrt(sse / (n - p))
    cv = 100.0 * rmse / ybar if ybar != 0 else math.inf
    nmbe = 100.0 * float(resid.sum()) / ((n - p) * ybar) if ybar != 0 else math.inf
    rho = lag1_autocorrelation(resid)
    return FitStats(
        n=n,
        p=p,
        r2=r2,
        adj_r2=adj,
        cvrmse=cv,
        nmbe=nmbe,
        rmse=rmse,
        mean=ybar,
        autocorrelation=rho,
        n_effective=effective_n(n, rho),
    )


def g14_verdict(stats: FitStats, frequency: Frequency) -> G14Verdict:
    cv_lim, nmbe_lim = G14_LIMITS[frequency]
    return G14Verdict(
        frequency=frequency,
        cvrmse_limit=cv_lim,
        nmbe_limit=nmbe_lim,
        cvrmse_pass=stats.cvrmse <= cv_lim,
        nmbe_pass=abs(stats.nmbe) <= nmbe_lim,
    )


def coefficient_table(x: Array, y: Array, beta: Array, names: list[str], p_total: int) -> list[Coefficient]:
    """Standard errors, t-statistics and two-sided p-values of linear coefficients.

    σ² = SSE/(n − p_total), where p_total also counts the change points searched, so the
    coefficients are tested conditional on the change points (as the Inverse Modeling
    Toolkit reports them).
    """
    n = len(y)
    dof = n - p_total
    resid = y - x @ beta
    s2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = np.linalg.pinv(x.T @ x) * s2
    out = []
    for i, name in enumerate(names):
        se = math.sqrt(max(float(cov[i, i]), 0.0))
        t = float(beta[i]) / se if se > 0 else (math.inf if beta[i] != 0 else 0.0)
        pv = float(2.0 * sstats.t.sf(abs(t), dof)) if dof > 0 and math.isfinite(t) else 0.0
        out.append(Coefficient(name=name, value=float(beta[i]), std_error=se, t=t, p_value=pv))
    return out


def t_quantile(confidence: float, dof: float) -> float:
    """Two-sided Student t quantile (e.g. 1.0 at 68 %, 1.645 at 90 % for large dof)."""
    return float(sstats.t.ppf(0.5 + confidence / 2.0, max(dof, 1.0)))


def savings_uncertainty(
    *, cvrmse_pct: float, n: int, n_eff: float, p: int, m: int, baseline_total: float, confidence: float
) -> float:
    """Absolute uncertainty of savings over m reporting periods (energy units):
    t·1.26·CV·√((n/n′)(1 + 2/n′)(1/m))·E_baseline. Divide by the savings for ΔE/E."""
    if m <= 0 or n_eff <= 0:
        return math.nan
    t = t_quantile(confidence, n_eff - p)
    cv = cvrmse_pct / 100.0
    return t * FSU_FACTOR * cv * math.sqrt((n / n_eff) * (1.0 + 2.0 / n_eff) / m) * abs(baseline_total)


def fractional_savings_uncertainty(
    *, cvrmse_pct: float, n: int, n_eff: float, p: int, m: int, fraction: float, confidence: float
) -> float:
    """ΔE/E = t·1.26·CV·√((n/n′)(1 + 2/n′)(1/m)) / F (infinite when F = 0)."""
    if fraction == 0:
        return math.inf
    u = savings_uncertainty(
        cvrmse_pct=cvrmse_pct, n=n, n_eff=n_eff, p=p, m=m, baseline_total=1.0, confidence=confidence
    )
    return u / abs(fraction)
