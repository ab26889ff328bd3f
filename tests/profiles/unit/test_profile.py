"""Profile schema: loading, defaults, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from epcwatch.profiles.model import Profile, ProfileError, list_profiles, load_profile, shipped_profile_paths

MINIMAL = """\
vendor: Acme
model: M1
kind: meter
source: Acme M1 manual
defaults: {function: holding, type: float32, order: CDAB}
points:
  - {name: active_power, address: 10}
  - {name: energy_import, address: 20, type: uint32, scale: 0.01}
"""


def write(tmp_path: Path, text: str, name: str = "acme-m1.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_minimal_profile_inherits_defaults_and_takes_id_from_file_name(tmp_path: Path) -> None:
    prof = load_profile(str(write(tmp_path, MINIMAL)))
    assert prof.id == "acme-m1"
    power, energy = prof.points
    assert (power.function, power.type, power.order) == ("holding", "float32", "CDAB")
    assert (energy.type, energy.scale, energy.order) == ("uint32", 0.01, "CDAB")
    assert prof.poll_groups["default"].interval == 10.0


def test_profile_is_frozen(tmp_path: Path) -> None:
    prof = load_profile(write(tmp_path, MINIMAL))
    with pytest.raises(ValidationError):
        prof.vendor = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("replace", "by", "line", "field", "words"),
    [
        ("name: active_power", "name: active_pwr", 7, "points[0].name", "active_power"),
        ("address: 20,", "address: 20, colour: red,", 8, "points[1].colour", "Extra inputs"),
        ("kind: meter", "kind: toaster", 3, "kind", "meter"),
        ("address: 10", "address: 70000", 7, "points[0].address", "65535"),
        ("type: uint32", "type: uint24", 8, "points[1].type", "uint16"),
        ("scale: 0.01", "scale: 0", 8, "points[1].scale", "non-zero"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, replace: str, by: str, line: int, field: str, words: str
) -> None:
    assert replace in MINIMAL
    path = write(tmp_path, MINIMAL.replace(replace, by))
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    msg = str(err.value)
    assert f"{path}:{line}: {field}" in msg
    assert words in msg


def test_id_in_file_must_match_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "id: other\n" + MINIMAL)
    with pytest.raises(ProfileError, match=r":1: id: .*must equal the file name 'acme-m1'"):
        load_profile(path)


def test_register_types_on_bit_tables_are_rejected(tmp_path: Path) -> None:
    text = MINIMAL + "  - {name: run_status, function: coil, address: 3}\n"
    with pytest.raises(ProfileError, match="coils and discrete inputs hold type bool"):
        load_profile(write(tmp_path, text))


def test_string_measurements_are_rejected_but_identity_strings_are_fine(tmp_path: Path) -> None:
    bad = MINIMAL + "  - {name: frequency, address: 40, type: string, length: 4}\n"
    with pytest.raises(ProfileError, match="strings belong under identity"):
        load_profile(write(tmp_path, bad))
    good = MINIMAL + "identity:\n  - {name: serial, address: 40, type: string, length: 4}\n"
    prof = load_profile(write(tmp_path, good))
    assert prof.identity[0].group == "identity"
    assert prof.identity[0].count == 4


def test_point_in_forbidden_range_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "defaults:", "quirks:\n  forbidden: [{function: holding, first: 11, last: 11}]\ndefaults:"
    )
    with pytest.raises(ProfileError, match="'active_power' lies in a forbidden range"):
        load_profile(write(tmp_path, text))


def test_duplicate_point_and_undefined_group(tmp_path: Path) -> None:
    dup = MINIMAL + "  - {name: active_power, address: 30}\n"
    with pytest.raises(ProfileError, match="defined twice"):
        load_profile(write(tmp_path, dup))
    grp = MINIMAL + "  - {name: frequency, address: 30, group: fast}\n"
    with pytest.raises(ProfileError, match="poll group 'fast' not in poll_groups"):
        load_profile(write(tmp_path, grp))


def test_64bit_order_synonyms_and_bit_field_checks() -> None:
    base = {"vendor": "a", "model": "b", "kind": "hvac", "source": "s", "id": "x"}
    prof = Profile.model_validate(
        {**base, "points": [{"name": "run_hours", "function": "input", "address": 0, "type": "uint64",
                             "order": "GHEFCDAB"}]}
    )
    assert prof.points[0].order == "CDAB"
    with pytest.raises(ValidationError, match="bit 16 outside a uint16"):
        Profile.model_validate(
            {**base, "points": [{"name": "fault", "function": "holding", "address": 0, "bit": 16}]}
        )
    with pytest.raises(ValidationError, match="needs true/false"):
        Profile.model_validate(
            {**base, "points": [{"name": "fault", "function": "holding", "address": 0, "enum": {0: 1}}]}
        )


def test_unknown_id_suggests_close_matches() -> None:
    with pytest.raises(ProfileError, match="did you mean eastron-sdm630"):
        load_profile("eastron-sdm63")


def test_shipped_profiles_load_by_id() -> None:
    paths = shipped_profile_paths()
    assert "eastron-sdm630" in paths
    profiles = list_profiles()
    assert [p.id for p in profiles] == sorted(paths)
    sdm = load_profile("eastron-sdm630")
    assert sdm.kind == "meter" and sdm.source
    names = {p.name for p in sdm.points}
    assert {"voltage_l1", "current_l3", "active_power", "frequency", "energy_import", "energy_export",
            "energy_total"} <= names


def test_sentinels_must_fit_the_type() -> None:
    base = {"vendor": "a", "model": "b", "kind": "meter", "source": "s", "id": "x"}
    point = {"name": "active_power", "function": "holding", "address": 0}
    for bad, words in (
        ({"type": "int16", "no_value": ["nan"]}, "nan needs a float type"),
        ({"type": "float32", "no_value": ["max"]}, "max needs an integer type"),
        ({"type": "uint16", "no_value": [-1]}, "outside uint16"),
        ({"type": "int16", "no_value": [70000]}, "outside int16"),
    ):
        with pytest.raises(ValidationError, match=words):
            Profile.model_validate({**base, "points": [{**point, **bad}]})


def test_overlapping_points_must_fit_one_read(tmp_path: Path) -> None:
    text = MINIMAL.replace("defaults:", "quirks: {max_registers_per_read: 4}\ndefaults:") + (
        "  - {name: voltage_l1, address: 21, type: uint32}\n"
    )
    with pytest.raises(ProfileError, match=r"overlapping points at holding 20\.\.22 span 3"):
        load_profile(write(tmp_path, text.replace("max_registers_per_read: 4", "max_registers_per_read: 2")))
    assert load_profile(write(tmp_path, text)).quirks.max_registers_per_read == 4
