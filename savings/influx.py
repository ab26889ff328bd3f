"""Reading daily energy and temperature from InfluxDB (InfluxQL) and writing savings back.

Daily energy comes from the collector's ``energy_interval`` rollups (``interval='1d'``, one
point per device and site-local day holding the counter's increase and a ``coverage``). When no
rollups exist for the selected meters, it falls back to the raw counters: the last reading of
each local day (``GROUP BY time(1d) tz(…)``) minus the previous day's. Several meters add up; a
day counts only when every selected meter has a value for it. Temperature is the mean of the
weather point's readings per local day.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from epcwatch.influx import InfluxClient, InfluxError
from epcwatch.influx import influxql as _ql
from epcwatch.influx.lineprotocol import LineProtocolError, escape_key, point
from epcwatch.influx.schema import ENERGY_INTERVAL, SAVINGS, SAVINGS_MODEL
from epcwatch.savings.contract import InfluxWeather, MeterSelector
from epcwatch.savings.errors import SourceError

#: a rollup day with less coverage than this is treated as missing
MIN_COVERAGE = 0.9


class DailySource(Protocol):
    def daily_energy(
        self, site: str, meters: list[MeterSelector], start: date, end: date, tz: str
    ) -> pd.DataFrame: ...

    def daily_temperature(
        self, site: str, weather: InfluxWeather, start: date, end: date, tz: str
    ) -> pd.DataFrame: ...

    def write_lines(self, lines: list[str]) -> None: ...


_q = _ql.literal
_ident = _ql.ident


def _utc_bounds(start: date, end: date, tz: str) -> tuple[str, str]:
    z = ZoneInfo(tz)
    lo = datetime.combine(start, time(0), z).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), time(0), z).astimezone(UTC)
    return lo.strftime("%Y-%m-%dT%H:%M:%SZ"), hi.strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector_clause(meters: list[MeterSelector]) -> str:
    parts = []
    for m in meters:
        parts.append("(" + " AND ".join(f"{_ident(k)}={_q(v)}" for k, v in sorted(m.tags().items())) + ")")
    return "(" + " OR ".join(parts) + ")"


def _local_dates(epoch_ms: list[int], tz: str) -> list[date]:
    z = ZoneInfo(tz)
    return [datetime.fromtimestamp(t / 1000.0, z).date() for t in epoch_ms]


#: a tag value as written in line protocol (the project's one escaping rule)
escape_tag = escape_key


class InfluxSource:
    """InfluxDB 1.x-compatible ``/query`` and ``/write`` endpoints."""

    def __init__(
        self, url: str, database: str, username: str | None = None, password: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self._client = InfluxClient(self.url, database, username, password)

    def _series(self, q: str) -> list[dict[str, Any]]:
        try:
            series = self._client.query(q)
        except InfluxError as exc:
            raise SourceError(str(exc)) from None
        return [
            {"name": s.name, "tags": s.tags, "columns": list(s.rows[0]) if s.rows else [], "values": s.values}
            for s in series
        ]

    def daily_energy(
        self, site: str, meters: list[MeterSelector], start: date, end: date, tz: str
    ) -> pd.DataFrame:
        """Columns ``date``, ``energy`` (NaN where a meter lacks the day), ``source``."""
        fields = sorted({m.field for m in meters})
        if len(fields) != 1:
            raise SourceError(f"selected meters must share one energy field, not {fields}")
        fld = fields[0]
        lo, hi = _utc_bounds(start, end, tz)
        where = f"{_ident('site')}={_q(site)} AND {_selector_clause(meters)}"
        q = (
            f"SELECT {_ident(fld)}, {_ident('coverage')} FROM {_ident(ENERGY_INTERVAL)} "
            f"WHERE {where} AND {_ident('interval')}='1d' AND time >= '{lo}' AND time < '{hi}' "
            f"GROUP BY {_ident('device')}"
        )
        per_device: dict[str, dict[date, float]] = {}
        for s in self._series(q):
            dev = s.get("tags", {}).get("device", "?")
            cols = s["columns"]
            i_t, i_v = cols.index("time"), cols.index(fld)
            i_c = cols.index("coverage") if "coverage" in cols else None
            days = _local_dates([r[i_t] for r in s["values"]], tz)
            vals = per_device.setdefault(dev, {})
            for d, r in zip(days, s["values"], strict=True):
                v = r[i_v]
                cov = r[i_c] if i_c is not None and r[i_c] is not None else 1.0
                vals[d] = float(v) if v is not None and cov >= MIN_COVERAGE else math.nan
        source = "energy_interval 1d"
        if not per_device:
            per_device = self._from_counters(site=site, meters=meters, fld=fld, start=start, end=end, tz=tz)
            source = "raw counters"
        return _sum_devices(per_device, start, end, source)

    def _from_counters(
        self, *, site: str, meters: list[MeterSelector], fld: str, start: date, end: date, tz: str
    ) -> dict[str, dict[date, float]]:
        lo, hi = _utc_bounds(start - timedelta(days=1), end, tz)
        per_device: dict[str, dict[date, float]] = {}
        by_meas: dict[str, list[MeterSelector]] = {}
        for m in meters:
            by_meas.setdefault(m.measurement, []).append(m)
        for meas, sel in by_meas.items():
            q = (
                f"SELECT last({_ident(fld)}) FROM {_ident(meas)} WHERE {_ident('site')}={_q(site)} "
                f"AND {_selector_clause(sel)} AND time >= '{lo}' AND time < '{hi}' "
                f"GROUP BY time(1d), {_ident('device')} tz({_q(tz)})"
            )
            for s in self._series(q):
                dev = s.get("tags", {}).get("device", "?")
                rows = s["values"]
                days = _local_dates([r[0] for r in rows], tz)
                last = {d: r[1] for d, r in zip(days, rows, strict=True)}
                vals = per_device.setdefault(dev, {})
                for d in days:
                    prev = last.get(d - timedelta(days=1))
                    cur = last.get(d)
                    if d < start:
                        continue
                    ok = prev is not None and cur is not None and cur >= prev
                    vals[d] = float(cur) - float(prev) if ok else math.nan  # type: ignore[arg-type]
        return per_device

    def daily_temperature(
        self, site: str, weather: InfluxWeather, start: date, end: date, tz: str
    ) -> pd.DataFrame:
        lo, hi = _utc_bounds(start, end, tz)
        q = (
            f"SELECT mean({_ident(weather.field)}) FROM {_ident(weather.measurement)} "
            f"WHERE {_ident('site')}={_q(weather.site or site)} AND {_ident('device')}={_q(weather.device)} "
            f"AND time >= '{lo}' AND time < '{hi}' GROUP BY time(1d) tz({_q(tz)})"
        )
        rows: list[tuple[date, float]] = []
        for s in self._series(q):
            days = _local_dates([r[0] for r in s["values"]], tz)
            rows += [
                (d, math.nan if r[1] is None else float(r[1])) for d, r in zip(days, s["values"], strict=True)
            ]
        df = pd.DataFrame(rows, columns=["date", "temperature"])
        df["date"] = pd.to_datetime(df["date"])
        return df

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._client.write(lines, precision="s")
        except InfluxError as exc:
            raise SourceError(str(exc)) from None


def _sum_devices(
    per_device: dict[str, dict[date, float]], start: date, end: date, source: str
) -> pd.DataFrame:
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if not per_device:
        energy = np.full(len(days), np.nan)
    else:
        mat = np.array([[vals.get(d, math.nan) for d in days] for vals in per_device.values()])
        energy = mat.sum(axis=0)  # NaN when any meter lacks the day
    df = pd.DataFrame({"date": pd.to_datetime(days), "energy": energy})
    df.attrs["source"] = source
    df.attrs["devices"] = sorted(per_device)
    return df


MODEL_NAMES = {
    "mean": "mean",
    "2p": "2P",
    "3pc": "3PC",
    "3ph": "3PH",
    "4p": "4P",
    "5p": "5P",
    "hdd_cdd": "HDD-CDD",
    "towt": "TOWT",
    "towt-monthly": "TOWT-monthly",
}


def model_line(contract: str, site: str, tz: str, day: date, fields: dict[str, object]) -> str:
    """The ``savings_model`` point of one report run (time = the reporting period's last day)."""
    ts = int(datetime.combine(day, time(0), ZoneInfo(tz)).timestamp())
    values: dict[str, bool | int | float | str] = {}
    for k, v in fields.items():
        if isinstance(v, bool | int):
            values[k] = v
        elif isinstance(v, float):
            if math.isfinite(v):
                values[k] = v
        else:
            values[k] = str(v)
    line = _point(SAVINGS_MODEL, {"contract": contract, "site": site}, values, ts)
    if line is None:
        raise SourceError("savings_model point without fields")
    return line


def _point(
    measurement: str, tags: dict[str, str | None], fields: dict[str, bool | int | float | str], ts: int
) -> str | None:
    try:
        return point(measurement, tags, fields, ts)
    except LineProtocolError as exc:
        raise SourceError(str(exc)) from None


def savings_lines(
    contract: str, site: str, tz: str, frame: pd.DataFrame, fields: tuple[str, ...]
) -> list[str]:
    """Line protocol for the ``savings`` measurement: one point per day at local midnight."""
    z = ZoneInfo(tz)
    out = []
    dates = [pd.Timestamp(t).date() for t in frame["date"].to_numpy(dtype="datetime64[ns]")]
    for d, row in zip(dates, frame.itertuples(index=False), strict=True):
        ts = int(datetime.combine(d, time(0), z).timestamp())
        vals: dict[str, bool | int | float | str] = {}
        for f in fields:
            v = getattr(row, f)
            if v is not None and isinstance(v, float | int | np.floating) and math.isfinite(float(v)):
                vals[f] = float(v)
        line = _point(SAVINGS, {"contract": contract, "site": site}, vals, ts) if vals else None
        if line:
            out.append(line)
    return out
