"""Pricing savings: flat or time-of-use energy prices, plus a stipulated demand charge.

Daily data cannot say at what hour energy was saved, so a time-of-use tariff is applied as a
blended price: Σ shareᵢ·priceᵢ, with each band's share of the savings given in the contract or,
by default, its share of the 24 hours. Demand savings are stipulated: reduction (kW) × price per
kW-month × months in the reporting period (days / 365 × 12).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Band:
    name: str
    price: float
    share: float


@dataclass(frozen=True)
class Cost:
    currency: str
    energy_price: float
    energy: float
    demand: float
    total: float
    #: two-sided half-widths of the energy cost (currency) at 68/80/90 %; the stipulated demand
    #: savings carry no measured uncertainty
    uncertainty: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def blended_price(bands: list[Band]) -> float:
    total = sum(b.share for b in bands)
    if total <= 0:
        raise ValueError("time-of-use shares sum to zero")
    return sum(b.price * b.share for b in bands) / total


def savings_cost(
    kwh: float,
    *,
    currency: str,
    price: float,
    reporting_days: int,
    demand_kw: float = 0.0,
    demand_price_per_kw_month: float = 0.0,
    kwh_uncertainty: dict[str, float] | None = None,
) -> Cost:
    energy = kwh * price
    demand = demand_kw * demand_price_per_kw_month * reporting_days / 365.0 * 12.0
    unc = {k: v * price for k, v in kwh_uncertainty.items()} if kwh_uncertainty is not None else None
    return Cost(
        currency=currency,
        energy_price=price,
        energy=energy,
        demand=demand,
        total=energy + demand,
        uncertainty=unc,
    )
