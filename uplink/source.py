"""Interval energy for the uplink, read from InfluxDB (``energy_interval``, 15-minute rows)."""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from epcwatch.influx import InfluxClient, InfluxError
from epcwatch.influx.influxql import ident, literal
from epcwatch.influx.schema import ENERGY_INTERVAL
from epcwatch.uplink.errors import UplinkError
from epcwatch.uplink.settings import MeterMap

#: ``{period start ms: {(meter id, function id): value}}``
Slots = dict[int, dict[tuple[str, str], float]]


class Source(Protocol):
    def fetch(self, start_ms: int, end_ms: int) -> Slots: ...


class SourceError(UplinkError):
    """InfluxDB could not be read."""


class InfluxSource:
    def __init__(self, client: InfluxClient, meters: list[MeterMap], interval: str = "15m") -> None:
        self.client = client
        self.interval = interval
        self.by_site: dict[str, dict[str, MeterMap]] = defaultdict(dict)
        for m in meters:
            self.by_site[m.site][m.device] = m

    def fetch(self, start_ms: int, end_ms: int) -> Slots:
        out: Slots = defaultdict(dict)
        for site, devices in self.by_site.items():
            fields = sorted({f.field for m in devices.values() for f in m.functions})
            regex = "|".join(sorted(d.replace("/", "\\/").replace(".", "\\.") for d in devices))
            q = (
                "SELECT " + ", ".join(f'"{f}"' for f in fields) + " FROM " + ident(ENERGY_INTERVAL) + " "
                f'WHERE "interval" = {literal(self.interval)} AND "site" = {literal(site)} '
                f'AND "device" =~ /^({regex})$/ AND time >= {start_ms}ms AND time < {end_ms}ms '
                'GROUP BY "device"'
            )
            try:
                series = self.client.query(q)
            except InfluxError as exc:
                raise SourceError(str(exc)) from None
            for s in series:
                m = devices.get(s.tags.get("device", ""))
                if m is None:
                    continue
                for row in s.rows:
                    t = int(row["time"])
                    for fn in m.functions:
                        v = row.get(fn.field)
                        if v is not None:
                            out[t][(m.id, fn.id)] = float(v)
        return dict(out)
