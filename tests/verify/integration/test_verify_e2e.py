"""Done-when of provenance, through real Mosquitto, collector and InfluxDB: the verifier names the
device and seq of each tampering, and a key rotation passes."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import typer
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from epcwatch import provenance
from epcwatch.collector.rollup import Interval
from epcwatch.collector.rollup_job import InfluxQL, RollupSettings, rollup_lines
from epcwatch.influx import InfluxClient
from epcwatch.provenance import Keyring
from epcwatch.savings.contract import MeterSelector
from epcwatch.savings.verified import verified_share_from_influx
from epcwatch.verify.cli import register
from epcwatch.verify.keyring import load_keyring
from tests.collector.conftest import (
    DeadLetters,
    Publisher,
    collector_config,
    counts_per_device,
    wait_for,
)

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
STEP = 60_000


def ts(seq: int) -> int:
    return T0 + seq * STEP


class Chain:
    """One device's readings, chained and signed the way the edge does (docs/provenance.md)."""

    def __init__(self, device: str, site: str = "s1") -> None:
        self.site, self.device = site, device
        self.digests: dict[int, bytes] = {}

    def reading(self, seq: int) -> dict[str, object]:
        return {
            "seq": seq,
            "ts": ts(seq),
            "values": {"energy_import": 1000.0 + seq * 0.25, "active_power": 15.0},
        }

    def message(self, seqs: range, key: Ed25519PrivateKey) -> bytes:
        readings = [self.reading(s) for s in seqs]
        chained = [provenance.ChainReading(r["seq"], r["ts"], r["values"]) for r in readings]  # type: ignore[arg-type]
        prev = self.digests.get(seqs[0] - 1, provenance.GENESIS)
        sr = provenance.signed_range(self.site, self.device, chained, prev)
        self.digests.update(zip(seqs, sr.digests, strict=True))
        proof = {
            "kid": provenance.key_id(key.public_key()),
            "first_prev": base64.b64encode(prev).decode(),
            "sig": base64.b64encode(provenance.sign(key, sr)).decode(),
        }
        return orjson.dumps(
            {"site": self.site, "device": self.device, "kind": "meter", "readings": readings, "proof": proof}
        )

    def topic(self) -> str:
        return f"epc/v1/{self.site}/{self.device}/telemetry"


def _pub(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(provenance.public_bytes(key.public_key())).decode()


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def keyring_file(path: Path, entries: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"keys": entries}), encoding="utf-8")
    return path


def run_verify(*args: str) -> tuple[int, dict[str, object]]:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    res = CliRunner().invoke(app, ["verify", *args, "--json"])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def as_wire(wire: int, msgs: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Schema-1 messages as sent (wire 1), or each as a schema-2 site message whose device block
    carries the proof (wire 2, the edge's default)."""
    if wire == 1:
        return msgs
    out = []
    for _topic, payload in msgs:
        doc = orjson.loads(payload)
        block = {k: v for k, v in doc.items() if k not in ("v", "site")}
        out.append(
            (
                f"epc/v1/{doc['site']}/_site/telemetry",
                orjson.dumps({"v": 2, "site": doc["site"], "devices": [block]}),
            )
        )
    return out


@pytest.mark.parametrize("wire", [1, 2], ids=["schema1", "schema2"])
def test_verifier_flags_each_tampering_precisely(
    mosquitto, influxdb, database, collectors, tmp_path, wire
) -> None:
    old, new, revoked, foreign = (Ed25519PrivateKey.generate() for _ in range(4))
    rotation = ts(6)
    entries = [
        {"site": "s1", "public_key": _pub(old), "valid_until": _iso(rotation)},
        {"site": "s1", "public_key": _pub(new), "valid_from": _iso(rotation)},
        {"site": "s1", "public_key": _pub(revoked)},
        {"site": "s2", "public_key": _pub(foreign)},
    ]
    ring_at_ingest = keyring_file(tmp_path / "ring-ingest.yaml", entries)
    cfg = collector_config(mosquitto.port, influxdb.url, database, client_id="prov-1", group="prov")
    cfg["keyring"] = str(ring_at_ingest)
    c = collectors("c1", cfg)
    dl = DeadLetters(mosquitto.port, "prov")
    pub = Publisher(mosquitto.port)
    c.start()
    try:
        devs = {d: Chain(d) for d in ("rot", "edit", "del", "inj", "rep", "rev", "gap")}
        msgs: list[tuple[str, bytes]] = []
        for d in ("rot", "edit", "del", "inj", "rep"):
            for a in range(0, 12, 3):  # 4 messages of 3 readings; the rotation at seq 6
                msgs.append((devs[d].topic(), devs[d].message(range(a, a + 3), old if a < 6 else new)))
        replayed = msgs[-4]  # device rep, seq 0..2
        msgs.append((devs["rev"].topic(), devs["rev"].message(range(0, 4), old)))
        msgs.append((devs["rev"].topic(), devs["rev"].message(range(4, 8), revoked)))  # revoked later
        msgs.append((devs["gap"].topic(), devs["gap"].message(range(0, 4), old)))
        devs["gap"].message(range(4, 7), old)  # signed, then lost in an outage (never published)
        msgs.append((devs["gap"].topic(), devs["gap"].message(range(7, 10), new)))
        injected = devs["inj"].message(range(12, 13), foreign)  # s2's key vouching for s1's reading
        pub.publish(as_wire(wire, [*msgs, (devs["inj"].topic(), injected)]))
        want = {"rot": 12, "edit": 12, "del": 12, "inj": 12, "rep": 12, "rev": 8, "gap": 7}
        assert wait_for(lambda: counts_per_device(influxdb.url, database) == want, 60), (
            counts_per_device(influxdb.url, database),
            c.log()[-3000:],
        )
        # the collector refused the injected message, naming why
        assert wait_for(lambda: len(dl) == 1, 30), dl.items
        assert dl.items[0]["reason"].startswith("provenance: key of another site")
        # a replay of an old message, received again later
        pub.publish(as_wire(wire, [replayed]))
        client = InfluxClient(influxdb.url, database)
        assert wait_for(
            lambda: len(client.query("SELECT * FROM provenance WHERE device = 'rep'")[0].rows) == 5, 30
        )
    finally:
        pub.close()
        dl.close()

    # tampering in the database after storage
    client.write([f"meter,device=edit,site=s1 energy_import=1234.5,active_power=15.0,seq=4i {ts(4)}"])
    client.execute(f"DELETE FROM meter WHERE device = 'del' AND time >= {ts(5)}ms AND time <= {ts(5)}ms")
    # an attacker with write access injects a reading and a record signed with a foreign key
    forged = orjson.loads(injected)
    sr = provenance.SignedRange(
        "s1", "inj", 12, 12, base64.b64decode(forged["proof"]["first_prev"]), (devs["inj"].digests[12],)
    )
    client.write(
        [
            f"meter,device=inj,site=s1 energy_import=1003.0,active_power=15.0,seq=12i {ts(12)}",
            f"provenance,device=inj,site=s1 first_seq=12i,last_seq=12i,last_ts={ts(12)}i,"
            f'first_prev="{forged["proof"]["first_prev"]}",digests="{base64.b64encode(sr.digests[0]).decode()}",'
            f'sig="{forged["proof"]["sig"]}",kid="{forged["proof"]["kid"]}" {ts(13)}',
        ]
    )
    # after the fact, key `revoked` is found compromised
    entries[2]["revoked"] = True
    ring = keyring_file(tmp_path / "ring.yaml", entries)

    code, doc = run_verify(
        "--keyring",
        str(ring),
        "--site",
        "s1",
        "--from",
        _iso(T0),
        "--to",
        _iso(ts(20)),
        "--influx-url",
        influxdb.url,
        "--database",
        database,
    )
    assert code == 1 and doc["ok"] is False
    by = {d["device"]: d for d in doc["devices"]}  # type: ignore[attr-defined]
    assert by["rot"]["ok"] and by["rot"]["counts"]["verified"] == 12
    assert by["edit"]["altered"] == [{"seq": 4, "time": _iso(ts(4)).replace("+00:00", "Z")}]
    assert by["edit"]["counts"]["verified"] == 11
    assert by["del"]["missing"] == [{"first_seq": 5, "last_seq": 5}] and by["del"]["counts"]["verified"] == 11
    assert [(i["seq"], i["reason"]) for i in by["inj"]["invalid"]] == [(12, "key of another site")]
    assert by["inj"]["counts"]["verified"] == 12
    assert (
        by["rep"]["replayed"] == [{"first_seq": 0, "last_seq": 2}] and by["rep"]["counts"]["verified"] == 12
    )
    assert [(i["seq"], i["reason"]) for i in by["rev"]["invalid"]] == [
        (s, "revoked key") for s in range(4, 8)
    ]
    assert by["rev"]["counts"]["verified"] == 4
    assert by["gap"]["missing"] == [{"first_seq": 4, "last_seq": 6}] and by["gap"]["counts"]["verified"] == 7
    assert doc["total"]["verified"] == 12 + 11 + 11 + 12 + 12 + 4 + 7  # type: ignore[index]

    # interval energy keeps the seqs of the counter readings at its edges
    lines = rollup_lines(
        InfluxQL(client), RollupSettings({}), Interval.QUARTER, T0, ts(12), measurements=["meter"]
    )
    rot = sorted(line for line in lines if ",device=rot," in line)
    assert len(rot) == 2  # 22:00 and 22:15 UTC quarters; readings at 22:13:20 + n minutes
    assert "first_seq=0i" in rot[0] and "last_seq=2i" in rot[0]
    assert "first_seq=1i" in rot[1] and "last_seq=11i" in rot[1]

    # the M&V report's share of energy on verified readings: a day of device rot (all verified)
    # and of device edit (its seq 4 altered), from the daily rollup
    client.write(
        rollup_lines(InfluxQL(client), RollupSettings({}), Interval.DAY, T0, ts(12), measurements=["meter"])
    )
    day = dt.datetime.fromtimestamp(T0 / 1000, dt.UTC).date()
    contract = SimpleNamespace(
        site="s1",
        timezone="UTC",
        meters=[MeterSelector(device="rot"), MeterSelector(device="edit")],
        baseline=SimpleNamespace(start=day - dt.timedelta(days=3), end=day - dt.timedelta(days=2)),
        reporting=SimpleNamespace(start=day, end=day),
        min_verified_share=0.9,
    )
    ring_now: Keyring = load_keyring(ring)
    share = verified_share_from_influx(client, contract, ring_now)  # type: ignore[arg-type]
    rot_kwh = 11 * 0.25  # seq 0..11, 0.25 kWh a minute
    assert share.reporting.kwh_verified == pytest.approx(rot_kwh)
    assert [(i.day, i.device, i.why) for i in share.reporting.issues] == [
        (day, "edit", "altered after storage (seq 4)")
    ]
    assert share.baseline.kwh == 0 and share.baseline.share is None
    assert not share.verifiable  # edit's tampered day weighs more than 10 %
