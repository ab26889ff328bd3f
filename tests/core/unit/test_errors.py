"""One error tree: every component's errors under EpcwatchError; the CLI reports those as one
line with exit 2 and lets anything else through as a bug (with its traceback)."""

from __future__ import annotations

import sys

import pytest
import typer

from epcwatch.errors import EpcwatchError


def test_every_component_error_is_a_project_error() -> None:
    from epcwatch.broker.acl import AclError
    from epcwatch.broker.config import BrokerConfigError
    from epcwatch.broker.credentials import CredentialError
    from epcwatch.broker.errors import BrokerError
    from epcwatch.clock import ClockOptionError
    from epcwatch.collector.errors import CollectorError
    from epcwatch.collector.lineprotocol import LineProtocolError
    from epcwatch.config import ConfigError
    from epcwatch.dashboards.errors import DashboardsError
    from epcwatch.dashboards.influxql import UnknownVariableError
    from epcwatch.demo.run import DemoError
    from epcwatch.devservices.services import ServiceError
    from epcwatch.edge.errors import EdgeError
    from epcwatch.influx import InfluxError
    from epcwatch.measurements import UnknownMeasurementError
    from epcwatch.mqtt import MqttError
    from epcwatch.profiles.decode import DecodeError
    from epcwatch.profiles.encode import EncodeError
    from epcwatch.profiles.errors import ProfilesError
    from epcwatch.profiles.model import ProfileError
    from epcwatch.profiles.planner import PlanError
    from epcwatch.savings.errors import SavingsError
    from epcwatch.savings.models import ModelError
    from epcwatch.savings.sufficiency import InsufficientDataError
    from epcwatch.sim.errors import SimError
    from epcwatch.sim.history import PublishError
    from epcwatch.topics import TopicError

    subtrees = {
        ProfilesError: (DecodeError, EncodeError, PlanError, ProfileError),
        SavingsError: (ModelError, InsufficientDataError),
        BrokerError: (AclError, BrokerConfigError, CredentialError),
        DashboardsError: (UnknownVariableError,),
        SimError: (PublishError,),
        EpcwatchError: (
            EdgeError,
            CollectorError,
            ConfigError,
            InfluxError,
            MqttError,
            LineProtocolError,
            TopicError,
            UnknownMeasurementError,
            ClockOptionError,
            DemoError,
            ServiceError,
        ),
    }
    for root, errors in subtrees.items():
        assert issubclass(root, EpcwatchError)
        for e in errors:
            assert issubclass(e, root), (e, root)


@pytest.fixture
def app_with(monkeypatch: pytest.MonkeyPatch):
    from epcwatch import cli

    def install(exc: Exception) -> None:
        probe = typer.Typer()

        @probe.command()
        def boom() -> None:
            raise exc

        monkeypatch.setattr(cli, "app", probe)
        monkeypatch.setattr(sys, "argv", ["epcwatch"])

    return install


def test_cli_reports_a_project_error_in_one_line_with_exit_2(app_with, capsys) -> None:
    from epcwatch import cli

    app_with(EpcwatchError("InfluxDB at http://x unreachable"))
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    assert capsys.readouterr().err == "error: InfluxDB at http://x unreachable\n"


def test_cli_lets_a_bug_through_with_its_traceback(app_with) -> None:
    from epcwatch import cli

    app_with(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        cli.main()


def test_savings_cli_no_longer_reports_a_bare_value_error_as_a_user_error(monkeypatch, tmp_path) -> None:
    from typer.testing import CliRunner

    from epcwatch.savings import csvfit

    def bug(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in the engine")

    monkeypatch.setattr(csvfit, "fit_csv", bug)
    app = typer.Typer()
    from epcwatch.savings import cli as savings_cli

    savings_cli.register(app)
    data = tmp_path / "d.csv"
    data.write_text("date,energy,temperature\n")
    res = CliRunner().invoke(
        app,
        [
            "savings",
            "fit",
            "--data",
            str(data),
            "--baseline",
            "2024-01-01/2024-12-31",
            "--reporting",
            "2025-01-01/2025-12-31",
        ],
    )
    assert isinstance(res.exception, ValueError), res.output
    assert "a bug in the engine" in str(res.exception)
