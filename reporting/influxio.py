"""InfluxDB side of reporting: period sums per meter, and virtual meters written as series.

Reads ``energy_interval`` (daily rows, ``interval = '1d'``) with one GROUP BY query per site,
field and period, so a city of 13,000 institutions in 130 sites costs a few hundred small
queries, not one per meter nor one that must sum the whole city at once. Virtual
meters are computed from their inputs' interval rows and written back into ``energy_interval``
as their own series (tag ``virtual = true``, ``device`` = the virtual meter's id) beside a
``virtual_meter`` point holding the formula, so dashboards, statistics and contracts read them
like a physical meter. Re-running writes the same points (idempotent).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from epcwatch.influx import InfluxClient
from epcwatch.influx.influxql import literal
from epcwatch.influx.lineprotocol import point, points
from epcwatch.influx.schema import COVERAGE, ENERGY_INTERVAL
from epcwatch.reporting.imports import ImportedRow
from epcwatch.reporting.periods import Period
from epcwatch.reporting.register import FIELD_OF, Meter, Register
from epcwatch.reporting.statistics import InstitutionReport, MeterFigures, institution_report
from epcwatch.reporting.virtual import evaluate_series, evaluation_order

log = logging.getLogger("epcwatch.reporting")

MEASUREMENT = ENERGY_INTERVAL
VIRTUAL_METER = "virtual_meter"
DEVICES_PER_QUERY = 200


def period_sums(
    client: InfluxClient, field: str, start_ms: int, end_ms: int, site: str | None = None
) -> dict[tuple[str, str], MeterFigures]:
    """``{(site, device): figures}`` of daily rows in ``[start, end)`` (one query; one site's
    devices when ``site`` is given)."""
    where = f' AND "site" = {literal(site)}' if site is not None else ""
    q = (
        f'SELECT sum("{field}") AS v, sum("coverage") AS c FROM "{MEASUREMENT}" '
        f"WHERE \"interval\" = '1d'{where} AND time >= {start_ms}ms AND time < {end_ms}ms "
        'GROUP BY "site", "device"'
    )
    out: dict[tuple[str, str], MeterFigures] = {}
    for s in client.query(q):
        for row in s.rows:
            if row.get("v") is None:
                continue
            out[(s.tags.get("site", ""), s.tags.get("device", ""))] = MeterFigures(
                float(row["v"]), float(row.get("c") or 0.0)
            )
    return out


def meter_figures(
    client: InfluxClient, register: Register, period: Period, workers: int = 2
) -> dict[str, MeterFigures]:
    """Each meter's figures over ``period`` (physical and already rolled-up virtual meters).

    One query per site and field, two at a time: each query stays small (a city-wide GROUP BY
    over 13,000 meters can outlast any sensible timeout on a busy server), and the results
    stream in site by site."""
    start, end = period.window_ms(register.timezone)
    jobs: dict[tuple[str, str], list[Meter]] = {}
    for m in register.all_meters():
        jobs.setdefault((m.site or "", m.field), []).append(m)
    out: dict[str, MeterFigures] = {}
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda job: period_sums(client, job[1], start, end, job[0]), jobs)
        for (_, _), meters, sums in zip(jobs, jobs.values(), results, strict=True):
            for m in meters:
                fig = sums.get((m.site or "", m.device_id))
                if fig is not None:
                    out[m.id] = fig
    return out


def institution_reports(
    client: InfluxClient, register: Register, period: Period, imports: Iterable[ImportedRow]
) -> Iterator[InstitutionReport]:
    """One report per institution, in register order (the queries run first, once)."""
    this_year = meter_figures(client, register, period)
    last_year = meter_figures(client, register, period.last_year())
    rows = list(imports)
    by_inst: dict[str, list[ImportedRow]] = {}
    for r in rows:
        by_inst.setdefault(r.institution, []).append(r)
    for inst in register.institutions:
        yield institution_report(
            inst, period, this_year=this_year, last_year=last_year, imports=by_inst.get(inst.id, ())
        )


@dataclass(frozen=True)
class RollupResult:
    meters: int
    points: int


def rollup_virtual(
    client: InfluxClient, register: Register, start_ms: int, end_ms: int, interval: str = "1d"
) -> RollupResult:
    """Compute every virtual meter over ``[start, end)`` from its inputs' ``interval`` rows and
    write the results (and each meter's formula) into InfluxDB."""
    formulas = register.formulas()
    if not formulas:
        return RollupResult(0, 0)
    meters = {m.id: m for m in register.all_meters()}
    physical = {k for k, m in meters.items() if not m.virtual}
    order = evaluation_order(formulas, physical)
    needed = sorted({r for f in formulas.values() for r in f.refs if r in physical})
    series: dict[str, dict[int, tuple[float, float]]] = {mid: {} for mid in needed}
    # one query per site, field and batch of devices (not one per meter): a city has thousands
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for mid in needed:
        m = meters[mid]
        groups.setdefault((m.site or "", m.field), {})[m.device_id] = mid
    for (site, field), devices in sorted(groups.items()):
        names = sorted(devices)
        for i in range(0, len(names), DEVICES_PER_QUERY):
            chunk = names[i : i + DEVICES_PER_QUERY]
            regex = "|".join(re.escape(d).replace("/", "\\/") for d in chunk)
            q = (
                f'SELECT "{field}" AS v, "coverage" AS c FROM "{MEASUREMENT}" '
                f'WHERE "interval" = {literal(interval)} AND "site" = {literal(site)} '
                f'AND "device" =~ /^({regex})$/ AND time >= {start_ms}ms AND time < {end_ms}ms '
                'GROUP BY "device"'
            )
            for s in client.query(q):
                found = devices.get(s.tags.get("device", ""))
                if found is None:
                    continue
                rows = series[found]
                for row in s.rows:
                    if row.get("v") is not None:
                        rows[int(row["time"])] = (float(row["v"]), float(row.get("c") or 0.0))
    results = evaluate_series(formulas, order, series)
    lines: list[str] = []
    for name, rows in results.items():
        m = meters[name]
        tags: dict[str, str | None] = {
            "device": name,
            "interval": interval,
            "site": m.site,
            "virtual": "true",
        }
        tags.update({str(k): v for k, v in m.tags.items()})
        lines += points(
            MEASUREMENT, tags, ((t, {m.field: v, COVERAGE: c}) for t, (v, c) in sorted(rows.items()))
        )
        meta = point(
            VIRTUAL_METER,
            {"device": name, "site": m.site},
            {"formula": m.formula_text, "carrier": m.carrier},
            0,
        )
        if meta is not None:
            lines.append(meta)
    for i in range(0, len(lines), 5000):
        client.write(lines[i : i + 5000])
    n = sum(len(r) for r in results.values())
    log.info("virtual meters: %d meters, %d %s points written", len(results), n, interval)
    return RollupResult(len(results), n)


__all__ = ["FIELD_OF", "institution_reports", "meter_figures", "period_sums", "rollup_virtual"]
