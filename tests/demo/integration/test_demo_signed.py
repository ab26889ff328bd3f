"""The demo signed end to end: the fast history is a signed chain per device that the live edge
agent continues, ``epcwatch verify`` passes, every kWh rests on verified readings; after one value
is altered in InfluxDB, the verified kWh drop by exactly the energy resting on that reading and
the verifier names the device and seq; run again in the same folder, it verifies again."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from epcwatch.devservices.services import free_port
from epcwatch.influx import InfluxClient
from epcwatch.savings.contract import MeterSelector
from epcwatch.savings.report import share_text
from epcwatch.savings.verified import verified_share_from_influx
from epcwatch.verify.keyring import load_keyring
from tests.demo.helpers import run_demo, services_down
from tests.support import EPCWATCH

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TZ = ZoneInfo("Asia/Shanghai")
HISTORY_DAY, LIVE_DAY = dt.date(2025, 3, 3), dt.date(2025, 3, 4)
METERS = ("b1-main", "b2-main")


def _ms(day: dt.date, hour: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=TZ).timestamp() * 1000)


def _verify(keyring: Path, url: str) -> tuple[int, dict[str, object]]:
    res = subprocess.run(
        [
            EPCWATCH,
            "verify",
            "--keyring",
            str(keyring),
            "--site",
            "civic-centre",
            "--from",
            dt.datetime(2025, 3, 3, tzinfo=TZ).isoformat(),
            "--to",
            dt.datetime(2025, 3, 6, tzinfo=TZ).isoformat(),
            "--influx-url",
            url,
            "--database",
            "epcwatch",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode in (0, 1), res.stdout + res.stderr
    return res.returncode, json.loads(res.stdout)


def test_demo_is_signed_end_to_end_and_a_tampered_value_shows(tmp_path: Path) -> None:
    mqtt_port, influx_port = free_port(), free_port()
    state = tmp_path / "state"
    try:
        out = run_demo(state, HISTORY_DAY, LIVE_DAY, mqtt_port, influx_port)
        assert "provenance   : epcwatch verify passed" in out, out
        url = f"http://127.0.0.1:{influx_port}"
        keyring = state / "demo" / "keyring.yaml"
        code, doc = _verify(keyring, url)
        assert code == 0 and doc["ok"] is True
        by = {d["device"]: d for d in doc["devices"]}  # type: ignore[attr-defined]
        # one chain per device from the history into the live day: no gap, no unsigned reading
        client = InfluxClient(url, "epcwatch")
        for m in METERS:
            # every stored reading verifies: the history day's 96 and the live day's after them
            # (counted by seq: every reading has one; a partial live read may lack a counter)
            stored = client.query(f"SELECT count(seq) FROM meter WHERE device = '{m}'")[0].values[0][1]
            assert by[m]["counts"]["verified"] == stored > 96, (by[m]["counts"], stored)
            assert by[m]["missing"] == [] and by[m]["counts"].get("unsigned", 0) == 0

        contract = SimpleNamespace(
            site="civic-centre",
            timezone="Asia/Shanghai",
            meters=[MeterSelector(device=m) for m in METERS],
            baseline=SimpleNamespace(start=dt.date(2025, 2, 1), end=dt.date(2025, 2, 2)),
            reporting=SimpleNamespace(start=HISTORY_DAY, end=LIVE_DAY),
            min_verified_share=0.99,
        )
        ring = load_keyring(keyring)
        before = verified_share_from_influx(client, contract, ring)  # type: ignore[arg-type]
        assert before.reporting.kwh > 0 and before.reporting.issues == []
        assert share_text(before.reporting.share) == "100 %" and before.verifiable

        # alter b1-main's counter reading at noon of the history day, after storage
        noon = _ms(HISTORY_DAY, 12)
        series = client.query(
            f"SELECT energy_import, seq FROM meter WHERE device = 'b1-main' AND time = {noon}ms"
        )
        ((_, value, seq),) = series[0].values
        key = next(
            str(r[0])
            for s in client.query("SHOW SERIES FROM meter WHERE device = 'b1-main'")
            for r in s.values
        )
        client.write([f"{key} energy_import={float(value) + 0.5} {noon}"])
        day_kwh = client.query(
            "SELECT energy_import FROM energy_interval WHERE interval = '1d' AND device = 'b1-main' "
            f"AND tenant = '' AND time = {_ms(HISTORY_DAY)}ms"
        )[0].values[0][1]

        after = verified_share_from_influx(client, contract, ring)  # type: ignore[arg-type]
        assert after.reporting.kwh == pytest.approx(before.reporting.kwh)
        # exactly the energy resting on the altered reading: b1-main's day
        assert after.reporting.kwh_verified == pytest.approx(before.reporting.kwh_verified - float(day_kwh))
        assert [(i.day, i.device, i.why) for i in after.reporting.issues] == [
            (HISTORY_DAY, "b1-main", f"altered after storage (seq {seq})")
        ]
        assert not after.verifiable

        code, doc = _verify(keyring, url)
        assert code == 1 and doc["ok"] is False
        by = {d["device"]: d for d in doc["devices"]}  # type: ignore[attr-defined]
        assert [a["seq"] for a in by["b1-main"]["altered"]] == [seq]
        assert [d["device"] for d in doc["devices"] if not d["ok"]] == ["b1-main"]  # type: ignore[attr-defined]

        # the demo again in the same folder, its services still up: it starts from an empty
        # database and ended MQTT sessions, so the tampering and the last run's live stretch are
        # gone, and its logs (kept from the first run) do not say "ready" before it is
        again = run_demo(state, HISTORY_DAY, LIVE_DAY, mqtt_port, influx_port)
        assert "provenance   : epcwatch verify passed" in again, again
        code, doc = _verify(keyring, url)
        assert code == 0 and doc["ok"] is True
    finally:
        services_down(state)
