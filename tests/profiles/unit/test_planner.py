"""The read planner on hand-made maps (the property tests are in test_planner_properties.py)."""

from __future__ import annotations

from typing import Any

import pytest

from epcwatch.profiles.model import Point, Profile, Quirks
from epcwatch.profiles.planner import DEFAULT_MAX_GAP, PlanError, Read, plan_profile, plan_reads


def pt(name: str, address: int, type_: str = "uint16", function: str = "holding", **kw: Any) -> Point:
    return Point.model_validate({"name": name, "function": function, "address": address, "type": type_, **kw})


def test_adjacent_points_coalesce_into_one_read() -> None:
    pts = [pt("voltage_l1", 0, "float32"), pt("voltage_l2", 2, "float32"), pt("voltage_l3", 4, "float32")]
    assert plan_reads(pts, Quirks()) == (Read("holding", 0, 6, ("voltage_l1", "voltage_l2", "voltage_l3")),)


def test_gaps_are_bridged_up_to_max_gap_only() -> None:
    pts = [pt("voltage_l1", 0), pt("voltage_l2", 5), pt("voltage_l3", 20)]
    assert [(r.address, r.count) for r in plan_reads(pts, Quirks(), max_gap=4)] == [(0, 6), (20, 1)]
    assert [(r.address, r.count) for r in plan_reads(pts, Quirks(), max_gap=14)] == [(0, 21)]
    assert [(r.address, r.count) for r in plan_reads(pts, Quirks(), max_gap=0)] == [(0, 1), (5, 1), (20, 1)]


def test_functions_are_never_mixed_and_come_in_a_fixed_order() -> None:
    pts = [
        pt("frequency", 3, function="input"),
        pt("voltage_l1", 3),
        pt("run_status", 3, "bool", function="coil"),
        pt("fault", 4, "bool", function="discrete"),
    ]
    assert [(r.function, r.address) for r in plan_reads(pts, Quirks())] == [
        ("coil", 3), ("discrete", 4), ("holding", 3), ("input", 3)
    ]


def test_max_registers_per_read_splits_reads() -> None:
    pts = [pt(f"voltage_l{i}", 2 * (i - 1), "float32") for i in (1, 2, 3)]
    reads = plan_reads(pts, Quirks(max_registers_per_read=4))
    assert [(r.address, r.count) for r in reads] == [(0, 4), (4, 2)]
    assert reads[0].points == ("voltage_l1", "voltage_l2")


def test_forbidden_gap_is_never_bridged() -> None:
    quirks = Quirks.model_validate({"forbidden": [{"function": "holding", "first": 3, "last": 3}]})
    pts = [pt("voltage_l1", 0), pt("voltage_l2", 5)]
    reads = plan_reads(pts, quirks)
    assert [(r.address, r.count) for r in reads] == [(0, 1), (5, 1)]
    # the same range forbidden for another function does not matter
    other = Quirks.model_validate({"forbidden": [{"function": "input", "first": 3, "last": 3}]})
    assert [(r.address, r.count) for r in plan_reads(pts, other)] == [(0, 6)]


def test_overlapping_points_share_a_read_and_a_value_is_never_split() -> None:
    pts = [pt("alarm_code", 10), pt("fault", 10, bit=3), pt("run_hours", 11, "uint32")]
    assert plan_reads(pts, Quirks(max_registers_per_read=3)) == (
        Read("holding", 10, 3, ("alarm_code", "fault", "run_hours")),
    )
    with pytest.raises(PlanError, match="forbidden"):
        bad = Quirks.model_validate({"forbidden": [{"function": "holding", "first": 12, "last": 12}]})
        plan_reads(pts, bad)


def test_scale_factor_registers_are_read_too() -> None:
    pts = [pt("active_power", 100, "int16", scale_factor={"address": 104})]
    assert [(r.address, r.count) for r in plan_reads(pts, Quirks())] == [(100, 5)]
    assert [(r.address, r.count) for r in plan_reads(pts, Quirks(), max_gap=2)] == [(100, 1), (104, 1)]


def test_plan_is_deterministic_whatever_the_point_order() -> None:
    pts = [pt("voltage_l1", 40), pt("voltage_l2", 0), pt("voltage_l3", 80, function="input")]
    assert plan_reads(pts, Quirks()) == plan_reads(list(reversed(pts)), Quirks())


def test_one_plan_per_poll_group_and_identity_last() -> None:
    prof = Profile.model_validate({
        "id": "x", "vendor": "v", "model": "m", "kind": "meter", "source": "s",
        "poll_groups": {"fast": {"interval": 1}, "slow": {"interval": 60}},
        "points": [
            {"name": "active_power", "function": "input", "address": 0, "group": "fast"},
            {"name": "energy_import", "function": "input", "address": 1, "group": "slow"},
        ],
        "identity": [{"name": "serial", "function": "holding", "address": 0, "type": "string", "length": 2}],
    })
    plans = plan_profile(prof)
    assert [(p.group, p.interval, len(p.reads)) for p in plans] == [
        ("fast", 1, 1), ("slow", 60, 1), ("identity", None, 1)
    ]
    assert plans[0].reads[0].points == ("active_power",)


def test_profile_quirk_max_gap_is_used_unless_overridden() -> None:
    base = {
        "id": "x", "vendor": "v", "model": "m", "kind": "meter", "source": "s",
        "points": [
            {"name": "active_power", "function": "input", "address": 0},
            {"name": "frequency", "function": "input", "address": 3},
        ],
    }
    assert len(plan_profile(Profile.model_validate(base))[0].reads) == 1
    strict = Profile.model_validate({**base, "quirks": {"max_gap": 0}})
    assert len(plan_profile(strict)[0].reads) == 2
    assert len(plan_profile(strict, max_gap=DEFAULT_MAX_GAP)[0].reads) == 1


def test_negative_gap_is_refused() -> None:
    with pytest.raises(PlanError):
        plan_reads([pt("voltage_l1", 0)], Quirks(), max_gap=-1)
