"""``epcwatch dashboards build|publish|metadata`` and ``epcwatch stats``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from epcwatch.dashboards.influx import InfluxClient
from epcwatch.errors import EpcwatchError
from epcwatch.local import DEFAULT_DATABASE, load_ports

#: where ``build`` writes by default: the package's own json/ folder (what provisioning reads)
DEFAULT_OUT = Path(__file__).resolve().parent / "json"

dashboards_app = typer.Typer(
    help="Grafana dashboards as code: build the JSON, publish it, write building metadata.",
    no_args_is_help=True,
)

InfluxUrl = Annotated[
    str | None,
    typer.Option(
        "--influx-url",
        envvar="EPCWATCH_INFLUX_URL",
        help="InfluxDB base URL (default: the one `epcwatch services up` started)",
        show_default=False,
    ),
]
Database = Annotated[
    str, typer.Option("--database", envvar="EPCWATCH_INFLUX_DATABASE", help="InfluxDB database")
]
InfluxUser = Annotated[
    str | None,
    typer.Option("--influx-user", envvar="EPCWATCH_INFLUX_USER", help="InfluxDB user (if auth is on)"),
]
InfluxPassword = Annotated[
    str | None,
    typer.Option(
        "--influx-password", envvar="EPCWATCH_INFLUX_PASSWORD", help="InfluxDB password", show_default=False
    ),
]
PortfolioFile = Annotated[
    Path, typer.Option("--portfolio", help="portfolio YAML (sites, buildings, floor areas)")
]


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg="red", err=True)
    return typer.Exit(2)


def _influx(url: str | None, database: str, user: str | None, password: str | None) -> InfluxClient:
    from epcwatch import logs

    logs.redact(password)
    if url is None:  # the local InfluxDB of `epcwatch services up`, on whatever port it was given
        url = load_ports().influx_url
    return InfluxClient(url, database, user, password)


@dashboards_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="folder to write the dashboard JSON into")] = DEFAULT_OUT,
    timezone: Annotated[
        str, typer.Option(help="IANA timezone of daily bars (tz() clause)")
    ] = "Asia/Shanghai",
    year: Annotated[int, typer.Option(help="default selection of the Portfolio's year variable")] = 2025,
) -> None:
    """Write the dashboards' JSON (identical bytes for identical inputs)."""
    from epcwatch.dashboards.boards import build_all
    from epcwatch.dashboards.model import BuildOptions, render

    out.mkdir(parents=True, exist_ok=True)
    for name, doc in build_all(BuildOptions(timezone=timezone, year=year)).items():
        (out / name).write_text(render(doc), encoding="utf-8")
        typer.echo(f"wrote {out / name}")


@dashboards_app.command("publish")
def publish(  # noqa: PLR0917 - typer options
    url: Annotated[str, typer.Option("--url", envvar="GRAFANA_URL", help="Grafana base URL")],
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="GRAFANA_TOKEN", help="service account token", show_default=False),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", envvar="GRAFANA_USER", help="Grafana user")] = None,
    password: Annotated[
        str | None,
        typer.Option("--password", envvar="GRAFANA_PASSWORD", help="Grafana password", show_default=False),
    ] = None,
    folder: Annotated[str, typer.Option("--folder", help="Grafana folder to publish into")] = "epcwatch",
    source: Annotated[Path, typer.Option("--dir", help="folder holding the built JSON")] = DEFAULT_OUT,
) -> None:
    """Create or update the dashboards in a Grafana folder (unchanged ones are left alone)."""
    import json

    from epcwatch.dashboards.publish import publish as do_publish

    files = sorted(source.glob("*.json"))
    if not files:
        raise _fail(
            FileNotFoundError(f"no dashboard JSON in {source}; run `epcwatch dashboards build` first")
        )
    docs = {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}
    try:
        outcomes = do_publish(url, docs, folder=folder, token=token, user=user, password=password)
    except EpcwatchError as exc:
        raise _fail(exc) from None
    for o in outcomes:
        typer.echo(f"{o.action:9s} {o.uid}  {o.title}")


@dashboards_app.command("metadata")
def metadata(
    portfolio: PortfolioFile,
    influx_url: InfluxUrl = None,
    database: Database = DEFAULT_DATABASE,
    influx_user: InfluxUser = None,
    influx_password: InfluxPassword = None,
) -> None:
    """Write building_info (floor area, occupants, floors) from a portfolio file into InfluxDB."""
    from epcwatch.dashboards.metadata import building_info_lines
    from epcwatch.portfolio import load_portfolio

    try:
        lines = building_info_lines(load_portfolio(portfolio))
        client = _influx(influx_url, database, influx_user, influx_password)
        client.write(lines)
    except EpcwatchError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote building_info for {len(lines)} buildings to {database}")


stats_app = typer.Typer(
    help="Energy statistics per site and building (no subcommand), or per institution (institutions).",
    invoke_without_command=True,
)


def stats(  # noqa: PLR0917 - typer options
    ctx: typer.Context,
    portfolio: Annotated[
        Path | None, typer.Option("--portfolio", help="portfolio YAML (sites, buildings, floor areas)")
    ] = None,
    period: Annotated[str, typer.Option("--period", help="month or year")] = "month",
    at: Annotated[
        str | None, typer.Option("--at", help="YYYY-MM or YYYY; default: the last complete period")
    ] = None,
    influx_url: InfluxUrl = None,
    database: Database = DEFAULT_DATABASE,
    influx_user: InfluxUser = None,
    influx_password: InfluxPassword = None,
    out: Annotated[Path | None, typer.Option("--out", help="also write the table as CSV")] = None,
    gas_factor: Annotated[
        float, typer.Option("--gas-kgce-per-m3", help="natural gas conversion factor (kgce/m³)")
    ] = 1.2143,
) -> None:
    """Energy statistics per site and building for a month or year (the Portfolio dashboard's numbers)."""
    from rich.console import Console
    from rich.table import Table

    from epcwatch.dashboards.stats import Factors, compute, parse_period, to_csv
    from epcwatch.portfolio import load_portfolio

    if ctx.invoked_subcommand is not None:
        return
    if portfolio is None:
        typer.secho("error: missing option '--portfolio'", fg="red", err=True)
        raise typer.Exit(2)
    try:
        pf = load_portfolio(portfolio)
        p = parse_period(period, at, dt.date.today())
        client = _influx(influx_url, database, influx_user, influx_password)
        rows = compute(pf, p, client.query, Factors(kgce_per_m3_gas=gas_factor))
    except EpcwatchError as exc:
        raise _fail(exc) from None
    table = Table(title=f"Energy statistics {p.label}")
    cols = (
        ("site", "site"),
        ("building", "building"),
        ("electricity_kwh", "kWh"),
        ("category_A_kwh", "A kWh"),
        ("category_B_kwh", "B kWh"),
        ("category_C_kwh", "C kWh"),
        ("category_D_kwh", "D kWh"),
        ("tce_total", "tce"),
        ("kwh_per_m2", "kWh/m²"),
        ("kwh_per_occupant", "kWh/person"),
        ("electricity_kwh_last_year", "kWh last year"),
        ("change_pct", "change %"),
        ("completeness_pct", "data %"),
    )
    for _, head in cols:
        table.add_column(head, justify="left" if head in ("site", "building") else "right")
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r.get(key)
            if key == "building" and not v:
                v = "(all)"
            cells.append("—" if v is None else (f"{v:,.2f}" if isinstance(v, float) else str(v)))
        table.add_row(*cells)
    import sys

    # a pipe or file gets the whole table rather than an 80-column squeeze
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    if out is not None:
        out.write_text(to_csv(rows), encoding="utf-8")
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
    stats_app.callback()(stats)
    app.add_typer(stats_app, name="stats")
