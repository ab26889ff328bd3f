"""``building_info`` points from a portfolio file (docs/data-model.md): one point per building
at time 0, so rewriting is idempotent and dashboards can divide energy by floor area."""

from __future__ import annotations

from epcwatch.influx.lineprotocol import point
from epcwatch.influx.schema import BUILDING, BUILDING_INFO, SITE
from epcwatch.portfolio import Portfolio


def building_info_lines(portfolio: Portfolio) -> list[str]:
    """Line protocol for every building of the portfolio (fields as the data model types them).

    Timestamps are 0 in any precision; raises :class:`epcwatch.influx.lineprotocol.LineProtocolError`
    for an id line protocol cannot carry.
    """
    lines = []
    for site in portfolio.sites:
        for b in site.buildings:
            line = point(
                BUILDING_INFO,
                {BUILDING: b.id, SITE: site.id},
                {"floor_area_m2": float(b.floor_area_m2), "occupants": b.occupants, "floors": b.floors},
                0,
            )
            assert line is not None  # the fields are never None
            lines.append(line)
    return lines
