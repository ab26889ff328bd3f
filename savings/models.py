"""Baseline models: the data they are fitted on, the fitted model, predictions and persistence.

A model is linear in its coefficients once its non-linear parameters (change points, balance
points, temperature knots, occupancy table) are fixed. Each model family builds a design matrix
for given non-linear parameters (``changepoint``, ``degreeday``, ``towt``); fitting searches the
non-linear parameters and solves ordinary least squares for the rest. A fitted model is plain
data (:class:`FittedModel`) that serialises to JSON and predicts identically after a reload.

Energy is modelled per period total: every column of the design matrix is multiplied by the
period's length in days, so monthly bills of 28 and 31 days are fitted on one per-day model and
the statistics refer to the consumption the meter recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from epcwatch.savings.errors import SavingsError

Array = NDArray[np.float64]

#: every model type the engine knows; ``auto`` chooses among the first seven
MODEL_TYPES = ("mean", "2p", "3pc", "3ph", "4p", "5p", "hdd_cdd", "towt", "towt-monthly")
#: hourly model types (time of week and temperature; ``towt-monthly`` one model per calendar month)
HOURLY_TYPES = ("towt", "towt-monthly")


class Frequency(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    MONTHLY = "monthly"


class ModelError(SavingsError, ValueError):
    """A model that cannot be fitted or used on the data given."""


@dataclass(frozen=True)
class Observations:
    """Energy and weather for consecutive periods, in time order.

    ``energy`` is the consumption of each period (NaN where unknown), ``temp`` its mean outdoor
    temperature (°C), ``days`` its length in days (1 for daily data, 1/24 for hourly, 28–31 for
    monthly), ``nonworking`` the share of non-working days in it (0 or 1 for daily data),
    ``day_temps`` the daily mean temperatures inside each period (NaN-padded, for degree days)
    ``hour_of_week`` (0 = Monday 00:00) for hourly data, and ``lagged`` the temperature seen
    through first-order lags of :data:`LAG_HOURS` (one column each; hourly data, computed on the
    contiguous series before any period is dropped). ``extra`` holds named independent
    variables (occupancy, production) per period, one column each in ``extra_names`` order.
    ``month`` is each period's calendar month (1–12; hourly data, for month-segmented TOWT).
    """

    energy: Array
    temp: Array
    frequency: Frequency
    days: Array = field(default_factory=lambda: np.empty(0))
    nonworking: Array = field(default_factory=lambda: np.empty(0))
    day_temps: Array = field(default_factory=lambda: np.empty((0, 1)))
    hour_of_week: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    lagged: Array = field(default_factory=lambda: np.empty((0, 0)))
    extra: Array = field(default_factory=lambda: np.empty((0, 0)))
    extra_names: tuple[str, ...] = ()
    month: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = len(self.energy)
        if len(self.temp) != n:
            raise ModelError("energy and temperature differ in length")
        default_days = {Frequency.HOURLY: HOURLY_DAYS, Frequency.DAILY: 1.0}.get(self.frequency, 30.0)
        if len(self.days) == 0:
            object.__setattr__(self, "days", np.full(n, default_days))
        if len(self.nonworking) == 0:
            object.__setattr__(self, "nonworking", np.zeros(n))
        if self.day_temps.shape[0] == 0:
            object.__setattr__(self, "day_temps", np.asarray(self.temp, dtype=np.float64).reshape(n, 1))
        for name in ("days", "nonworking"):
            if len(getattr(self, name)) != n:
                raise ModelError(f"{name} differs in length from energy")
        if self.frequency == Frequency.HOURLY and len(self.hour_of_week) != n:
            raise ModelError("hourly observations need hour_of_week")
        if len(self.month) not in (0, n):
            raise ModelError("month differs in length from energy")
        if self.lagged.shape[0] != n:
            if self.frequency == Frequency.HOURLY:
                lag = lagged_temperature(self.temp)
            elif self.frequency == Frequency.DAILY:
                lag = lagged_temperature(self.temp, (1.0,))
            else:
                lag = np.empty((n, 0))
            object.__setattr__(self, "lagged", lag)
        if self.extra.shape[0] != n:
            if self.extra_names:
                raise ModelError("extra variables differ in length from energy")
            object.__setattr__(self, "extra", np.empty((n, 0)))

    def __len__(self) -> int:
        return len(self.energy)

    def select(self, mask: NDArray[np.bool_]) -> Observations:
        """The observations where ``mask`` is true (time order kept)."""
        how = self.hour_of_week[mask] if len(self.hour_of_week) else self.hour_of_week
        return Observations(
            energy=self.energy[mask],
            temp=self.temp[mask],
            frequency=self.frequency,
            days=self.days[mask],
            nonworking=self.nonworking[mask],
            day_temps=self.day_temps[mask],
            hour_of_week=how,
            lagged=self.lagged[mask],
            extra=self.extra[mask],
            extra_names=self.extra_names,
            month=self.month[mask] if len(self.month) else self.month,
        )

    def valid(self) -> NDArray[np.bool_]:
        """Periods with both energy and temperature known."""
        return np.asarray(np.isfinite(self.energy) & np.isfinite(self.temp), dtype=np.bool_)


HOURLY_DAYS = 1.0 / 24.0
#: time constants (hours) of the first-order lags through which hourly models see temperature
LAG_HOURS = (2.0, 4.0, 8.0, 12.0, 24.0, 48.0)


def lagged_temperature(temp: Array, lags: tuple[float, ...] = LAG_HOURS) -> Array:
    """Hourly temperature through first-order lags (exponential smoothing, time constant τ
    hours), one column per τ; gaps are bridged by carrying the last value."""
    from epcwatch.savings.numerics import first_order_lag

    t = np.asarray(temp, dtype=np.float64)
    out = np.empty((len(t), len(lags)))
    if len(t) == 0:
        return out
    ok = np.isfinite(t)
    filled = t.copy()
    if not ok.all():
        idx = np.where(ok, np.arange(len(t)), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = t[idx]
        first = np.flatnonzero(ok)
        filled[: first[0] if len(first) else len(t)] = t[first[0]] if len(first) else 0.0
    for j, tau in enumerate(lags):
        a = 1.0 - np.exp(-1.0 / tau)
        out[:, j] = first_order_lag(filled - filled[0], a) + filled[0]
    return out


@dataclass(frozen=True)
class FittedModel:
    """A baseline model with all its parameters: enough to predict, nothing else.

    ``coefficients`` are the linear coefficients (per day of period length), ``nonlinear`` the
    searched parameters (change or balance points), ``extra`` family-specific tables (TOWT
    knots and occupancy), ``day_type`` whether a non-working-day shift is part of the model.
    """

    type: str
    frequency: Frequency
    coefficients: dict[str, float]
    nonlinear: dict[str, float] = field(default_factory=dict)
    day_type: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Parameters counted for G14's n − p: coefficients plus searched change points."""
        return len(self.coefficients) + len(self.nonlinear)

    def parameters(self) -> dict[str, float]:
        """Coefficients and change points in one flat mapping (as reported)."""
        return {**self.coefficients, **self.nonlinear}

    def design(self, obs: Observations) -> tuple[Array, list[str]]:
        from epcwatch.savings import changepoint, degreeday, towt, towt_monthly

        if self.type in changepoint.TYPES:
            return changepoint.design(self.type, obs, self.nonlinear, self.day_type, self.extra)
        if self.type == "hdd_cdd":
            return degreeday.design(obs, self.nonlinear, self.day_type)
        if self.type == "towt":
            return towt.design(obs, self.extra)
        if self.type == "towt-monthly":
            return towt_monthly.design(self, obs)
        raise ModelError(f"unknown model type {self.type!r}")

    def variance_design(self, obs: Observations) -> Array:
        """The design the uncertainty uses: the linear columns plus, for each searched change
        or balance point θ, the column ∂ŷ/∂θ (central difference, 0.1 °C). This is the
        Gauss–Newton linearisation of the whole nonlinear fit, so the stated band also counts
        the error of the change points, not only of the coefficients given them."""
        x, _ = self.design(obs)
        if not self.nonlinear:
            return x
        cols = [x]
        h = 0.1
        for name, value in self.nonlinear.items():
            up = replace(self, nonlinear={**self.nonlinear, name: value + h}).predict(obs)
            down = replace(self, nonlinear={**self.nonlinear, name: value - h}).predict(obs)
            cols.append(((up - down) / (2.0 * h))[:, None])
        return np.asarray(np.hstack(cols), dtype=np.float64)

    def summed_design(self, obs: Observations, weights: Array) -> Array:
        """Σₜ wₜ·xₜ over the periods of ``obs``: the row of the savings' parameter error
        (for month-segmented TOWT, the stacked per-month sums, without forming the design)."""
        if self.type == "towt-monthly":
            from epcwatch.savings import towt_monthly

            return towt_monthly.summed_design(self, obs, weights)
        return np.asarray(np.asarray(weights, dtype=np.float64) @ self.variance_design(obs), dtype=np.float64)

    def predict(self, obs: Observations) -> Array:
        """Predicted energy per period (NaN where temperature is unknown)."""
        if self.type not in HOURLY_TYPES and obs.frequency == Frequency.HOURLY:
            raise ModelError(f"a {self.type} model predicts daily or monthly periods, not hours")
        if self.type in HOURLY_TYPES and obs.frequency != Frequency.HOURLY:
            raise ModelError("a TOWT model predicts hourly periods only")
        if self.type == "towt-monthly":
            from epcwatch.savings import towt_monthly

            return towt_monthly.predict(self, obs)
        x, names = self.design(obs)
        beta = np.array([self.coefficients[n] for n in names], dtype=np.float64)
        out: Array = np.asarray(x @ beta, dtype=np.float64)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` restores an identical model."""
        return {
            "schema": "epcwatch.savings.model/1",
            "type": self.type,
            "frequency": self.frequency.value,
            "coefficients": dict(self.coefficients),
            "nonlinear": dict(self.nonlinear),
            "day_type": self.day_type,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FittedModel:
        if doc.get("schema") != "epcwatch.savings.model/1":
            raise ModelError(f"not a saved epcwatch model (schema {doc.get('schema')!r})")
        if doc.get("type") not in MODEL_TYPES:
            raise ModelError(f"unknown model type {doc.get('type')!r}")
        return cls(
            type=str(doc["type"]),
            frequency=Frequency(doc["frequency"]),
            coefficients={str(k): float(v) for k, v in doc["coefficients"].items()},
            nonlinear={str(k): float(v) for k, v in doc.get("nonlinear", {}).items()},
            day_type=bool(doc.get("day_type", False)),
            extra=dict(doc.get("extra", {})),
        )


def ols(x: Array, y: Array) -> Array:
    """Least-squares coefficients (minimum-norm if ``x`` is rank deficient)."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return np.asarray(beta, dtype=np.float64)
