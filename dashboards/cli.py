"""``epcwatch dashboards build|publish|metadata`` and ``epcwatch stats``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from epcwatch.dashboards.errors import StatsError
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
        float | None,
        typer.Option("--gas-kgce-per-m3", help="natural gas factor (kgce/m³); default 1.2143 (GB/T 2589)"),
    ] = None,
    basis: Annotated[
        str, typer.Option("--basis", help="electricity in tce: calorific (当量值) or equal_value (等价值)")
    ] = "calorific",
    equal_value: Annotated[
        float | None,
        typer.Option("--equal-value-kgce-per-kwh", help="the year's coal rate for --basis equal_value"),
    ] = None,
    co2_electricity: Annotated[
        float | None, typer.Option("--co2-kg-per-kwh", help="grid emission factor; default 0.5703 (MEE 2022)")
    ] = None,
    factors_file: Annotated[
        Path | None, typer.Option("--factors", help="a factor table of your own (energy_factors.yaml format)")
    ] = None,
    by_item: Annotated[
        bool, typer.Option("--by-item", help="electricity per national item code, levels 1 and 2, instead")
    ] = False,
) -> None:
    """Energy statistics per site and building for a month or year (the Portfolio dashboard's numbers):
    every energy carrier, tce (GB/T 2589-2020) and CO2; --by-item: per national item code (分项)."""
    from rich.console import Console
    from rich.table import Table

    from epcwatch import energy
    from epcwatch.dashboards.stats import (
        Factors,
        compute,
        compute_items,
        items_to_csv,
        parse_period,
        to_csv,
    )
    from epcwatch.portfolio import load_portfolio

    if ctx.invoked_subcommand is not None:
        return
    if portfolio is None:
        typer.secho("error: missing option '--portfolio'", fg="red", err=True)
        raise typer.Exit(2)
    try:
        if basis not in ("calorific", "equal_value"):
            raise StatsError(f"--basis must be calorific or equal_value, not {basis!r}")
        table_ = energy.load_factors(factors_file) if factors_file else energy.default_factors()
        if gas_factor is not None:
            table_ = table_.with_carrier("natural_gas", kgce=gas_factor)
        if equal_value is not None:
            table_ = table_.with_equal_value(equal_value)
        if co2_electricity is not None:
            table_ = table_.with_carrier("electricity", co2_kg=co2_electricity)
        pf = load_portfolio(portfolio)
        p = parse_period(period, at, dt.date.today())
        client = _influx(influx_url, database, influx_user, influx_password)
        if by_item:
            item_rows = compute_items(pf, p, client.query)
        else:
            b: energy.Basis = "equal_value" if basis == "equal_value" else "calorific"
            rows = compute(pf, p, client.query, Factors(table_, b))
    except EpcwatchError as exc:
        raise _fail(exc) from None
    import sys

    if by_item:
        t = Table(title=f"Electricity by item code (分项) {p.label}")
        for head in ("site", "building", "level", "code", "中文", "English", "kWh", "share %"):
            t.add_column(head, justify="right" if head in ("kWh", "share %") else "left")
        for r in item_rows:
            share = r["share_pct"]
            t.add_row(
                str(r["site"]), str(r["building"]) or "(all)", str(r["level"]), str(r["code"]),
                str(r["zh"]), str(r["en"]), f"{r['electricity_kwh']:,.2f}",
                "—" if share is None else f"{share:.1f}",
            )  # fmt: skip
        Console(width=None if sys.stdout.isatty() else 200).print(t)
        if out is not None:
            out.write_text(items_to_csv(item_rows), encoding="utf-8")
            typer.echo(f"wrote {out}")
        return
    table = Table(title=f"Energy statistics {p.label}")
    cols = (
        ("site", "site"),
        ("building", "building"),
        ("electricity_kwh", "kWh"),
        ("category_A_kwh", "A kWh"),
        ("category_B_kwh", "B kWh"),
        ("category_C_kwh", "C kWh"),
        ("category_D_kwh", "D kWh"),
        ("water_m3", "water m³"),
        ("gas_m3", "gas m³"),
        ("heat_kwh", "heat kWh"),
        ("cooling_kwh", "cooling kWh"),
        ("tce_total", "tce"),
        ("co2_t", "t CO2"),
        ("kwh_per_m2", "kWh/m²"),
        ("kwh_per_occupant", "kWh/person"),
        ("electricity_kwh_last_year", "kWh last year"),
        ("change_pct", "change %"),
        ("completeness_pct", "data %"),
    )
    for _, head in cols:
        names = head in ("site", "building")
        table.add_column(head, justify="left" if names else "right", no_wrap=names)
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r.get(key)
            if key == "building" and not v:
                v = "(all)"
            cells.append("—" if v is None else (f"{v:,.2f}" if isinstance(v, float) else str(v)))
        table.add_row(*cells)

    # a pipe or file gets the whole table rather than an 80-column squeeze
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    if out is not None:
        out.write_text(to_csv(rows), encoding="utf-8")
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
    stats_app.callback()(stats)
    app.add_typer(stats_app, name="stats")
