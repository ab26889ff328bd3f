"""Recompute ``energy_interval`` from the counters stored in InfluxDB for a time range.

Reads every counter field of the device measurements (``meter``, ``hvac``, ``lighting``,
``sensor``) over InfluxQL, series by series (``GROUP BY *``), plus the last sample before and
the first sample after the range so that steps crossing its edges are attributed exactly as a
longer run would; computes intervals with :mod:`epcwatch.collector.rollup`; writes them through
the configured writer. Running it twice for the same range writes the same points (same series
and timestamps, so they overwrite): recomputation is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from epcwatch.collector.errors import CollectorError
from epcwatch.collector.lineprotocol import point
from epcwatch.collector.rollup import Interval, Rules, align_range, edge_samples, interval_energy
from epcwatch.influx import InfluxClient, InfluxError, Series
from epcwatch.influx.influxql import ident as _ident
from epcwatch.influx.schema import COVERAGE, DEVICE_KINDS, ENERGY_INTERVAL, INTERVAL, SEQ
from epcwatch.measurements import VOCABULARY, Kind

log = logging.getLogger("epcwatch.collector.rollup")

DEVICE_MEASUREMENTS: tuple[str, ...] = DEVICE_KINDS
COUNTERS = frozenset(n for n, m in VOCABULARY.items() if m.kind is Kind.COUNTER)
DAY_MS = 86_400_000


class QueryError(CollectorError):
    """InfluxQL query failed."""


@dataclass
class InfluxQL:
    """The rollup's queries over :class:`epcwatch.influx.InfluxClient`, failures as :class:`QueryError`."""

    client: InfluxClient

    def query(self, q: str) -> list[Series]:
        try:
            return self.client.query(q)
        except InfluxError as exc:
            raise QueryError(str(exc)) from None


def counter_fields(db: InfluxQL, measurement: str) -> list[str]:
    fields = []
    for s in db.query(f"SHOW FIELD KEYS FROM {_ident(measurement)}"):
        for row in s.values:
            if row[0] in COUNTERS:
                fields.append(row[0])
    return sorted(fields)


SeriesKey = tuple[tuple[str, str], ...]


def _samples(
    db: InfluxQL, measurement: str, field: str, t0: int, t1: int
) -> dict[SeriesKey, list[tuple[int, float]]]:
    f, m = _ident(field), _ident(measurement)
    out: dict[SeriesKey, dict[int, float]] = {}

    def collect(q: str) -> None:
        for s in db.query(q):
            key: SeriesKey = tuple(sorted((k, v) for k, v in s.tags.items() if v))
            rows = out.setdefault(key, {})
            for ts, value in s.values:
                if value is not None and not isinstance(value, bool):
                    rows[int(ts)] = float(value)

    collect(f"SELECT {f} FROM {m} WHERE time >= {t0}ms AND time < {t1}ms GROUP BY *")
    collect(f"SELECT last({f}) FROM {m} WHERE time < {t0}ms GROUP BY *")
    collect(f"SELECT first({f}) FROM {m} WHERE time >= {t1}ms GROUP BY *")
    return {k: sorted(v.items()) for k, v in out.items()}


@dataclass
class RollupSettings:
    timezones: dict[str, str]
    default_timezone: str = "UTC"
    rules: Rules = field(default_factory=Rules)
    max_rate_by_field: dict[str, float] | None = None

    def tz(self, site: str | None) -> ZoneInfo:
        return ZoneInfo(self.timezones.get(site or "", self.default_timezone))

    def rules_for(self, field: str) -> Rules:
        rate = (self.max_rate_by_field or {}).get(field)
        if rate is None:
            return self.rules
        return Rules(max_rate_per_h=rate, moduli=self.rules.moduli, max_gap_s=self.rules.max_gap_s)


def rollup_lines(
    db: InfluxQL,
    settings: RollupSettings,
    interval: Interval,
    t0: int,
    t1: int,
    *,
    measurements: Iterable[str] = DEVICE_MEASUREMENTS,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """``energy_interval`` lines for every whole interval inside ``[t0, t1)`` (widened to whole
    intervals in each site's timezone)."""
    lines: list[str] = []
    # query a day more on each side so every site's widened range is covered
    q0, q1 = t0 - DAY_MS - 1, t1 + DAY_MS + 1
    for measurement in measurements:
        fields = counter_fields(db, measurement)
        # (series, interval start) -> fields
        cells: dict[tuple[SeriesKey, int], dict[str, float]] = {}
        coverage: dict[tuple[SeriesKey, int], float] = {}
        # the seqs of signed readings (docs/provenance.md): an interval keeps the first and last
        # seq of the counter readings at its edges, so a verifier can check it against them
        seqs = {
            k: {t: int(v) for t, v in rows}
            for k, rows in (_samples(db, measurement, SEQ, q0, q1) if fields else {}).items()
        }
        links: dict[tuple[SeriesKey, int], tuple[int, int]] = {}
        for fname in fields:
            if progress:
                progress(f"{measurement}.{fname}")
            for key, samples in _samples(db, measurement, fname, q0, q1).items():
                site = dict(key).get("site")
                tz = settings.tz(site)
                a, b = align_range(interval, t0, t1, tz)
                series_seqs = seqs.get(key, {})
                times = [t for t, _ in samples if t in series_seqs]
                for iv in interval_energy(samples, interval, tz, settings.rules_for(fname), start=a, end=b):
                    cell = (key, iv.start)
                    cells.setdefault(cell, {})[fname] = iv.increase
                    coverage[cell] = min(coverage.get(cell, 1.0), iv.coverage)
                    edges = edge_samples(times, iv.start, iv.end)
                    if edges is not None:
                        lo, hi = series_seqs[edges[0]], series_seqs[edges[1]]
                        old = links.get(cell, (lo, hi))
                        links[cell] = (min(old[0], lo), max(old[1], hi))
        for (key, start), values in sorted(cells.items()):
            tags: dict[str, str | None] = dict(key)
            tags[INTERVAL] = interval.value
            link = links.get((key, start))
            extra = {} if link is None else {"first_seq": link[0], "last_seq": link[1]}
            line = point(ENERGY_INTERVAL, tags, {**values, COVERAGE: coverage[(key, start)], **extra}, start)
            if line:
                lines.append(line)
    return lines
