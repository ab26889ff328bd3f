"""Register encoding (pure): measurement values -> Modbus registers, the inverse of
:mod:`epcwatch.profiles.decode`. The simulator and the tests use it; the edge agent does not.

- :func:`encode_point` ``(point, value, sf=0) -> list[int] | list[bool]`` — the registers (bits)
  that decode to ``value``; ``None`` encodes the point's first "no value" sentinel.
- :func:`register_image` ``(profile, values) -> {function: {address: int | bool}}`` — a whole
  device's register tables from measurement (and identity) values; chooses a SunSpec scale
  factor per scale-factor register so every value sharing it fits; ORs bit-field points that
  share a register. Raises :class:`EncodeError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from epcwatch.profiles.decode import (
    _BITS,
    _CTX,
    AnyValue,
    _dec,
    _swap16,
    _type_max,
)
from epcwatch.profiles.errors import ProfilesError
from epcwatch.profiles.model import FLOAT_TYPES, Function, PointSpec, Profile, order_swaps

#: scale factors tried by :func:`register_image`, most precise first
SF_RANGE: Final = range(-6, 10)


class EncodeError(ProfilesError, ValueError):
    """A value that the point's registers cannot represent."""


def _uint_to_regs(u: int, n: int, order: str) -> list[int]:
    word_swap, byte_swap = order_swaps(order)
    words = [(u >> (16 * (n - 1 - i))) & 0xFFFF for i in range(n)]
    if word_swap:
        words.reverse()
    return [_swap16(w) for w in words] if byte_swap else words


def _encode_raw(point: PointSpec, raw: int | float | str | bool) -> list[int] | list[bool]:
    t = point.type
    if t == "bool":
        return [bool(raw)]
    n = point.count
    if t == "string":
        data = str(raw).encode("latin-1")
        if len(data) > 2 * n:
            raise EncodeError(f"{point.name}: {len(data)} bytes do not fit in {n} registers")
        data = data.ljust(2 * n, b"\x00")
        _, byte_swap = order_swaps(point.order)
        words = [int.from_bytes(data[2 * i : 2 * i + 2], "big") for i in range(n)]
        return [_swap16(w) for w in words] if byte_swap else words
    if t == "float32":
        try:
            u = int.from_bytes(struct.pack(">f", float(raw)), "big")
        except OverflowError:
            raise EncodeError(f"{point.name}: {raw} overflows float32") from None
    elif t == "float64":
        u = int.from_bytes(struct.pack(">d", float(raw)), "big")
    else:
        bits = _BITS[t]
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t.startswith("int") else (0, (1 << bits) - 1)
        if not isinstance(raw, int) or not lo <= raw <= hi:
            raise EncodeError(f"{point.name}: raw {raw} outside {t}")
        u = raw & ((1 << bits) - 1)
    return _uint_to_regs(u, n, point.order)


def _sentinel_raw(point: PointSpec) -> int | float:
    if not point.no_value:
        raise EncodeError(f"{point.name}: no 'no_value' sentinel to encode None with")
    s = point.no_value[0]
    if s == "nan":
        return math.nan
    if s == "all_ones":
        if point.type in FLOAT_TYPES:
            return math.nan  # all-ones is a NaN bit pattern
        return -1 if point.type.startswith("int") else (1 << _BITS[point.type]) - 1
    if s == "max":
        return _type_max(point.type)
    return s


# -- value -> registers ---------------------------------------------------------------------------


def _to_raw(point: PointSpec, value: AnyValue | None, sf: int) -> int | float | str | bool:
    if value is None:
        return _sentinel_raw(point)
    if point.type == "string":
        return str(value)
    if point.type == "bool":
        return bool(value)
    if point.bit is not None:
        return (1 << point.bit) if value else 0
    if point.enum is not None:
        for code, out in point.enum.items():
            if type(out) is type(value) and out == value:
                return code
        for code, out in point.enum.items():  # 1 matches 1.0, but never a bool
            if not isinstance(value, bool) and not isinstance(out, bool) and out == value:
                return code
        raise EncodeError(f"{point.name}: {value!r} is not in the enumeration")
    if isinstance(value, str):
        raise EncodeError(f"{point.name}: expected a number, got {value!r}")
    if point.type in FLOAT_TYPES and point.scale == 1.0 and point.offset == 0.0:
        return float(value)
    try:
        # ints stay exact (a 64-bit counter is not a float); floats by their shortest repr
        exact = Decimal(value) if isinstance(value, int) else _dec(float(value))
        d = _CTX.divide(_CTX.subtract(exact, _dec(point.offset)), _dec(point.scale))
        if sf:
            d = d.scaleb(-sf, _CTX)
        if point.type in FLOAT_TYPES:
            return float(d)
        return int(d.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=_CTX))
    except (InvalidOperation, ValueError, OverflowError):
        raise EncodeError(f"{point.name}: cannot encode {value!r}") from None


def encode_point(point: PointSpec, value: AnyValue | None, sf: int = 0) -> list[int] | list[bool]:
    """Registers (bits) that :func:`decode_point` turns back into ``value`` (rounded to the register's
    resolution); ``None`` encodes the first ``no_value`` sentinel; ``sf`` is the SunSpec scale factor."""
    if isinstance(value, float) and not math.isfinite(value) and point.type not in FLOAT_TYPES:
        raise EncodeError(f"{point.name}: {value} cannot be stored in {point.type}")
    raw = _to_raw(point, value, sf)
    if isinstance(raw, int) and not isinstance(raw, bool) and point.type in FLOAT_TYPES:
        raw = float(raw)
    return _encode_raw(point, raw)


def _choose_sf(points: Sequence[PointSpec], values: Mapping[str, AnyValue | None]) -> int:
    for sf in SF_RANGE:
        try:
            for p in points:
                if values.get(p.name) is not None:
                    encode_point(p, values[p.name], sf)
        except EncodeError:
            continue
        return sf
    names = ", ".join(p.name for p in points)
    raise EncodeError(f"no scale factor in {SF_RANGE.start}..{SF_RANGE.stop - 1} fits {names}")


def register_image(
    profile: Profile, values: Mapping[str, AnyValue | None]
) -> dict[Function, dict[int, int | bool]]:
    """The device's register tables holding ``values`` (measurement and identity names).

    Points absent from ``values`` are left out (a server fills them with its default).
    """
    specs = {p.name: p for p in (*profile.points, *profile.identity)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise EncodeError(f"{profile.id}: no point named {', '.join(unknown)}")
    image: dict[Function, dict[int, int | bool]] = {"coil": {}, "discrete": {}, "holding": {}, "input": {}}
    sf_groups: dict[tuple[Function, int], list[PointSpec]] = {}
    for p in specs.values():
        if p.scale_factor is not None:
            sf_groups.setdefault((p.sf_function, p.scale_factor.address), []).append(p)
    sf_of: dict[str, int] = {}
    for (fn, addr), pts in sf_groups.items():
        sf = _choose_sf(pts, values)
        image[fn][addr] = sf & 0xFFFF
        for p in pts:
            sf_of[p.name] = sf
    bit_points: list[tuple[PointSpec, list[int] | list[bool]]] = []
    for name, value in values.items():
        p = specs[name]
        regs = encode_point(p, value, sf_of.get(name, 0))
        if p.bit is not None:
            bit_points.append((p, regs))
            continue
        table = image[p.function]
        for i, r in enumerate(regs):
            a = p.address + i
            if a in table and table[a] != r:
                raise EncodeError(f"{name}: {p.function} {a} already holds another point's value")
            table[a] = r
    for p, regs in bit_points:
        table = image[p.function]
        mask = _uint_to_regs(1 << (p.bit or 0), p.count, p.order)
        for i, (r, m) in enumerate(zip(regs, mask, strict=True)):
            a = p.address + i
            table[a] = (int(table.get(a, 0)) & ~int(m) & 0xFFFF) | int(r)
    return image
