"""The contract runner on an in-memory source (the InfluxDB path has its own integration tests)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from epcwatch.clock import ManualClock
from epcwatch.savings.contract import InfluxWeather, MeterSelector, load_contract
from epcwatch.savings.influx import MODEL_NAMES, savings_lines
from epcwatch.savings.runner import SAVINGS_FIELDS, run_contract


class FakeSource:
    """Daily energy and temperature from frames; records what would be written."""

    def __init__(self, daily: pd.DataFrame) -> None:
        self.daily = daily
        self.written: list[str] = []
        self.asked: list[tuple[str, list[dict[str, str]]]] = []

    def daily_energy(
        self, site: str, meters: list[MeterSelector], start: date, end: date, tz: str
    ) -> pd.DataFrame:
        self.asked.append((site, [m.tags() for m in meters]))
        d = self.daily[
            (self.daily["date"] >= pd.Timestamp(start)) & (self.daily["date"] <= pd.Timestamp(end))
        ]
        out = d[["date", "energy"]].reset_index(drop=True)
        out.attrs["source"] = "fake"
        return out

    def daily_temperature(
        self, site: str, weather: InfluxWeather, start: date, end: date, tz: str
    ) -> pd.DataFrame:
        col = weather.field if weather.field in self.daily else "temperature"
        return self.daily[["date", col]].rename(columns={col: "temperature"})

    def write_lines(self, lines: list[str]) -> None:
        self.written.extend(lines)


def test_amount_adjustment_spread_evenly_and_points_written(world, contract_file, tmp_path):
    path = contract_file(
        "contract.yaml",
        {
            "adjustments: []": (
                'adjustments:\n  - {start: 2025-03-01, end: 2025-03-10, amount_kwh: 3650, reason: "swap"}'
            )
        },
    )
    daily = world["daily"].copy()
    daily.loc[daily["date"] == "2025-06-15", "energy"] = np.nan  # one reporting day without data
    src = FakeSource(daily)
    res = run_contract(
        load_contract(path),
        src,
        tmp_path / "out",
        contract_path=path,
        clock=ManualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()),
    )
    assert src.asked[0] == ("civic-centre", [{"device": "b1-main"}])
    adj = res.daily.set_index("date")["adjustment"]
    assert adj["2025-03-01":"2025-03-10"].to_numpy() == pytest.approx([365.0] * 10)
    assert adj.drop(pd.date_range("2025-03-01", "2025-03-10")).fillna(0).abs().max() == 0
    assert res.doc["adjustments"][0]["applied_kwh"] == pytest.approx(3650)
    assert res.outcome.summary.periods == 364
    # one point per reporting day; the day without data keeps only carried/known fields
    assert len(src.written) == 366 == res.points_written  # 365 days + the savings_model point
    model = src.written[-1]
    assert model.startswith("savings_model,contract=b1-whole-building,site=civic-centre ")
    chosen = res.outcome.baseline_fit.model
    assert chosen.type in ("4p", "5p") and chosen.day_type  # heating and cooling, working-day shift
    assert (
        f'model="{MODEL_NAMES[chosen.type]}"' in model
        and "n_points=366i" in model
        and "day_type=true" in model
    )
    gap = next(
        ln
        for ln in src.written
        if ln.endswith(f" {int(pd.Timestamp('2025-06-15', tz='Asia/Shanghai').timestamp())}")
    )
    assert "actual=" not in gap and "cumulative_savings=" in gap and "guaranteed_cumulative=" in gap
    assert "Generated 2026-01-05" in (tmp_path / "out" / "report.html").read_text()


def test_savings_lines_escape_tags_and_skip_nan():
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2025-01-01", "2025-01-02"]),
            **{f: [1.5, np.nan] for f in SAVINGS_FIELDS},
        }
    )
    lines = savings_lines("b1 whole,bldg", "civic-centre", "Asia/Shanghai", frame, SAVINGS_FIELDS)
    assert lines == [
        "savings,contract=b1\\ whole\\,bldg,site=civic-centre actual=1.5,adjusted_baseline=1.5,savings=1.5,"
        "cumulative_savings=1.5,guaranteed_cumulative=1.5,temperature=1.5 1735660800"
    ]


def test_contract_report_runs_the_placebo_year_where_the_source_holds_it(world, contract_file, tmp_path):
    """The year before the baseline (here the baseline year moved back 52 weeks, so weekdays
    line up) is fitted with the chosen form and predicts the baseline year: ≈ 0 savings."""
    path = contract_file("contract.yaml")
    daily = world["daily"]
    base = daily[(daily["date"] >= "2024-01-01") & (daily["date"] <= "2024-12-31")].copy()
    base["date"] = base["date"] - pd.Timedelta(days=364)
    with_prior = pd.concat([base, daily], ignore_index=True)
    clock = ManualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp())
    res = run_contract(
        load_contract(path), FakeSource(with_prior), tmp_path / "a", contract_path=path, clock=clock
    )
    pl = res.doc["evidence"]["placebo"]
    assert pl["available"], pl
    assert abs(pl["fraction"]) < 0.03, pl
    assert pl["uncertainty_90"] > 0 and isinstance(pl["within_90"], bool)
    html = (tmp_path / "a" / "report.html").read_text()
    assert "the model form fitted on the year before the baseline predicts the baseline year" in html
    # without that year the report says so
    res2 = run_contract(
        load_contract(path), FakeSource(daily), tmp_path / "b", contract_path=path, clock=clock
    )
    assert not res2.doc["evidence"]["placebo"]["available"]


@pytest.mark.parametrize("where", ["influx", "csv"])
def test_contract_variables_enter_the_model(world, contract_file, tmp_path, where):
    """A contract names occupancy; its daily mean (InfluxDB series or a CSV the contract points
    to) enters the change-point model, which then sees what temperature alone cannot."""
    daily = world["daily"].copy()
    rng = np.random.default_rng(3)
    daily["occupancy"] = rng.uniform(0, 400, len(daily))
    daily["energy"] = daily["energy"] + 20.0 * daily["occupancy"]
    if where == "influx":
        spec = "{name: occupancy, influx: {measurement: sensor, device: counter, field: occupancy}}"
    else:
        daily[["date", "occupancy"]].to_csv(tmp_path / "occ.csv", index=False)
        spec = f"{{name: occupancy, csv: {{path: {tmp_path / 'occ.csv'}, column: occupancy}}}}"
    path = contract_file("contract.yaml", {"adjustments: []": f"adjustments: []\nvariables:\n  - {spec}"})
    clock = ManualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp())
    res = run_contract(
        load_contract(path), FakeSource(daily), tmp_path / "out", contract_path=path, clock=clock
    )
    coefs = res.outcome.baseline_fit.model.coefficients
    assert coefs["variable_occupancy"] == pytest.approx(20.0, rel=0.1)
    plain = run_contract(
        load_contract(contract_file("contract.yaml")), FakeSource(daily), tmp_path / "plain", clock=clock
    )
    assert res.outcome.baseline_fit.stats.cvrmse < 0.7 * plain.outcome.baseline_fit.stats.cvrmse


def test_contract_variable_needs_one_source(contract_file):
    from epcwatch.config import ConfigError

    bad = "{name: occupancy, influx: {field: occupancy}, csv: {path: o.csv, column: occupancy}}"
    path = contract_file("contract.yaml", {"adjustments: []": f"adjustments: []\nvariables:\n  - {bad}"})
    with pytest.raises(ConfigError) as err:
        load_contract(path)
    assert "contract.yaml:" in str(err.value) and "variables" in str(err.value)
    assert "exactly one of influx or csv" in str(err.value)
