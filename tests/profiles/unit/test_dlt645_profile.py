"""DL/T 645 profile schema: loading by id or path, errors naming file, line and field, and the
value law between the simulator's encoder and the edge's decoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.profiles import dlt645
from epcwatch.profiles.dlt645_profile import (
    Dlt645Point,
    Dlt645Profile,
    decode_point,
    decode_values,
    encode_point,
    is_dlt645_profile,
    list_dlt645_profiles,
    load_any_profile,
    load_dlt645_profile,
)
from epcwatch.profiles.model import Profile, ProfileError, ProfileFile

MINIMAL = """\
vendor: Acme
model: D1
kind: meter
protocol: dlt645
version: "2007"
source: DL/T 645-2007 Appendix A
points:
  - {name: active_power, di: 0x02030000, format: XX.XXXX, signed: true, scale: 1000}
  - {name: energy_import, di: 0x00010000, format: XXXXXX.XX}
"""


def write(tmp_path: Path, text: str, name: str = "acme-d1.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_minimal_profile_loads_by_path_and_any_loader_picks_the_protocol(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    prof = load_dlt645_profile(path)
    assert prof.id == "acme-d1" and prof.version == "2007"
    assert prof.point("active_power").bcd == dlt645.BcdFormat(6, 4, True)
    assert is_dlt645_profile(str(path)) and load_any_profile(str(path)) == prof
    assert isinstance(load_any_profile("eastron-sdm630"), Profile)
    assert load_any_profile("chint-dtsu666-dlt645").protocol == "dlt645"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("format: XXXXXX.XX}", "format: XXXXXX.XX, register: 3}", "points[1].register"),  # unknown key
        ("name: energy_import", "name: energy_imported", "points[1].name"),
        ("format: XXXXXX.XX}", "format: 6.2}", "points[1].format"),
        ("scale: 1000", "scale: 0", "points[0].scale"),
        ('version: "2007"', 'version: "2009"', "version"),
        ("di: 0x02030000", "di: 0x1FFFFFFFF", "points[0].di"),
    ],
)
def test_mistakes_name_file_line_and_field(tmp_path: Path, old: str, new: str, where: str) -> None:
    path = write(tmp_path, MINIMAL.replace(old, new))
    with pytest.raises(ProfileError) as err:
        load_dlt645_profile(path)
    text = str(err.value)
    assert str(path) in text and where in text, text


def test_a_2007_identifier_in_a_1997_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="longer than a 1997 DI"):
        load_dlt645_profile(write(tmp_path, MINIMAL.replace('"2007"', '"1997"')))


def test_duplicate_points_and_unknown_groups_are_refused(tmp_path: Path) -> None:
    dup = MINIMAL.replace("name: energy_import", "name: active_power")
    with pytest.raises(ProfileError, match="defined twice"):
        load_dlt645_profile(write(tmp_path, dup))
    grp = MINIMAL.replace("format: XXXXXX.XX}", "format: XXXXXX.XX, group: energy}")
    with pytest.raises(ProfileError, match="poll group 'energy'"):
        load_dlt645_profile(write(tmp_path, grp))


def test_boolean_measurements_cannot_be_bcd(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="boolean"):
        load_dlt645_profile(write(tmp_path, MINIMAL.replace("name: energy_import", "name: run_status")))


def test_unknown_id_is_a_clear_error() -> None:
    with pytest.raises(ProfileError, match="no shipped DL/T 645 profile"):
        load_dlt645_profile("chint-dtsu999-dlt645")


def test_a_bad_value_is_missing_not_a_crash() -> None:
    prof = load_dlt645_profile("chint-ddsu666-dlt645")
    answers: list[bytes | None] = [None] * len(prof.points)
    answers[0] = b"\xab\x12"  # not BCD
    answers[1] = b"\x00\x05"  # one byte short
    values, quality, errors = decode_values(prof.points, answers)
    assert values == {} and quality == "partial"
    assert "not BCD" in errors[prof.points[0].name] and "needs 3 bytes" in errors[prof.points[1].name]


POINTS = [p for prof in list_dlt645_profiles() for p in prof.points]


@given(st.sampled_from(POINTS), st.data())
def test_simulator_encoding_and_edge_decoding_agree(point: Dlt645Point, data: st.DataObject) -> None:
    """For every shipped point, any value the format can hold goes through the simulator's
    encoder to the same raw digits and back through the edge's decoder to the same value."""
    fmt = point.bcd
    raw = data.draw(st.integers(-fmt.max_magnitude if fmt.signed else 0, fmt.max_magnitude))
    value = raw * point.scale / 10**fmt.decimals
    wire = encode_point(point, value)
    assert dlt645.decode_bcd_int(wire, fmt) == raw
    got = decode_point(point, wire)
    assert isinstance(got, float) and got == pytest.approx(value, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("id_line", ["id: acme-d1\n", ""])
def test_id_is_the_file_stem_as_for_modbus_profiles(tmp_path: Path, id_line: str) -> None:
    """Both profile kinds take their id rule from one base (ProfileFile): omitted or repeated."""
    assert load_dlt645_profile(write(tmp_path, id_line + MINIMAL)).id == "acme-d1"
    assert issubclass(Dlt645Profile, ProfileFile) and issubclass(Profile, ProfileFile)


def test_an_id_contradicting_the_file_name_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "id: other\n" + MINIMAL)
    with pytest.raises(ProfileError, match=r":1: id: .*must equal the file name 'acme-d1'"):
        load_dlt645_profile(path)
