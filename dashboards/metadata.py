"""``building_info`` points from a portfolio file (docs/data-model.md): one point per building
at time 0, so rewriting is idempotent and dashboards can divide energy by floor area."""

from __future__ import annotations

from epcwatch.portfolio import Portfolio


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def building_info_lines(portfolio: Portfolio) -> list[str]:
    """Line protocol for every building of the portfolio (fields as the data model types them)."""
    lines = []
    for site in portfolio.sites:
        for b in site.buildings:
            lines.append(
                f"building_info,building={_tag(b.id)},site={_tag(site.id)} "
                f"floor_area_m2={float(b.floor_area_m2)!r},occupants={b.occupants}i,floors={b.floors}i 0"
            )
    return lines
