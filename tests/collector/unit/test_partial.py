from __future__ import annotations

from epcwatch.collector.partial import identify

LINES = [
    "meter,device=d1,site=s1 active_power=1.0,alarm_code=3i 1",
    "meter,device=d2,site=s1 active_power=2i 2",
    "hvac,device=d3,site=s1 active_power=2i 3",
    "meter,device=d4,site=s1 f=x 4",
]


def test_type_conflict_names_lines_by_measurement_field_and_type() -> None:
    msg = (
        'partial write: field type conflict: input field "active_power" on measurement "meter" '
        "is type integer, already exists as type float dropped=1"
    )
    assert identify(msg, LINES) == {1}


def test_unparsable_lines_are_matched_exactly() -> None:
    msg = f"partial write: unable to parse '{LINES[3]}': invalid boolean\nunable to parse 'zzz': bad"
    assert identify(msg, LINES) == {3}


def test_unknown_wording_names_nothing() -> None:
    assert identify("partial write: points beyond retention policy dropped=2", LINES) == set()
