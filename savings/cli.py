"""``epcwatch savings …``: fit a baseline from a CSV, or produce a contract's M&V report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from epcwatch.errors import EpcwatchError
from epcwatch.logs import fields
from epcwatch.savings.errors import SavingsError

log = logging.getLogger("epcwatch.savings")

#: what a command reports as one line (exit 2): the project's own errors (SavingsError,
#: ModelError, InsufficientDataError, ConfigError, …); anything else is a bug with a traceback.
#: numpy and friends load only when a command runs, so ``epcwatch --help`` stays fast.
USER_ERRORS = (EpcwatchError,)


def _fail(exc: Exception) -> typer.Exit:
    from epcwatch.savings.sufficiency import InsufficientDataError

    msg = str(exc)
    if isinstance(exc, InsufficientDataError):
        msg = f"baseline disqualified: {exc} (use --allow-insufficient to override)"
    typer.secho(f"error: {msg}", fg="red", err=True)
    return typer.Exit(2)


def _period(text: str, option: str):  # type: ignore[no-untyped-def]
    from epcwatch.savings.engine import Period

    try:
        return Period.parse(text)
    except ValueError as exc:  # the user's text: a usage error, not a bug
        raise _fail(ValueError(f"{option}: {exc}")) from None


def _day_type(value: str) -> bool | None:
    v = value.lower()
    if v not in ("auto", "on", "off"):
        raise typer.BadParameter("use auto, on or off")
    return None if v == "auto" else v == "on"


def register(app: typer.Typer) -> None:
    savings_app = typer.Typer(
        help="Measurement and verification: baselines, ASHRAE Guideline 14 statistics, savings, reports.",
        no_args_is_help=True,
    )
    app.add_typer(savings_app, name="savings")

    @savings_app.command("fit")
    def fit(  # noqa: PLR0917 - typer options
        data: Annotated[Path, typer.Option("--data", help="CSV with columns timestamp,energy,temperature")],
        reporting: Annotated[str, typer.Option("--reporting", help="START/END ISO dates, END inclusive")],
        baseline: Annotated[
            str, typer.Option("--baseline", help="START/END ISO dates, END inclusive (not with --frozen)")
        ] = "",
        model: Annotated[
            str,
            typer.Option(
                "--model", help="auto, mean, 2p, 3pc, 3ph, 4p, 5p, hdd_cdd, towt or towt-monthly (hourly)"
            ),
        ] = "auto",
        temp_unit: Annotated[str, typer.Option("--temp-unit", help="C or F (temperature column)")] = "C",
        day_type: Annotated[
            str, typer.Option("--day-type", help="non-working-day shift: auto (if significant), on, off")
        ] = "auto",
        allow_insufficient: Annotated[
            bool, typer.Option("--allow-insufficient", help="fit even if the baseline fails data sufficiency")
        ] = False,
        save_model: Annotated[
            Path | None, typer.Option("--save-model", help="write the fitted model as JSON here")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
        timezone: Annotated[
            str | None,
            typer.Option(
                "--timezone",
                help="site timezone (IANA, e.g. Asia/Shanghai): timestamps with UTC offsets are converted "
                "to it; required when offsets change (daylight saving)",
            ),
        ] = None,
        frozen: Annotated[
            Path | None,
            typer.Option(
                "--frozen",
                help="a frozen baseline (savings baseline freeze): its model and rows are used, not "
                "refitted; --baseline is then taken from it",
            ),
        ] = None,
        variables: Annotated[
            str,
            typer.Option(
                "--variables",
                help="extra independent variables: CSV column names, comma-separated (daily rows; "
                "e.g. occupancy,production)",
            ),
        ] = "",
        calendar: Annotated[
            str,
            typer.Option(
                "--calendar",
                help="non-working days: weekends, or cn (China's official calendar with holidays "
                "and make-up working days)",
            ),
        ] = "weekends",
    ) -> None:
        """Fit a baseline on the baseline period and compute savings over the reporting period."""
        from epcwatch.savings.csvfit import fit_csv
        from epcwatch.savings.frozen import FrozenBaseline

        try:
            fb = None
            if frozen is not None:
                try:
                    fb = FrozenBaseline.from_json(frozen.read_text(encoding="utf-8"))
                except OSError as exc:
                    raise SavingsError(f"{frozen}: {exc.strerror}") from None
                baseline = fb.baseline
                model = fb.model.type
                calendar = str(fb.settings.get("calendar", calendar))
                timezone = fb.settings.get("timezone", timezone)
                temp_unit = str(fb.settings.get("temperature_unit", temp_unit))
            if not baseline:
                raise SavingsError("give --baseline START/END (or --frozen FILE)")
            outcome = fit_csv(
                data,
                _period(baseline, "--baseline"),
                _period(reporting, "--reporting"),
                model=model.lower(),
                temp_unit=temp_unit,
                day_type=_day_type(day_type),
                allow_insufficient=allow_insufficient,
                timezone=timezone,
                calendar=calendar.lower(),
                frozen=fb,
                variables=tuple(v.strip().lower() for v in variables.split(",") if v.strip()),
            )
        except USER_ERRORS as exc:
            raise _fail(exc) from None
        doc = outcome.to_dict()
        if save_model is not None:
            save_model.write_text(json.dumps(outcome.model.to_dict(), indent=2))
        log.info("fitted", extra=fields(model=outcome.baseline_fit.label, n=outcome.baseline_fit.stats.n))
        if as_json:
            typer.echo(json.dumps(doc, indent=2))
            return
        _print_summary(doc)

    baseline_app = typer.Typer(help="Frozen baselines: sign off a baseline once, reuse it unchanged.")
    savings_app.add_typer(baseline_app, name="baseline")

    @baseline_app.command("freeze")
    def freeze(  # noqa: PLR0917 - typer options
        data: Annotated[Path, typer.Option("--data", help="CSV with columns timestamp,energy,temperature")],
        baseline: Annotated[str, typer.Option("--baseline", help="START/END ISO dates, END inclusive")],
        out: Annotated[Path, typer.Option("--out", help="frozen baseline JSON to write")],
        model: Annotated[
            str, typer.Option("--model", help="auto, a daily model, towt or towt-monthly (hourly)")
        ] = "auto",
        temp_unit: Annotated[str, typer.Option("--temp-unit", help="C or F")] = "C",
        day_type: Annotated[str, typer.Option("--day-type", help="auto, on, off")] = "auto",
        allow_insufficient: Annotated[bool, typer.Option("--allow-insufficient")] = False,
        timezone: Annotated[str | None, typer.Option("--timezone", help="site timezone (IANA)")] = None,
        calendar: Annotated[str, typer.Option("--calendar", help="weekends or cn")] = "weekends",
    ) -> None:
        """Fit the baseline and freeze it: rows, input hash, software version and model in one file."""
        from datetime import UTC, datetime

        from epcwatch.savings.csvfit import freeze_csv

        try:
            fb = freeze_csv(
                data,
                _period(baseline, "--baseline"),
                created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                model=model.lower(),
                temp_unit=temp_unit,
                day_type=_day_type(day_type),
                allow_insufficient=allow_insufficient,
                timezone=timezone,
                calendar=calendar.lower(),
            )
            out.write_text(fb.to_json(), encoding="utf-8")
        except USER_ERRORS as exc:
            raise _fail(exc) from None
        except OSError as exc:
            raise _fail(SavingsError(f"{out}: {exc.strerror}")) from None
        typer.echo(f"frozen baseline {fb.hash} ({fb.statistics.get('label')}, {len(fb.data)} rows) -> {out}")

    @savings_app.command("example-csv")
    def example_csv(
        path: Annotated[Path, typer.Argument(help="CSV file to write")],
        daily: Annotated[bool, typer.Option("--daily", help="daily rows instead of hourly")] = False,
        savings_fraction: Annotated[float, typer.Option(help="true savings from 2025-01-01")] = 0.15,
        seed: Annotated[int, typer.Option(help="random seed")] = 0,
    ) -> None:
        """Write a synthetic office building (2024 baseline, 2025 with known savings) as a fit CSV."""
        from epcwatch.savings import synthetic

        frame = synthetic.hourly(seed=seed, savings_fraction=savings_fraction)
        data = synthetic.daily(frame) if daily else frame
        synthetic.to_csv(data, str(path), daily_rows=daily)
        rep = data[data["date" if daily else "timestamp"] >= "2025-01-01"]
        true = float((rep["counterfactual"] - rep["energy"]).sum())
        typer.echo(
            f"wrote {len(data)} {'daily' if daily else 'hourly'} rows to {path}; "
            f"true 2025 savings {true:,.1f}"
        )

    @savings_app.command("report")
    def report(  # noqa: PLR0917 - typer options
        contract: Annotated[Path, typer.Option("--contract", help="contract YAML file")],
        influx_url: Annotated[
            str, typer.Option("--influx-url", help="InfluxDB base URL")
        ] = "http://127.0.0.1:18086",
        database: Annotated[str, typer.Option("--database", help="InfluxDB database")] = "epcwatch",
        out: Annotated[Path, typer.Option("--out", help="directory for report.html, .json, .csv")] = Path(
            "mv-report"
        ),
        write_back: Annotated[
            bool, typer.Option("--write/--no-write", help="write the daily savings measurement to InfluxDB")
        ] = True,
        keyring: Annotated[
            Path | None,
            typer.Option("--keyring", help="keyring YAML: state the share of energy on verified readings"),
        ] = None,
    ) -> None:
        """Read a contract's meters and weather from InfluxDB, compute savings, write the M&V report."""
        from epcwatch.savings.contract import load_contract
        from epcwatch.savings.influx import InfluxSource
        from epcwatch.savings.runner import run_contract

        try:
            c = load_contract(contract)
            source = InfluxSource(influx_url, database)
            verified = None
            if keyring is not None:
                from epcwatch.influx import InfluxClient
                from epcwatch.savings.verified import verified_share_from_influx
                from epcwatch.verify.keyring import load_keyring

                # a year of a meter's readings and records per query: more than the default minute
                client = InfluxClient(influx_url, database, timeout=600)
                verified = verified_share_from_influx(client, c, load_keyring(keyring))
            result = run_contract(
                c, source, out, write_back=write_back, contract_path=contract, verified=verified
            )
        except USER_ERRORS as exc:
            raise _fail(exc) from None
        for name, path in result.files.items():
            typer.echo(f"{name:5s} {path}")
        s = result.outcome.summary
        typer.echo(
            f"avoided energy use {s.avoided_energy_use:,.0f} kWh ({s.fractional:.1%}) "
            f"± {s.uncertainty['90']:,.0f} kWh at 90 %; model {result.outcome.baseline_fit.label}"
        )
        if verified is not None:
            from epcwatch.savings.report import share_text

            typer.echo(
                f"{share_text(verified.reporting.share)} of reporting-period kWh verified"
                + ("" if verified.verifiable else " (not verifiable: below the contract's minimum)")
            )


def _print_summary(doc: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    m = doc["model"]
    b = doc["baseline"]
    s = doc["savings"]
    assert isinstance(m, dict) and isinstance(b, dict) and isinstance(s, dict)
    t = Table(title=f"baseline model {m['label']} ({m['frequency']})", show_header=False)
    for k, v in m["parameters"].items():
        t.add_row(k, f"{v:.4g}")
    t.add_row("n, p", f"{b['n']}, {b['p']}")
    t.add_row("R² / adj. R²", f"{b['r2']:.3f} / {b['adj_r2']:.3f}")
    g14 = b["g14"]
    t.add_row("CV(RMSE)", f"{b['cvrmse']:.2f} % (≤ {g14['cvrmse_limit']:g} %)")
    t.add_row("NMBE", f"{b['nmbe']:.3f} % (± {g14['nmbe_limit']:g} %)")
    t.add_row("G14", "pass" if g14["pass"] else "FAIL")
    t.add_row("adjusted baseline", f"{s['adjusted_baseline']:,.1f}")
    t.add_row("actual", f"{s['actual']:,.1f}")
    t.add_row("avoided energy use", f"{s['avoided_energy_use']:,.1f}")
    fr = s["fractional"]
    t.add_row("savings fraction", "-" if fr is None else f"{fr:.2%}")
    for c in ("68", "80", "90"):
        f = s[f"fsu_{c}"]
        t.add_row(f"FSU {c} %", "-" if f is None else f"{f:.1%}")
    console = Console()
    console.print(t)
    warnings = doc["warnings"]
    assert isinstance(warnings, list)
    for w in warnings:
        console.print(f"[yellow]warning[/] {w['qualified_name']}: {w['description']}")
