"""The read planner: a profile's points -> the fewest Modbus reads (pure, deterministic).

Public API
----------
- :class:`Read` ``(function, address, count, points)`` — one request: FC1/FC2/FC3/FC4 by
  ``function``, starting at the 0-based ``address``, ``count`` registers (or bits); ``points``
  names the values decoded from it (in address order).
- :class:`Plan` ``(group, interval, reads, points)`` — the reads of one poll group, issued every
  ``interval`` seconds (``None`` for the ``identity`` plan, read once at start-up). ``points``
  are the :class:`~epcwatch.profiles.model.PointSpec` objects the decoder needs.
- :func:`plan_profile` ``(profile, max_gap=None, learned=()) -> tuple[Plan, ...]`` — one plan per
  poll group that has points (in ``poll_groups`` order), then ``identity`` if the profile has any.
  The gap is ``max_gap``, else the profile's ``quirks.max_gap``, else :data:`DEFAULT_MAX_GAP`
  (:func:`effective_max_gap`): a hint, since ``learned`` holes (ranges the device refused, see
  ``epcwatch.edge.holes``) are never bridged, and points inside them are left out
  (:func:`refused_points`).
- :func:`plan_reads` ``(points, quirks, max_gap) -> tuple[Read, ...]`` — the core for one group.
- :class:`PlanError` — points that cannot be read at all under the quirks.

How reads are chosen
--------------------
Per function code, the registers each point needs (its value, and its SunSpec scale-factor
register if any) are sorted and overlapping needs merged into atomic blocks (a value is never
split over two reads). A read covers a run of consecutive blocks when (a) the run spans at most
the device's ``max_*_per_read``, (b) every gap between neighbouring blocks is at most
``max_gap`` unrequested registers, and (c) no address in the span is forbidden. Every sub-run of
a feasible run is feasible, so extending each read greedily as far as it goes gives the minimum
number of reads (the usual exchange argument); the property tests check it against a brute force.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from epcwatch.profiles.errors import ProfilesError
from epcwatch.profiles.model import ForbiddenRange, Function, PointSpec, Profile, Quirks, point_spans

#: unrequested registers a read may bridge between two needed ones when neither the caller nor
#: the profile's ``quirks.max_gap`` says otherwise: 16 registers are 32 bytes, ~35 ms at 9600 baud,
#: less than one more request/response round trip with the device's turnaround time
DEFAULT_MAX_GAP: Final = 16
FUNCTION_ORDER: Final[tuple[Function, ...]] = ("coil", "discrete", "holding", "input")


class PlanError(ProfilesError, ValueError):
    """Points that cannot be read under the device's quirks."""


@dataclass(frozen=True, slots=True)
class Read:
    function: Function
    address: int
    count: int
    points: tuple[str, ...]

    @property
    def end(self) -> int:
        """One past the last address read."""
        return self.address + self.count

    def covers(self, function: str, address: int, count: int = 1) -> bool:
        return function == self.function and self.address <= address and address + count <= self.end


@dataclass(frozen=True, slots=True)
class Plan:
    group: str
    interval: float | None
    reads: tuple[Read, ...]
    points: tuple[PointSpec, ...]

    @property
    def registers(self) -> int:
        """Registers and bits transferred per cycle (a cost measure besides the read count)."""
        return sum(r.count for r in self.reads)


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping ``(start, end)`` spans into sorted disjoint blocks."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def plan_reads(
    points: Sequence[PointSpec], quirks: Quirks, max_gap: int = DEFAULT_MAX_GAP
) -> tuple[Read, ...]:
    """The fewest reads covering every point of ``points`` (see the module docstring)."""
    if max_gap < 0:
        raise PlanError("max_gap must be >= 0")
    spans: dict[str, list[tuple[int, int]]] = {f: [] for f in FUNCTION_ORDER}
    owners: dict[str, list[tuple[int, int, str]]] = {f: [] for f in FUNCTION_ORDER}
    for i, p in enumerate(points):
        for fn, start, count in point_spans(p):
            if quirks.is_forbidden(fn, start, count):
                raise PlanError(f"point {p.name!r}: {fn} {start}..{start + count - 1} is forbidden")
            spans[fn].append((start, start + count))
        owners[p.function].append((p.address, i, p.name))  # points at one address keep their order
    reads: list[Read] = []
    for fn in FUNCTION_ORDER:
        limit = quirks.max_per_read(fn)
        runs: list[tuple[int, int]] = []
        for start, end in merge_spans(spans[fn]):
            if end - start > limit:
                raise PlanError(
                    f"{fn} {start}..{end - 1}: overlapping points span {end - start} > max {limit}"
                )
            if runs:
                rs, re_ = runs[-1]
                if (
                    start - re_ <= max_gap
                    and end - rs <= limit
                    and (start == re_ or not quirks.is_forbidden(fn, re_, start - re_))
                ):
                    runs[-1] = (rs, end)
                    continue
            runs.append((start, end))
        named = sorted(owners[fn])
        for rs, re_ in runs:
            names = tuple(name for addr, _, name in named if rs <= addr < re_)
            reads.append(Read(fn, rs, re_ - rs, names))
    return tuple(reads)


def effective_max_gap(profile: Profile, max_gap: int | None = None) -> int:
    """The gap used for ``profile``: the caller's, else the profile's quirk, else :data:`DEFAULT_MAX_GAP`."""
    if max_gap is not None:
        return max_gap
    return profile.quirks.max_gap if profile.quirks.max_gap is not None else DEFAULT_MAX_GAP


def _refused(p: PointSpec, learned: Sequence[ForbiddenRange]) -> bool:
    return any(r.overlaps(fn, start, count) for fn, start, count in point_spans(p) for r in learned)


def refused_points(profile: Profile, learned: Sequence[ForbiddenRange]) -> tuple[str, ...]:
    """Names of the points (and identity fields) that touch a learned hole: they cannot be read."""
    return tuple(p.name for p in (*profile.points, *profile.identity) if _refused(p, learned))


def plan_profile(
    profile: Profile, max_gap: int | None = None, learned: Sequence[ForbiddenRange] = ()
) -> tuple[Plan, ...]:
    """One :class:`Plan` per poll group with points, then the ``identity`` plan if any.

    ``max_gap`` overrides the profile's ``quirks.max_gap`` (default :data:`DEFAULT_MAX_GAP`).
    ``learned`` ranges are treated like forbidden ones, except that points inside them are left
    out instead of making the profile unplannable.
    """
    max_gap = effective_max_gap(profile, max_gap)
    quirks = profile.quirks
    if learned:
        quirks = quirks.model_copy(update={"forbidden": (*quirks.forbidden, *learned)})
    plans: list[Plan] = []
    for group, pg in profile.poll_groups.items():
        pts = tuple(p for p in profile.points if p.group == group and not _refused(p, learned))
        if pts:
            plans.append(Plan(group, pg.interval, plan_reads(pts, quirks, max_gap), pts))
    ident: tuple[PointSpec, ...] = tuple(p for p in profile.identity if not _refused(p, learned))
    if ident:
        plans.append(Plan("identity", None, plan_reads(ident, quirks, max_gap), ident))
    return tuple(plans)
