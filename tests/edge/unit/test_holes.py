"""Read plans that learn a device's holes: the probe, re-planning, failure reports, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcwatch.edge.errors import ExceptionResponseError
from epcwatch.edge.holes import DeviceHoles, Hole, HoleStore, decode, encode, gaps, probe_read
from epcwatch.edge.poller import REFUSED, poll_learning
from epcwatch.edge.profile_plan import FUNCTION_CODES, device_plan
from epcwatch.measurements import VOCABULARY, FieldType
from epcwatch.profiles.encode import encode_point, register_image
from epcwatch.profiles.model import load_profile, shipped_profile_paths
from epcwatch.testing.fake_transport import FakeTransport

SDM630 = "eastron-sdm630"


def _sparse_image(profile_id: str) -> tuple[dict[tuple[int, int], int | bool], dict[str, Any]]:
    """The registers of a profile's points only (a device that refuses everything else), and the
    values they hold: True for booleans, 1 for the rest (points whose encoding refuses 1, such as
    some enumerations, are left at 0)."""
    profile = load_profile(profile_id)
    values: dict[str, Any] = {}
    for p in profile.points:
        v: Any = True if VOCABULARY[p.name].field_type is FieldType.BOOL else 1
        try:
            encode_point(p, v)
        except ValueError:
            v = False if VOCABULARY[p.name].field_type is FieldType.BOOL else 0
        values[p.name] = v
    image = register_image(profile, values)
    flat = {(FUNCTION_CODES[t], a): v for t, regs in image.items() for a, v in regs.items()}
    return flat, values


def test_gaps_between_blocks() -> None:
    assert gaps([(0, 2), (2, 2), (10, 2), (11, 4)]) == [(4, 9)]
    assert gaps([(5, 1)]) == []


def _reader(image: dict[tuple[int, int], int | bool]) -> tuple[FakeTransport, object]:
    fake = FakeTransport()
    fake.set_image(1, image)

    async def read(function: int, address: int, count: int) -> object:
        return await fake.read(function, address, count, 1, 1.0)

    return fake, read


def test_probe_finds_the_refused_gap_only() -> None:
    # blocks 0-1, 4-5, 10-11; 2-3 is readable, 6-9 is not
    image = {(4, a): 1 for a in (0, 1, 2, 3, 4, 5, 10, 11)}
    _, read = _reader(image)
    learned = asyncio.run(probe_read(read, 4, ((0, 2), (4, 2), (10, 2))))  # type: ignore[arg-type]
    assert learned == {Hole(4, 6, 9)}


def test_probe_learns_a_refused_point() -> None:
    image = {(3, a): 1 for a in (0, 1, 2, 3)}  # 8 is not there at all
    _, read = _reader(image)
    learned = asyncio.run(probe_read(read, 3, ((0, 2), (2, 2), (8, 1))))  # type: ignore[arg-type]
    assert learned == {Hole(3, 8, 8)}


def test_probe_stops_at_a_timeout_without_learning() -> None:
    fake = FakeTransport()  # unit 1 has no image: every request times out

    async def read(function: int, address: int, count: int) -> object:
        return await fake.read(function, address, count, 1, 0.01)

    assert asyncio.run(probe_read(read, 3, ((0, 2), (8, 2)))) == frozenset()
    assert len(fake.requests) == 1


@pytest.mark.parametrize("profile_id", sorted(shipped_profile_paths()))
def test_every_shipped_profile_reads_a_device_that_refuses_its_gaps(profile_id: str) -> None:
    """``max_gap`` is a hint, not a trap: on a device that answers only its mapped registers,
    one learning poll delivers every point, and the learned plan then reads without a refusal."""
    image, _ = _sparse_image(profile_id)
    full = device_plan(profile_id)
    dense = FakeTransport()
    dense_image = dict(image)
    for r in full.reads:  # a device that answers the bridged gaps: the reference values
        for a in range(r.address, r.address + r.count):
            dense_image.setdefault((r.function, a), False if r.function in (1, 2) else 0)
    dense.set_image(1, dense_image)
    reference, _ = asyncio.run(poll_learning(dense, full, 1, 1.0, 0))

    fake = FakeTransport()
    fake.set_image(1, image)
    outcome, learned = asyncio.run(poll_learning(fake, full, 1, 1.0, 0))
    assert outcome.values == reference.values
    assert outcome.failures == reference.failures
    assert learned.refused == ()
    bridged = any(len(r.blocks) > 1 and (r.count > sum(c for _, c in r.blocks)) for r in full.reads)
    assert (learned is not full) == bridged or learned.reads == full.reads
    fake.requests.clear()
    again, _ = asyncio.run(poll_learning(fake, learned, 1, 1.0, 0))
    assert again.values == reference.values
    assert len(fake.requests) == len(learned.reads)  # no refusal, no probe


def test_sdm630_on_a_meter_refusing_its_holes() -> None:
    """The shipped SDM630 profile bridges gaps of up to 16 registers; a meter that answers
    exception 2 outside its map failed 5 of its reads before the plan learned."""
    image, _ = _sparse_image(SDM630)
    plan = device_plan(SDM630)
    fake = FakeTransport()
    fake.set_image(1, image)
    outcome, learned = asyncio.run(poll_learning(fake, plan, 1, 1.0, 0))
    assert len(outcome.values) == len(load_profile(SDM630).points)
    assert outcome.quality == "good" and outcome.failures == {}
    assert learned.holes and all(h.function == 4 for h in learned.holes)


def test_a_refused_point_is_left_out_and_reported() -> None:
    image, _ = _sparse_image(SDM630)
    del image[(4, 0x46)], image[(4, 0x47)]  # frequency: not on this firmware
    fake = FakeTransport()
    fake.set_image(1, image)
    outcome, learned = asyncio.run(poll_learning(fake, device_plan(SDM630), 1, 1.0, 0))
    assert "frequency" not in outcome.values
    assert outcome.failures == {"frequency": REFUSED}
    assert learned.refused == ("frequency",)
    assert len(outcome.values) == len(load_profile(SDM630).points) - 1


def test_failures_name_each_point_of_a_failed_read() -> None:
    image, _ = _sparse_image(SDM630)
    fake = FakeTransport()
    fake.set_image(1, image)
    _, plan = asyncio.run(poll_learning(fake, device_plan(SDM630), 1, 1.0, 0))
    victim = plan.reads[0]
    fake.fail_next(1, ExceptionResponseError(4))  # server device failure: the device is alive
    outcome, after = asyncio.run(poll_learning(fake, plan, 1, 1.0, 0))
    assert after is plan
    assert set(outcome.failures) == set(victim.points)
    assert all("exception 4" in why for why in outcome.failures.values())
    assert outcome.quality == "partial"


holes_st = st.frozensets(
    st.builds(
        lambda f, a, n: Hole(f, a, min(0xFFFF, a + n)),
        st.integers(1, 4),
        st.integers(0, 0xFFFF),
        st.integers(0, 200),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True), holes_st, max_size=5))
def test_store_round_trip(devices: dict[str, frozenset[Hole]]) -> None:
    doc = {d: DeviceHoles(f"p@b/{i}", h) for i, (d, h) in enumerate(devices.items())}
    back = decode(encode(doc))
    assert back == {d: v for d, v in doc.items() if v.holes}


def test_store_survives_a_restart_and_forgets_another_device(tmp_path: Path) -> None:
    path = tmp_path / "learned-holes.json"
    store = HoleStore(path)
    store.remember("m1", "eastron-sdm630@gw/1", frozenset({Hole(4, 18, 29)}))
    again = HoleStore(path)
    assert again.holes("m1", "eastron-sdm630@gw/1") == {Hole(4, 18, 29)}
    assert again.holes("m1", "eastron-sdm630@gw/2") == frozenset()  # the id now names another meter
    path.write_text("{not json")
    assert HoleStore(path).holes("m1", "eastron-sdm630@gw/1") == frozenset()
