"""Contract files: the shipped examples load; mistakes are reported with file, line and field."""

from __future__ import annotations

import pytest

from epcwatch.config import ConfigError
from epcwatch.savings.contract import load_contract
from tests.savings.conftest import REPO


@pytest.mark.parametrize("name", ["contract.yaml", "contract-lighting.yaml"])
def test_demo_contracts_load(name):
    c = load_contract(REPO / "demo" / "data" / name)
    assert c.site == "civic-centre" and c.timezone == "Asia/Shanghai"
    assert str(c.baseline) == "2024-01-01/2024-12-31" and str(c.reporting) == "2025-01-01/2025-12-31"
    assert c.factors.tce_kgce_per_kwh == 0.1229


def test_calendar_holidays_and_make_up_days():
    from datetime import date

    c = load_contract(REPO / "demo" / "data" / "contract.yaml")
    days = [date(2025, 1, 28), date(2025, 1, 26), date(2025, 3, 3), date(2025, 3, 1)]
    # Spring Festival holiday, make-up working Sunday, ordinary Monday, ordinary Saturday
    assert c.calendar.nonworking(days) == [True, False, False, True]


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("option: C", "option: D", 7, "option: Input should be 'B' or 'C'"),
        ("  - device: b1-main", "  - device: B1 MAIN", 16, "meters[0].device: String should match pattern"),
        ("model: auto ", "modle: auto ", 22, "modle: Extra inputs are not permitted"),
        ("timezone: Asia/Shanghai", "timezone: Mars/Olympus", 6, "unknown timezone 'Mars/Olympus'"),
        (
            "  annual_kwh: 800000",
            "  annual_kwh: -5",
            27,
            "guarantee.annual_kwh: Input should be greater than 0",
        ),
        ("share: 0.10}", "share: 0.20}", 28, "shares must be given for every band and sum to 1"),
        (
            "reporting: {start: 2025-01-01",
            "reporting: {start: 2024-06-01",
            None,
            "must start after the baseline",
        ),
    ],
)
def test_mistakes_name_file_line_and_field(contract_file, old, new, line, message):
    path = contract_file("contract.yaml", {old: new})
    with pytest.raises(ConfigError) as err:
        load_contract(path)
    text = str(err.value)
    assert str(path) in text and message in text, text
    if line is not None:
        assert f"{path}:{line}:" in text, text


def test_adjustment_needs_exactly_one_of_amount_or_fraction(contract_file):
    path = contract_file(
        "contract-lighting.yaml", {"    fraction: -0.02\n": "    fraction: -0.02\n    amount_kwh: 100\n"}
    )
    with pytest.raises(ConfigError, match=r"adjustments\[0\].*exactly one of amount_kwh or fraction"):
        load_contract(path)


def test_adjustment_outside_reporting_period(contract_file):
    path = contract_file("contract-lighting.yaml", {"  - start: 2025-07-01": "  - start: 2024-07-01"})
    with pytest.raises(ConfigError, match="inside the reporting period"):
        load_contract(path)


def test_meter_selector_needs_a_tag(contract_file):
    path = contract_file("contract.yaml", {"  - device: b1-main": "  - field: energy_import"})
    with pytest.raises(ConfigError, match=r"meters\[0\]: .*at least one of building, device"):
        load_contract(path)
