"""Register decoding (pure): Modbus responses -> measurement values. The edge agent's half.

- :func:`decode` ``(plan, responses) -> Decoded`` — ``responses[i]`` answers ``plan.reads[i]``:
  a list of register ints (FC3/FC4), a list of bools (FC1/FC2), or ``None`` when the read
  failed. :class:`Decoder` ``(plan)`` precompiles the same thing for repeated use
  (``Decoder(plan).decode(responses)``); use it in a poll loop.
- :class:`Decoded` — ``values`` (measurement name -> bool/int/float, typed as the vocabulary's
  :class:`~epcwatch.measurements.FieldType` says), ``quality`` (``"good"``, or ``"partial"`` when
  a point has an error), ``errors`` (name -> why there is no value: failed read, unknown enum
  code, out of range…), ``missing`` (name -> the device reported its "no value" sentinel; this is
  the device saying "not applicable" and does not make the reading partial) and ``identity``
  (identity point name -> str/int/float/bool).
- :func:`decode_point` ``(point, registers, sf=None)`` — one point from exactly its registers;
  raises :class:`NoValue` (sentinel) or :class:`DecodeError`.
- :func:`decode_raw` ``(point, registers)`` — the raw number/string before scaling.

The inverse, for the simulator and tests, is :mod:`epcwatch.profiles.encode`.

Numbers
-------
Integer registers are combined exactly (Python ints), then scaled with decimal arithmetic
so ``2305 × 0.1`` is ``230.5`` and a 64-bit Wh counter ÷ 1000 is the float nearest the exact
kWh value; ``int`` measurements stay exact integers. A float32 is reported as the shortest
decimal that reads back as the same float32 (``230.1``, not ``230.10000610351562``), which is
what the meter's own display shows.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Final

from epcwatch import measurements
from epcwatch.measurements import FieldType
from epcwatch.profiles.errors import ProfilesError
from epcwatch.profiles.model import Point, PointSpec, order_swaps
from epcwatch.profiles.planner import Plan, Read
from epcwatch.wire import MAX_ABS_VALUE, Quality, Value

Response = Sequence[int] | Sequence[bool] | None
AnyValue = bool | int | float | str
_CTX: Final = Context(prec=60)
_BITS: Final = {"int16": 16, "uint16": 16, "int32": 32, "uint32": 32, "int64": 64, "uint64": 64}


class DecodeError(ProfilesError, ValueError):
    """The registers do not give a usable value (bad code, out of range, short response)."""


class NoValue(Exception):  # noqa: N818 - a signal, not a failure
    """The device reported its "no value" sentinel for this point."""


@dataclass(frozen=True, slots=True)
class Decoded:
    values: dict[str, Value] = field(default_factory=dict)
    quality: Quality = "good"
    errors: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    identity: dict[str, AnyValue] = field(default_factory=dict)


# -- raw registers <-> raw numbers ----------------------------------------------------------


def _swap16(r: int) -> int:
    return ((r & 0xFF) << 8) | (r >> 8)


_F32: Final = struct.Struct(">f")
_F32_WORDS: Final = struct.Struct(">HH")
_SHORT_FORMATS: Final = tuple(f".{d}g" for d in range(6, 10))


def _shortest_f32(x: float) -> float:
    """The shortest decimal that rounds to the same float32 as ``x``."""
    if not math.isfinite(x) or x == 0:
        return x
    pack, unpack = _F32.pack, _F32.unpack
    for spec in _SHORT_FORMATS:
        y = float(format(x, spec))
        if unpack(pack(y))[0] == x:
            return y
    return x


# -- sentinels ----------------------------------------------------------------------------------


def _type_max(t: str) -> int:
    bits = _BITS[t]
    return (1 << (bits - 1)) - 1 if t.startswith("int") else (1 << bits) - 1


# -- raw -> value -------------------------------------------------------------------------------


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def _field_type(point: PointSpec) -> FieldType | None:
    if isinstance(point, Point):
        return measurements.VOCABULARY[point.name].field_type
    return None


class _Codec:
    """One point's decoding, with everything that does not depend on the registers worked out once."""

    __slots__ = (
        "all_ones_nan",
        "bit",
        "bits",
        "byte_swap",
        "count",
        "enum",
        "ft",
        "kind",
        "mask",
        "nan_missing",
        "offset",
        "offset_dec",
        "plain_f32",
        "point",
        "scale",
        "scale_dec",
        "sentinel_floats",
        "sentinels",
        "signed",
        "trivial",
        "word_swap",
    )

    def __init__(self, point: PointSpec) -> None:
        t = point.type
        self.point = point
        self.count = point.count
        self.word_swap, self.byte_swap = order_swaps(point.order)
        self.kind = t if t in ("bool", "string", "float32", "float64") else "int"
        self.bits = _BITS.get(t, 0)
        self.mask = (1 << self.bits) - 1
        self.signed = t.startswith("int")
        self.bit = point.bit
        self.enum = point.enum
        self.ft = _field_type(point)
        self.scale, self.offset = point.scale, point.offset
        self.scale_dec, self.offset_dec = _dec(point.scale), _dec(point.offset)
        self.trivial = point.scale == 1.0 and point.offset == 0.0
        # the common case, decoded without the general path: a float32 in big-endian words with
        # no scaling, no sentinel, stored as a float (most meters' every value)
        self.plain_f32 = (
            t == "float32"
            and not self.word_swap
            and not self.byte_swap
            and self.trivial
            and not point.no_value
            and self.ft is FieldType.FLOAT
        )
        # sentinels as unsigned bit patterns (integers) or values (floats)
        self.sentinels: dict[int, str] = {}
        self.sentinel_floats: dict[float, str] = {}
        self.nan_missing = self.all_ones_nan = False
        for s in point.no_value:
            if s == "nan":
                self.nan_missing = True
            elif s == "all_ones":
                if self.kind == "int":
                    self.sentinels[self.mask] = "no value (all ones)"
                else:
                    self.all_ones_nan = True
            elif s == "max":
                self.sentinels[_type_max(t)] = "no value (type maximum)"
            elif self.kind == "int":
                self.sentinels[s & self.mask] = f"no value ({s})"
            else:
                self.sentinel_floats[float(s)] = f"no value ({s})"

    def raw(self, regs: Sequence[int] | Sequence[bool]) -> int | float | str | bool:
        if len(regs) != self.count:
            raise DecodeError(f"expected {self.count} registers, got {len(regs)}")
        kind = self.kind
        if kind == "bool":
            return bool(regs[0])
        words = [_swap16(int(r)) for r in regs] if self.byte_swap else [int(r) for r in regs]
        if kind == "string":
            data = b"".join(w.to_bytes(2, "big") for w in words)
            return data.split(b"\x00", 1)[0].decode("latin-1").strip()
        if self.word_swap:
            words.reverse()
        u = 0
        for w in words:
            u = (u << 16) | w
        if kind == "float32":
            return float(struct.unpack(">f", u.to_bytes(4, "big"))[0])
        if kind == "float64":
            return float(struct.unpack(">d", u.to_bytes(8, "big"))[0])
        if self.signed and u >> (self.bits - 1):
            return u - (1 << self.bits)
        return u

    def value(self, regs: Sequence[int] | Sequence[bool], sf: int | None = None) -> AnyValue:
        """Sentinel check, bit/enum, scaling, then coercion to the vocabulary's field type."""
        if self.plain_f32 and len(regs) == 2:
            try:
                x: float = _F32.unpack(_F32_WORDS.pack(regs[0], regs[1]))[0]
            except struct.error:
                raise DecodeError(f"registers out of range: {list(regs)}") from None
            if x - x == 0.0:  # finite (inf - inf and nan - nan are nan)
                f = _shortest_f32(x)
                if abs(f) > MAX_ABS_VALUE:
                    raise DecodeError(f"|{f}| exceeds {MAX_ABS_VALUE:g}")
                return f
        raw = self.raw(regs)
        if isinstance(raw, str):
            return raw
        if isinstance(raw, bool):
            return _coerce(raw, self.ft)
        if isinstance(raw, float):
            if math.isnan(raw):
                if self.nan_missing or self.all_ones_nan:
                    raise NoValue("no value (NaN)")
                raise DecodeError("NaN is not a number")
            if raw in (math.inf, -math.inf):
                if self.nan_missing:
                    raise NoValue("no value (NaN)")
                raise DecodeError(f"{raw} is not a number")
            if raw in self.sentinel_floats:
                raise NoValue(self.sentinel_floats[raw])
            f = _shortest_f32(raw) if self.kind == "float32" else raw
            if not self.trivial:
                f = float(_CTX.add(_CTX.multiply(_dec(f), self.scale_dec), self.offset_dec))
            return _coerce(f, self.ft)
        if self.sentinels and (raw & self.mask) in self.sentinels:
            raise NoValue(self.sentinels[raw & self.mask])
        if self.bit is not None:
            return _coerce(bool((raw >> self.bit) & 1), self.ft)
        if self.enum is not None:
            if raw not in self.enum:
                raise DecodeError(f"code {raw} not in the enumeration")
            return _coerce(self.enum[raw], self.ft)
        if self.trivial and not sf:
            return _coerce(raw, self.ft)
        d = _CTX.multiply(Decimal(raw), self.scale_dec)
        if sf:
            d = d.scaleb(sf, _CTX)
        d = _CTX.add(d, self.offset_dec)
        if self.ft is FieldType.INT and d == d.to_integral_value():
            return _coerce(int(d), self.ft)
        return _coerce(float(d), self.ft)


def _coerce(value: AnyValue, ft: FieldType | None) -> AnyValue:
    if ft is None or isinstance(value, str):
        return value
    if ft is FieldType.BOOL:
        return bool(value)
    if isinstance(value, bool):
        return int(value) if ft is FieldType.INT else float(value)
    if abs(value) > MAX_ABS_VALUE:
        raise DecodeError(f"|{value}| exceeds {MAX_ABS_VALUE:g}")
    if ft is FieldType.INT:
        if isinstance(value, float):
            if not value.is_integer():
                raise DecodeError(f"{value} is not an integer")
            return int(value)
        return value
    return float(value)


def decode_raw(point: PointSpec, regs: Sequence[int] | Sequence[bool]) -> int | float | str | bool:
    """The raw value in ``regs`` (exactly ``point.count`` registers/bits): int, float, str or bool."""
    return _Codec(point).raw(regs)


def decode_point(point: PointSpec, regs: Sequence[int] | Sequence[bool], sf: int | None = None) -> AnyValue:
    """One point's value from exactly its registers; raises :class:`NoValue` or :class:`DecodeError`."""
    return _Codec(point).value(regs, sf)


# -- plans ----------------------------------------------------------------------------------------


def _locate(reads: Sequence[Read], function: str, address: int, count: int) -> tuple[int, int]:
    for i, r in enumerate(reads):
        if r.covers(function, address, count):
            return i, address - r.address
    raise ValueError(f"plan does not read {function} {address}")


@dataclass(frozen=True, slots=True)
class _Slot:
    point: PointSpec
    codec: _Codec
    read: int
    offset: int
    end: int
    sf: tuple[int, int] | None
    identity: bool


class Decoder:
    """A plan's decoding precompiled: where each point (and its scale factor) sits in the responses."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        slots = []
        for p in plan.points:
            i, off = _locate(plan.reads, p.function, p.address, p.count)
            sf = None
            if p.scale_factor is not None:
                sf = _locate(plan.reads, p.sf_function, p.scale_factor.address, 1)
            slots.append(_Slot(p, _Codec(p), i, off, off + p.count, sf, not isinstance(p, Point)))
        self._slots = tuple(slots)

    def decode(self, responses: Sequence[Response]) -> Decoded:
        reads = self.plan.reads
        if len(responses) != len(reads):
            raise ValueError(f"{len(responses)} responses for {len(reads)} reads")
        bad: dict[int, str] = {}
        for i, (r, resp) in enumerate(zip(reads, responses, strict=True)):
            if resp is None:
                bad[i] = f"read {r.function} {r.address}+{r.count} failed"
            elif len(resp) < r.count:
                bad[i] = f"short response to {r.function} {r.address}+{r.count}: {len(resp)}"
        values: dict[str, Value] = {}
        identity: dict[str, AnyValue] = {}
        errors: dict[str, str] = {}
        missing: dict[str, str] = {}
        for s in self._slots:
            p = s.point
            if s.read in bad:
                errors[p.name] = bad[s.read]
                continue
            resp = responses[s.read]
            assert resp is not None
            try:
                sf = None
                if s.sf is not None:
                    if s.sf[0] in bad:
                        raise DecodeError(f"scale factor unavailable: {bad[s.sf[0]]}")
                    sf_resp = responses[s.sf[0]]
                    assert sf_resp is not None
                    sf_raw = int(sf_resp[s.sf[1]])
                    sf = sf_raw - 0x10000 if sf_raw >= 0x8000 else sf_raw
                    if sf == -0x8000:  # SunSpec "not implemented"
                        raise NoValue("no value (scale factor not implemented)")
                    if not -20 <= sf <= 20:
                        raise DecodeError(f"scale factor {sf} out of range")
                v = s.codec.value(resp[s.offset : s.end], sf)
            except NoValue as exc:
                missing[p.name] = str(exc)
                continue
            except DecodeError as exc:
                errors[p.name] = str(exc)
                continue
            if s.identity:
                identity[p.name] = v
            else:
                assert not isinstance(v, str)
                values[p.name] = v
        return Decoded(values, "partial" if errors else "good", errors, missing, identity)


def decode(plan: Plan, responses: Sequence[Response]) -> Decoded:
    """Decode one poll cycle of ``plan``; ``responses[i]`` answers ``plan.reads[i]`` (``None`` = failed)."""
    return Decoder(plan).decode(responses)
