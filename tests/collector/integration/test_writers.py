"""The writers against real servers: success, partial writes, and errors mapped to our tree."""

from __future__ import annotations

import urllib.request

import pytest

from epcwatch.collector.errors import RejectedWriteError, TransientWriteError
from epcwatch.collector.pipeline import Inbound, Pipeline
from epcwatch.collector.writers import V1Writer, V2Writer, parse_retry_after
from epcwatch.devservices.services import free_port, influx_query
from tests.collector.unit.test_pipeline import FakeBroker

pytestmark = pytest.mark.integration
TS = 1_700_000_000_000


def test_v1_partial_write_dead_letters_only_the_conflicting_points(influxdb, database, request) -> None:
    # someone else already wrote alarm_code as a float into the same shard: our integer points
    # conflict with it
    req = urllib.request.Request(
        f"{influxdb.url}/write?db={database}&precision=ms",
        data=f"meter,device=x,site=s1 alarm_code=1.5 {TS - 1000}".encode(),
        method="POST",
    )
    urllib.request.urlopen(req).close()
    writer, broker = V1Writer(influxdb.url, database), FakeBroker()
    request.addfinalizer(writer.close)
    p = Pipeline(writer, broker, group="g", collector="c", health_interval_s=1e9)
    p.health.line(0.0, p.monotonic())
    for seq in range(6):
        values = {"alarm_code": 2} if seq in (1, 4) else {"active_power": 1.0}
        p.add(Inbound(seq, 1, "epc/v1/s1/d1/telemetry", telemetry_values(seq, values), 1))
    p.flush()
    assert broker.acked == list(range(6))
    assert sorted(d.reason.split(":")[0] for d in broker.letters) == ["rejected_by_database"] * 2
    assert all("field type conflict" in d.reason for d in broker.letters)
    doc = influx_query(influxdb.url, "SELECT count(active_power) FROM meter WHERE device = 'd1'", db=database)
    assert doc["results"][0]["series"][0]["values"][0][1] == 4  # type: ignore[index]
    writer.close()


def telemetry_values(seq: int, values: dict[str, object]) -> bytes:
    import orjson

    return orjson.dumps(
        {
            "site": "s1",
            "device": "d1",
            "kind": "meter",
            "readings": [{"seq": seq, "ts": TS + seq, "values": values}],
        }
    )


def test_v1_errors(influxdb) -> None:
    with pytest.raises(TransientWriteError, match="database not found"):
        V1Writer(influxdb.url, "no_such_db").write(b"m f=1.0 1")
    with pytest.raises(RejectedWriteError, match="unable to parse"):
        V1Writer(influxdb.url, "epcwatch").write(b"this is not line protocol")
    with pytest.raises(TransientWriteError, match="unreachable"):
        V1Writer(f"http://127.0.0.1:{free_port()}", "epcwatch").write(b"m f=1.0 1")


def test_v2_writer_errors_are_ours(victoria) -> None:
    # nothing listens: the library's (urllib3-future) connection error becomes a TransientWriteError
    with pytest.raises(TransientWriteError):
        V2Writer(f"http://127.0.0.1:{free_port()}", "b", "o", "t", timeout=2).write(b"m f=1.0 1")
    w = V2Writer(victoria.url, "b", "o", "t")
    w.write(b"meter,site=s1,device=d1 active_power=1.0 " + str(TS).encode())
    w.close()


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
