"""DL/T 645 device profiles: a meter model's data identifiers mapped to the measurement vocabulary.

A DL/T 645 profile is a YAML file under ``device-profiles/dlt645/`` with ``protocol: dlt645``::

    vendor: CHINT
    model: DTSU666 (DL/T 645-2007)
    kind: meter
    protocol: dlt645
    version: "2007"
    source: "DL/T 645-2007 Appendix A, table A.3; CHINT DTSU666 user manual §7"
    points:
      - {name: voltage_l1, di: 0x02010100, format: XXX.X}
      - {name: active_power, di: 0x02030000, format: XX.XXXX, signed: true, scale: 1000}  # kW -> W

``di`` is the data identifier as the standard prints it (DI3 DI2 DI1 DI0; 2 bytes in the 1997
edition), ``format`` the BCD layout of its value with the decimal point where the standard puts
it, ``signed`` whether bit 7 of the most significant byte is a sign, ``scale`` what turns the
value into the vocabulary's unit (kW → W is 1000). Unknown keys are refused.

Public API: :class:`Dlt645Profile`, :class:`Dlt645Point`, :func:`shipped_dlt645_paths`,
:func:`list_dlt645_profiles`, :func:`load_dlt645_profile`, :func:`decode_values`,
:func:`encode_values` (the simulator's side), :func:`load_any_profile` (Modbus or DL/T 645, by id
or path), :func:`is_dlt645_profile`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from epcwatch import measurements
from epcwatch.config import ConfigError, load_yaml_model
from epcwatch.measurements import FieldType
from epcwatch.profiles import dlt645
from epcwatch.profiles.model import (
    PollGroup,
    Profile,
    ProfileError,
    ProfileFile,
    _Frozen,
    _profiles_root,
    load_profile,
    shipped_profile_paths,
)
from epcwatch.wire import DeviceKind, Quality, Value

DLT645_DIR: Final = "dlt645"


class Dlt645Point(_Frozen):
    """One measurement read with one data identifier."""

    name: str
    di: int = Field(ge=0, le=0xFFFFFFFF, description="data identifier DI3..DI0 (hex, as printed)")
    format: str = Field(description="BCD layout, e.g. XXXXXX.XX")
    signed: bool = Field(default=False, description="bit 7 of the most significant byte is the sign")
    scale: float = Field(default=1.0, description="multiplier to the vocabulary unit (kW -> W: 1000)")
    group: str = "default"
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            m = measurements.get(v)
        except measurements.UnknownMeasurementError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        if m.field_type is FieldType.BOOL:
            raise ValueError(f"{v} is a boolean; DL/T 645 values are BCD numbers")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        dlt645.BcdFormat.parse(v)
        return v.strip().upper()

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        if v == 0 or not math.isfinite(v):
            raise ValueError("scale must be finite and non-zero")
        return v

    @property
    def bcd(self) -> dlt645.BcdFormat:
        return dlt645.BcdFormat.parse(self.format, self.signed)


class Dlt645Profile(ProfileFile):
    """A DL/T 645 meter model (one YAML file; ``id`` is the file stem, see :class:`ProfileFile`)."""

    protocol: Literal["dlt645"]
    version: dlt645.Version = Field(description="DL/T 645 edition: 2007 (4-byte DI) or 1997 (2-byte DI)")
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    kind: DeviceKind
    source: str = Field(min_length=1, description="the public documents the data identifiers follow")
    description: str | None = None
    poll_groups: dict[str, PollGroup] = Field(default_factory=lambda: {"default": PollGroup(interval=10.0)})
    points: tuple[Dlt645Point, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> Dlt645Profile:
        names: set[str] = set()
        limit = 1 << (8 * dlt645.DI_LEN[self.version])
        for p in self.points:
            if p.name in names:
                raise ValueError(f"point {p.name!r} defined twice")
            names.add(p.name)
            if p.di >= limit:
                raise ValueError(f"point {p.name!r}: DI {p.di:#x} is longer than a {self.version} DI")
            if p.group not in self.poll_groups:
                raise ValueError(f"point {p.name!r}: poll group {p.group!r} not in poll_groups")
        return self

    def point(self, name: str) -> Dlt645Point:
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(name)


AnyProfile = Profile | Dlt645Profile


def _value(raw: int, p: Dlt645Point) -> float:
    den = int(10**p.bcd.decimals)
    if float(p.scale).is_integer():
        return raw * int(p.scale) / den  # one rounding: 123456 kW·10⁻⁴ -> 12345.6 W exactly
    return raw / den * p.scale


def decode_point(p: Dlt645Point, raw: bytes) -> Value:
    """A point's value in vocabulary units from its value bytes; raises :class:`dlt645.Dlt645Error`."""
    v = _value(dlt645.decode_bcd_int(raw, p.bcd), p)
    if measurements.VOCABULARY[p.name].field_type is FieldType.INT:
        if not v.is_integer():
            raise dlt645.BcdError(f"{p.name}: {v} is not an integer")
        return int(v)
    return v


def decode_values(
    points: Sequence[Dlt645Point], answers: Sequence[bytes | None]
) -> tuple[dict[str, Value], Quality, dict[str, str]]:
    """Values of ``points`` from their answers (``None``: the read failed); quality is ``partial``
    when any point is missing; the third item names each failed point's reason."""
    if len(answers) != len(points):
        raise ValueError(f"{len(answers)} answers for {len(points)} points")
    values: dict[str, Value] = {}
    errors: dict[str, str] = {}
    for p, raw in zip(points, answers, strict=True):
        if raw is None:
            errors[p.name] = "no answer"
            continue
        try:
            values[p.name] = decode_point(p, raw)
        except dlt645.Dlt645Error as exc:
            errors[p.name] = str(exc)
    return values, ("partial" if errors else "good"), errors


def encode_point(p: Dlt645Point, value: float) -> bytes:
    """The value bytes a meter holding ``value`` (vocabulary units) sends; raises :class:`dlt645.BcdError`."""
    return dlt645.encode_value(value / p.scale, p.bcd)


def encode_values(profile: Dlt645Profile, values: Mapping[str, float]) -> dict[int, bytes]:
    """DI -> value bytes for every point with a value (what a simulated meter answers)."""
    return {p.di: encode_point(p, float(values[p.name])) for p in profile.points if p.name in values}


# -- the library -----------------------------------------------------------------------------------


@cache
def shipped_dlt645_paths() -> dict[str, Path]:
    """Shipped DL/T 645 profile ids -> YAML paths (``device-profiles/dlt645/*.yaml``)."""
    return {p.stem: p for p in sorted((_profiles_root() / DLT645_DIR).glob("*.yaml"))}


def load_dlt645_file(path: str | Path) -> Dlt645Profile:
    p = Path(path)
    try:
        return load_yaml_model(p, Dlt645Profile, context={"id": p.stem})
    except ConfigError as exc:
        raise ProfileError(exc.path, exc.problems) from None


@cache
def _load_shipped(profile_id: str) -> Dlt645Profile:
    return load_dlt645_file(shipped_dlt645_paths()[profile_id])


def load_dlt645_profile(ref: str | Path) -> Dlt645Profile:
    """A shipped DL/T 645 profile by id or a file by path."""
    ref_s = str(ref)
    if ref_s in shipped_dlt645_paths():
        return _load_shipped(ref_s)
    if isinstance(ref, Path) or ref_s.endswith((".yaml", ".yml")) or "/" in ref_s:
        return load_dlt645_file(ref_s)
    raise ProfileError(ref_s, [" no shipped DL/T 645 profile with this id"])


def list_dlt645_profiles() -> list[Dlt645Profile]:
    return [_load_shipped(i) for i in shipped_dlt645_paths()]


def is_dlt645_profile(ref: str | Path) -> bool:
    """Whether ``ref`` names a DL/T 645 profile (a shipped id, or a file saying ``protocol: dlt645``)."""
    ref_s = str(ref)
    if ref_s in shipped_dlt645_paths():
        return True
    if ref_s in shipped_profile_paths():
        return False
    path = Path(ref_s)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return False  # the Modbus loader reports the problem with its line
        return isinstance(doc, dict) and doc.get("protocol") == "dlt645"
    return False


def load_any_profile(ref: str | Path) -> AnyProfile:
    """A Modbus or DL/T 645 profile by shipped id or path (``protocol:`` decides for files)."""
    return load_dlt645_profile(ref) if is_dlt645_profile(ref) else load_profile(ref)
