"""``epcwatch stats institutions`` and ``epcwatch reporting virtual-rollup|check``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from epcwatch import logs
from epcwatch.config import ConfigError
from epcwatch.dashboards.cli import Database, InfluxPassword, InfluxUrl, InfluxUser
from epcwatch.errors import EpcwatchError
from epcwatch.influx import InfluxClient
from epcwatch.local import DEFAULT_DATABASE, load_ports

log = logging.getLogger("epcwatch.reporting")

reporting_app = typer.Typer(
    help="Institution register, virtual meters and non-metered imports of the statistics report.",
    no_args_is_help=True,
)

RegisterFile = Annotated[
    Path, typer.Option("--register", help="institution register YAML (institutions, buildings, meters)")
]
ImportFiles = Annotated[
    list[Path] | None,
    typer.Option("--imports", help="non-metered consumption CSV (repeatable)"),
]


def _influx(
    url: str | None, database: str, user: str | None, password: str | None, timeout: float = 60.0
) -> InfluxClient:
    logs.redact(password)
    if url is None:  # the local InfluxDB of `epcwatch services up`
        url = load_ports().influx_url
    return InfluxClient(url, database, user, password, timeout)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg="red", err=True)
    return typer.Exit(1)


def institutions(  # noqa: PLR0917 - typer options
    register: RegisterFile,
    period: Annotated[str, typer.Option("--period", help="YYYY, YYYY-Qn or YYYY-MM")],
    out: Annotated[Path, typer.Option("--out", help="folder for the XLSX, CSV and JSON files")],
    imports: ImportFiles = None,
    rollup: Annotated[
        bool, typer.Option("--rollup/--no-rollup", help="recompute virtual meters for both years first")
    ] = True,
    influx_url: InfluxUrl = None,
    database: Database = DEFAULT_DATABASE,
    influx_user: InfluxUser = None,
    influx_password: InfluxPassword = None,
    query_timeout: Annotated[
        float, typer.Option("--query-timeout", help="seconds InfluxDB may take to sum a year of a city")
    ] = 900.0,
) -> None:
    """Statistics report per institution for a period, with the city roll-up (XLSX, CSV, JSON)."""
    from epcwatch.reporting.export import ReportWriter
    from epcwatch.reporting.factors import default_factors
    from epcwatch.reporting.imports import load_imports
    from epcwatch.reporting.influxio import institution_reports, rollup_virtual
    from epcwatch.reporting.periods import parse_period
    from epcwatch.reporting.register import load_register
    from epcwatch.reporting.statistics import CityAccumulator

    t0 = time.perf_counter()
    try:
        reg = load_register(register)
        p = parse_period(period)
        factors = default_factors()
        ids = {i.id for i in reg.institutions}
        rows = [r for f in imports or [] for r in load_imports(str(f), ids, factors)]
        client = _influx(influx_url, database, influx_user, influx_password, query_timeout)
        if rollup:
            for q in (p.last_year(), p):
                rollup_virtual(client, reg, *q.window_ms(reg.timezone))
        city = CityAccumulator(p, factors)
        with ReportWriter(out, p.label, factors) as w:
            for rep in institution_reports(client, reg, p, rows):
                w.add(rep)
                city.add(rep)
            result = city.result()
            paths = w.close(result)
    except (ConfigError, EpcwatchError) as exc:
        raise _fail(exc) from None
    for path in paths:
        typer.echo(f"wrote {path}")
    change = "—" if result.change_pct is None else f"{result.change_pct:+.2f} %"
    typer.echo(
        f"{result.institutions} institutions, {result.total_tce:,.3f} tce ({change} on last year), "
        f"{result.fell} fell; {time.perf_counter() - t0:.1f} s"
    )


@reporting_app.command("check")
def check(register: RegisterFile, imports: ImportFiles = None) -> None:
    """Validate a register and import files (errors name file:line:field)."""
    from epcwatch.reporting.imports import load_imports
    from epcwatch.reporting.register import load_register

    try:
        reg = load_register(register)
        ids = {i.id for i in reg.institutions}
        n = sum(len(load_imports(str(f), ids)) for f in imports or [])
    except (ConfigError, EpcwatchError) as exc:
        raise _fail(exc) from None
    virtual = sum(1 for m in reg.all_meters() if m.virtual)
    typer.echo(
        f"ok: {len(reg.institutions)} institutions, {len(reg.all_meters())} meters "
        f"({virtual} virtual), {n} imported rows"
    )


@reporting_app.command("virtual-rollup")
def virtual_rollup(  # noqa: PLR0917 - typer options
    register: RegisterFile,
    period: Annotated[str, typer.Option("--period", help="YYYY, YYYY-Qn or YYYY-MM")],
    interval: Annotated[str, typer.Option("--interval", help="15m or 1d")] = "1d",
    influx_url: InfluxUrl = None,
    database: Database = DEFAULT_DATABASE,
    influx_user: InfluxUser = None,
    influx_password: InfluxPassword = None,
) -> None:
    """Compute virtual meters from their inputs and write them into InfluxDB as their own series."""
    from epcwatch.reporting.influxio import rollup_virtual
    from epcwatch.reporting.periods import parse_period
    from epcwatch.reporting.register import load_register

    if interval not in ("15m", "1d"):
        raise _fail(ValueError("--interval must be 15m or 1d"))
    try:
        reg = load_register(register)
        p = parse_period(period)
        client = _influx(influx_url, database, influx_user, influx_password)
        res = rollup_virtual(client, reg, *p.window_ms(reg.timezone), interval=interval)
    except (ConfigError, EpcwatchError) as exc:
        raise _fail(exc) from None
    typer.echo(f"{res.meters} virtual meters, {res.points} {interval} points written")


def register(app: typer.Typer) -> None:
    from epcwatch.dashboards.cli import stats_app

    stats_app.command("institutions")(institutions)
    app.add_typer(reporting_app, name="reporting")
