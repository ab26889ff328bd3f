"""Device profiles: one YAML register map per device model, validated into frozen models.

Public API
----------
- :class:`Profile` — a device model's register map: ``id`` (the file stem, e.g.
  ``eastron-sdm630``), ``vendor``, ``model``, ``kind`` (``meter``/``hvac``/``lighting``/``sensor``),
  ``source`` (the manual or public map it follows), ``defaults``, ``quirks``, ``poll_groups``,
  ``points`` (measurements) and ``identity`` (serial number, firmware… read once).
- :class:`Point` — one measurement: ``name`` from the closed vocabulary
  (:mod:`epcwatch.measurements`), ``function``, ``address``, ``type``, ``order``, ``scale``,
  ``offset``, ``scale_factor``, ``no_value``, ``enum``, ``bit``, ``group``.
  :class:`IdentityPoint` is the same without the vocabulary check (free-form name, strings allowed).
- :class:`Quirks`, :class:`ForbiddenRange`, :class:`ScaleFactor`, :class:`PollGroup`, :class:`Defaults`.
- :func:`load_profile` ``(ref) -> Profile``: ``ref`` is a shipped profile id (looked up in the
  package ``epcwatch.device_profiles``) or a path to a YAML file.
- :func:`list_profiles` ``() -> list[Profile]``: every shipped profile, sorted by id.
- :func:`shipped_profile_paths` ``() -> dict[id, Path]``.
- :class:`ProfileError` — a :class:`epcwatch.config.ConfigError`; ``str()`` names file, line, field.
- Helpers used by the planner and decoder: :func:`register_count`, :func:`order_swaps`,
  :data:`BIT_FUNCTIONS`, :data:`REGISTER_FUNCTIONS`.

Address convention
------------------
``address`` is the **0-based protocol address** that travels in the Modbus PDU, not the
"register number" printed in many manuals: holding register "40001" or "register 1" is
``address: 0``; Schneider's "register 3000" is ``address: 2999``. The function (``coil`` FC1,
``discrete`` FC2, ``holding`` FC3, ``input`` FC4) says which table the address is in. YAML
accepts hex (``0x0048``), which is how most maps print addresses.

Word and byte order
-------------------
``order`` names the byte sequence of a value as it appears on the wire, with ``A`` the most
significant byte: ``ABCD`` big-endian (Modbus default), ``CDAB`` low word first (word-swapped),
``BADC`` bytes swapped inside each register, ``DCBA`` fully little-endian. The 64-bit spellings
``ABCDEFGH``, ``GHEFCDAB``, ``BADCFEHG``, ``HGFEDCBA`` are accepted as synonyms. For 16-bit types
only the byte swap matters (``BADC``/``DCBA`` swap the two bytes).
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from epcwatch import measurements
from epcwatch.config import ConfigError, load_yaml_model
from epcwatch.measurements import FieldType
from epcwatch.profiles.errors import ProfilesError
from epcwatch.wire import DeviceKind

Function = Literal["coil", "discrete", "holding", "input"]
DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
Order = Literal["ABCD", "CDAB", "BADC", "DCBA"]
#: a "no value" marker: a raw integer, ``nan`` (any NaN/inf float), ``all_ones`` (every bit
#: set: 0xFFFF…, i.e. -1 for signed types) or ``max`` (the type's largest value: 0x7FFF… signed,
#: 0xFFFF… unsigned)
Sentinel = int | Literal["nan", "all_ones", "max"]
EnumValue = bool | int | float

BIT_FUNCTIONS: Final = frozenset({"coil", "discrete"})
REGISTER_FUNCTIONS: Final = frozenset({"holding", "input"})
#: Modbus limits per request (spec: 125 registers for FC3/FC4, 2000 bits for FC1/FC2)
MODBUS_MAX_REGISTERS: Final = 125
MODBUS_MAX_BITS: Final = 2000
MAX_ADDRESS: Final = 0xFFFF

_WIDTH: Final[dict[str, int]] = {
    "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
    "float32": 2, "float64": 4,
}
INTEGER_TYPES: Final = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})
FLOAT_TYPES: Final = frozenset({"float32", "float64"})
_ORDER_SYNONYMS: Final = {"ABCDEFGH": "ABCD", "GHEFCDAB": "CDAB", "BADCFEHG": "BADC", "HGFEDCBA": "DCBA"}
_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KIND_DIRS: Final = ("meters", "hvac", "lighting", "sensor")


def register_count(type_: str, length: int | None = None) -> int:
    """Registers (or bits, for ``bool`` on coils/discretes) a value of ``type_`` occupies."""
    if type_ == "string":
        if length is None:
            raise ValueError("a string needs a length")
        return length
    return _WIDTH[type_]


def order_swaps(order: str) -> tuple[bool, bool]:
    """``(word_swap, byte_swap)`` for an order: words least significant first, bytes swapped in a word."""
    return order in ("CDAB", "DCBA"), order in ("BADC", "DCBA")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForbiddenRange(_Frozen):
    """Addresses ``first..last`` (inclusive) of one function that must never be read."""

    function: Function
    first: int = Field(ge=0, le=MAX_ADDRESS)
    last: int = Field(ge=0, le=MAX_ADDRESS)

    @model_validator(mode="after")
    def _ordered(self) -> ForbiddenRange:
        if self.last < self.first:
            raise ValueError("last must be >= first")
        return self

    def overlaps(self, function: str, start: int, count: int) -> bool:
        return function == self.function and start <= self.last and self.first < start + count


class Quirks(_Frozen):
    """What this device gets wrong or limits beyond the Modbus spec."""

    max_registers_per_read: int = Field(
        default=MODBUS_MAX_REGISTERS, ge=1, le=MODBUS_MAX_REGISTERS,
        description="largest FC3/FC4 request the device answers",
    )
    max_bits_per_read: int = Field(
        default=MODBUS_MAX_BITS, ge=1, le=MODBUS_MAX_BITS, description="largest FC1/FC2 request"
    )
    max_gap: int | None = Field(
        default=None, ge=0, le=MODBUS_MAX_REGISTERS,
        description="unrequested registers a read may bridge; 0 for devices that reject unmapped addresses "
        "(default: the planner's)",
    )
    forbidden: tuple[ForbiddenRange, ...] = Field(
        default=(), description="ranges a read must never touch (the device answers them with an exception)"
    )

    def max_per_read(self, function: str) -> int:
        return self.max_bits_per_read if function in BIT_FUNCTIONS else self.max_registers_per_read

    def is_forbidden(self, function: str, start: int, count: int = 1) -> bool:
        return any(r.overlaps(function, start, count) for r in self.forbidden)


class ScaleFactor(_Frozen):
    """SunSpec-style scale factor: value = raw × 10^sf, sf a signed int16 at ``address``."""

    address: int = Field(ge=0, le=MAX_ADDRESS)
    function: Literal["holding", "input"] | None = Field(
        default=None, description="defaults to the point's function"
    )


class PollGroup(_Frozen):
    interval: float = Field(gt=0, description="seconds between polls of this group")


class Defaults(_Frozen):
    """Values every point inherits unless it sets its own."""

    function: Function | None = None
    type: DataType | None = None
    order: str | None = None
    group: str | None = None


class PointSpec(_Frozen):
    """How one value is laid out in the device's registers (shared by points and identity)."""

    name: str
    function: Function
    address: int = Field(ge=0, le=MAX_ADDRESS, description="0-based protocol address")
    type: DataType = "uint16"
    order: Order = "ABCD"
    length: int | None = Field(default=None, ge=1, le=MODBUS_MAX_REGISTERS, description="string registers")
    scale: float = 1.0
    offset: float = 0.0
    scale_factor: ScaleFactor | None = None
    no_value: tuple[Sentinel, ...] = ()
    enum: dict[int, EnumValue] | None = Field(default=None, description="raw code -> value")
    bit: int | None = Field(default=None, ge=0, le=63, description="value is this bit of the raw integer")
    group: str = "default"
    description: str | None = None

    @field_validator("order", mode="before")
    @classmethod
    def _order_synonyms(cls, v: Any) -> Any:
        return _ORDER_SYNONYMS.get(v, v) if isinstance(v, str) else v

    @field_validator("scale")
    @classmethod
    def _scale_nonzero(cls, v: float) -> float:
        if v == 0 or not math.isfinite(v):
            raise ValueError("scale must be finite and non-zero")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PointSpec:
        bitfn = self.function in BIT_FUNCTIONS
        if bitfn != (self.type == "bool"):
            raise ValueError("coils and discrete inputs hold type bool; registers hold the other types")
        if self.type == "string":
            if self.length is None:
                raise ValueError("a string needs length (registers)")
        elif self.length is not None:
            raise ValueError("length applies to strings only")
        if self.bit is not None:
            if self.type not in INTEGER_TYPES:
                raise ValueError("bit applies to integer types only")
            if self.bit >= 16 * _WIDTH[self.type]:
                raise ValueError(f"bit {self.bit} outside a {self.type}")
        if self.enum is not None and self.type not in INTEGER_TYPES:
            raise ValueError("enum applies to integer types only")
        if self.bit is not None and self.enum is not None:
            raise ValueError("use either bit or enum")
        if self.scale_factor is not None and self.type not in INTEGER_TYPES:
            raise ValueError("scale_factor applies to integer types only")
        if self.address + self.count > MAX_ADDRESS + 1:
            raise ValueError("value extends past address 65535")
        for sentinel in self.no_value:
            self._check_sentinel(sentinel)
        return self

    def _check_sentinel(self, s: Sentinel) -> None:
        t = self.type
        if s == "nan" and t not in FLOAT_TYPES:
            raise ValueError(f"no_value nan needs a float type, not {t}")
        if s == "max" and t not in INTEGER_TYPES:
            raise ValueError(f"no_value max needs an integer type, not {t}")
        if s == "all_ones" and t not in INTEGER_TYPES | FLOAT_TYPES:
            raise ValueError(f"no_value all_ones needs a numeric type, not {t}")
        if isinstance(s, int) and t in INTEGER_TYPES:
            # a signed type's sentinel may be spelled as its bit pattern: -32768 or 0x8000 for int16
            bits = 16 * _WIDTH[t]
            lo = -(1 << (bits - 1)) if t.startswith("int") else 0
            hi = (1 << bits) - 1
            if not lo <= s <= hi:
                raise ValueError(f"no_value {s} is outside {t} ({lo}..{hi})")

    @property
    def count(self) -> int:
        """Registers (or bits) this value occupies."""
        return register_count(self.type, self.length)

    @property
    def sf_function(self) -> Function:
        assert self.scale_factor is not None
        return self.scale_factor.function or self.function


class Point(PointSpec):
    """A measurement point; its name is in the closed vocabulary."""

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            measurements.get(v)
        except measurements.UnknownMeasurementError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        return v

    @model_validator(mode="after")
    def _fits_vocabulary(self) -> Point:
        m = measurements.VOCABULARY[self.name]
        if self.type == "string":
            raise ValueError("measurements are numbers; strings belong under identity")
        if m.field_type is FieldType.BOOL and self.type in FLOAT_TYPES:
            raise ValueError(f"{self.name} is a boolean; a float register cannot hold it")
        if self.enum is not None:
            for code, out in self.enum.items():
                if m.field_type is FieldType.BOOL and not isinstance(out, bool):
                    raise ValueError(f"enum {code}: {self.name} needs true/false")
                if m.field_type is FieldType.INT and (isinstance(out, bool) or not float(out).is_integer()):
                    raise ValueError(f"enum {code}: {self.name} needs an integer")
        return self


class IdentityPoint(PointSpec):
    """Descriptive data read once (serial number, firmware); free-form name, strings allowed."""

    group: str = "identity"

    @field_validator("name")
    @classmethod
    def _snake(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError("identity names are lower_snake_case")
        return v


class ProfileFile(_Frozen):
    """What every profile file shares, Modbus or DL/T 645: ``id`` is the file stem. The loader
    passes the stem as validation context ``{"id": stem}``; a file may omit ``id`` or repeat it,
    never contradict it."""

    id: Annotated[str, Field(pattern=_ID_RE.pattern, max_length=64)]

    @model_validator(mode="before")
    @classmethod
    def _id_from_file(cls, data: Any, info: ValidationInfo) -> Any:
        ctx = info.context or {}
        if isinstance(data, dict) and "id" in ctx and "id" not in data:
            data = {**data, "id": ctx["id"]}
        return data

    @field_validator("id")
    @classmethod
    def _id_is_stem(cls, v: str, info: ValidationInfo) -> str:
        stem = (info.context or {}).get("id")
        if stem is not None and v != stem:
            raise ValueError(f"id {v!r} must equal the file name {stem!r} (or be omitted)")
        return v


class Profile(ProfileFile):
    """A device model's register map (one YAML file; ``id`` is the file stem)."""

    protocol: Literal["modbus"] = Field(
        default="modbus", description="DL/T 645 meters are Dlt645Profile (epcwatch.profiles.dlt645_profile)"
    )
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    kind: DeviceKind
    source: str = Field(min_length=1, description="the public manual or map this profile follows")
    description: str | None = None
    defaults: Defaults = Defaults()
    quirks: Quirks = Quirks()
    poll_groups: dict[str, PollGroup] = Field(default_factory=lambda: {"default": PollGroup(interval=10.0)})
    points: tuple[Point, ...] = Field(min_length=1)
    identity: tuple[IdentityPoint, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any) -> Any:
        """Let points inherit ``defaults`` (the id comes from :class:`ProfileFile`)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        defaults = data.get("defaults") or {}
        if isinstance(defaults, dict):
            for key in ("points", "identity"):
                pts = data.get(key)
                if isinstance(pts, list):
                    merged = []
                    for item in pts:
                        if isinstance(item, dict):
                            base = {k: v for k, v in defaults.items() if v is not None}
                            if key == "identity":
                                base.pop("group", None)
                            item = {**base, **item}  # noqa: PLW2901 - the point with defaults filled in
                        merged.append(item)
                    data[key] = merged
        return data

    @model_validator(mode="after")
    def _coherent(self) -> Profile:
        names: set[str] = set()
        all_points: tuple[PointSpec, ...] = (*self.points, *self.identity)
        for p in all_points:
            if p.name in names:
                raise ValueError(f"point {p.name!r} defined twice")
            names.add(p.name)
            if p.group != "identity" and p.group not in self.poll_groups:
                raise ValueError(f"point {p.name!r}: poll group {p.group!r} not in poll_groups")
            limit = self.quirks.max_per_read(p.function)
            if p.count > limit:
                raise ValueError(
                    f"point {p.name!r} needs {p.count} registers; the device reads at most {limit}"
                )
            for span_fn, start, count in point_spans(p):
                if self.quirks.is_forbidden(span_fn, start, count):
                    raise ValueError(f"point {p.name!r} lies in a forbidden range ({span_fn} {start})")
        if "identity" in self.poll_groups:
            raise ValueError("poll group 'identity' is reserved for identity points")
        self._overlaps_fit(all_points)
        return self

    def _overlaps_fit(self, points: tuple[PointSpec, ...]) -> None:
        """Overlapping values must be read together: their union must fit in one read."""
        spans = sorted((fn, start, start + count) for p in points for fn, start, count in point_spans(p))
        fn0, lo, hi = "", 0, 0
        for fn, start, end in spans:
            if fn == fn0 and start < hi:
                hi = max(hi, end)
                if hi - lo > self.quirks.max_per_read(fn):
                    raise ValueError(
                        f"overlapping points at {fn} {lo}..{hi - 1} span {hi - lo} registers; "
                        f"the device reads at most {self.quirks.max_per_read(fn)}"
                    )
            else:
                fn0, lo, hi = fn, start, end

    def point(self, name: str) -> PointSpec:
        for p in (*self.points, *self.identity):
            if p.name == name:
                return p
        raise KeyError(name)


def point_spans(p: PointSpec) -> list[tuple[Function, int, int]]:
    """``(function, address, count)`` ranges a point needs: its value and its scale-factor register."""
    spans = [(p.function, p.address, p.count)]
    if p.scale_factor is not None:
        spans.append((p.sf_function, p.scale_factor.address, 1))
    return spans


class ProfileError(ConfigError, ProfilesError):
    """A profile that cannot be used; ``str()`` names the file, line and field."""


def library_root() -> Path:
    """The folder of the shipped profile library (package data ``epcwatch.device_profiles``)."""
    return _profiles_root()


def _profiles_root() -> Path:
    # the package is installed as a link tree (or a real folder): a concrete path either way
    return Path(str(resources.files("epcwatch.device_profiles")))


@cache
def shipped_profile_paths() -> dict[str, Path]:
    """Shipped profile ids -> YAML paths (``device-profiles/{meters,hvac,lighting,sensor}/*.yaml``)."""
    root = _profiles_root()
    found: dict[str, Path] = {}
    for kind_dir in _KIND_DIRS:
        for path in sorted((root / kind_dir).glob("*.yaml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


def load_profile_file(path: str | Path) -> Profile:
    """Load and validate one profile YAML; raises :class:`ProfileError`."""
    p = Path(path)
    try:
        return load_yaml_model(p, Profile, context={"id": p.stem})
    except ConfigError as exc:
        raise ProfileError(exc.path, exc.problems) from None


def load_profile(ref: str | Path) -> Profile:
    """A shipped profile by id (``eastron-sdm630``) or a profile file by path."""
    ref_s = str(ref)
    shipped = shipped_profile_paths()
    if ref_s in shipped:
        return _load_shipped(ref_s)
    if isinstance(ref, Path) or ref_s.endswith((".yaml", ".yml")) or "/" in ref_s:
        return load_profile_file(ref_s)
    import difflib

    close = difflib.get_close_matches(ref_s, shipped, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `epcwatch profiles list` shows them"
    raise ProfileError(ref_s, [f" no shipped profile with this id{hint}"])


@cache
def _load_shipped(profile_id: str) -> Profile:
    return load_profile_file(shipped_profile_paths()[profile_id])


def list_profiles() -> list[Profile]:
    """Every shipped profile, sorted by id."""
    return [_load_shipped(i) for i in shipped_profile_paths()]
