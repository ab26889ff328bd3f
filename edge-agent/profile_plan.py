"""Turn a device profile into what the poller runs: the planner's reads and the decoder.

This is the only place the runtime touches the profile library (``epcwatch.profiles.model``,
``planner``, ``decode``); the poller only knows :class:`~epcwatch.edge.poller.DevicePlan`.
The plan keeps the profile's poll groups: with ``use_group_intervals`` on a device, its fastest
groups are read at every poll (``poll_interval_s``) and slower groups on their own interval,
never more often than the device is polled; otherwise every group is read at every poll. The
``identity`` group (serial number, firmware) is not polled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from epcwatch.edge.holes import Holes
from epcwatch.edge.poller import DevicePlan, ReadGroup, ReadSpec
from epcwatch.edge.transport import Registers
from epcwatch.profiles import dlt645
from epcwatch.profiles.decode import Decoder
from epcwatch.profiles.dlt645_profile import Dlt645Point, Dlt645Profile, decode_values, load_any_profile
from epcwatch.profiles.model import ForbiddenRange, Function, Profile, point_spans
from epcwatch.profiles.planner import Read, merge_spans, plan_profile, refused_points
from epcwatch.wire import Quality, Value

GroupDecoder = Callable[[Sequence[Registers | None]], tuple[dict[str, Value], Quality]]
FUNCTION_CODES: Final = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
FUNCTION_NAMES: Final[dict[int, Function]] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


def _spec(spans: Sequence[tuple[Function, int, int]], r: Read) -> ReadSpec:
    """The poller's read: what it asks for, the points it carries, and the blocks of registers
    inside it that hold *any* point of the profile (also of other poll groups), so that a probe
    after a refusal blames only the registers no point needs."""
    inside = [
        (start, start + count)
        for fn, start, count in spans
        if fn == r.function and r.address <= start and start + count <= r.end
    ]
    blocks = tuple((a, b - a) for a, b in merge_spans(inside))
    return ReadSpec(FUNCTION_CODES[r.function], r.address, r.count, points=r.points, blocks=blocks)


def device_plan(ref: str | Path | Profile | Dlt645Profile, holes: Holes = frozenset()) -> DevicePlan:
    """Load (if needed), plan and wrap a profile (Modbus or DL/T 645); raises the profile
    library's errors.

    ``holes`` are Modbus registers the device is known to refuse (``epcwatch.edge.holes``):
    reads never touch them and the points inside them are left out. The plan can learn more
    (``replan``).
    """
    profile = ref if isinstance(ref, Profile | Dlt645Profile) else load_any_profile(ref)
    if isinstance(profile, Dlt645Profile):
        return dlt645_plan(profile)
    learned = tuple(
        ForbiddenRange(function=FUNCTION_NAMES[h.function], first=h.first, last=h.last) for h in sorted(holes)
    )
    plans = [p for p in plan_profile(profile, learned=learned) if p.group != "identity"]
    decoders = [(Decoder(p), len(p.reads)) for p in plans]
    spans = [s for p in (*profile.points, *profile.identity) for s in point_spans(p)]
    reads = tuple(_spec(spans, r) for p in plans for r in p.reads)
    # the fastest groups follow the device's poll_interval_s (the operator's choice); slower
    # groups (energy counters, run hours) keep their own, longer interval
    fastest = min((p.interval for p in plans if p.interval is not None), default=None)
    groups = tuple(
        ReadGroup(
            p.group,
            None if p.interval is None or p.interval == fastest else p.interval,
            tuple(_spec(spans, r) for r in p.reads),
            _group_decoder(dec),
        )
        for p, (dec, _) in zip(plans, decoders, strict=True)
    )

    def decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
        values: dict[str, Value] = {}
        quality: Quality = "good"
        i = 0
        for decoder, n in decoders:
            d = decoder.decode(list(answers[i : i + n]))
            i += n
            values.update(d.values)
            if d.quality != "good":
                quality = "partial"
        return values, quality

    identity = {i.name for i in profile.identity}
    refused = tuple(n for n in refused_points(profile, learned) if n not in identity)
    return DevicePlan(
        profile.id,
        profile.kind,
        reads,
        decode,
        groups,
        holes=frozenset(holes),
        refused=refused,
        replan=lambda more: device_plan(profile, more),
    )


def _group_decoder(
    decoder: Decoder,
) -> Callable[[Sequence[Registers | None]], tuple[dict[str, Value], Quality]]:
    def decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
        d = decoder.decode(list(answers))
        return dict(d.values), d.quality

    return decode


def dlt645_plan(profile: Dlt645Profile) -> DevicePlan:
    """One read per data identifier, grouped by the profile's poll groups; the decoder turns each
    answer's value bytes into the point's value (a failed read or a bad value makes it partial)."""
    function = dlt645.READ_DATA[profile.version]

    def spec(p: Dlt645Point) -> ReadSpec:
        return ReadSpec(function, p.di, p.bcd.size, f"DI {dlt645.di_text(p.di, profile.version)}")

    def decoder(points: tuple[Dlt645Point, ...]) -> GroupDecoder:
        def decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
            raw = [None if a is None else bytes(int(b) for b in a) for a in answers]
            values, quality, _ = decode_values(points, raw)
            return values, quality

        return decode

    groups_in_use = [g for g in profile.poll_groups if any(p.group == g for p in profile.points)]
    by_group = {g: tuple(p for p in profile.points if p.group == g) for g in groups_in_use}
    fastest = min(profile.poll_groups[g].interval for g in groups_in_use)
    groups = tuple(
        ReadGroup(
            g,
            None if profile.poll_groups[g].interval == fastest else profile.poll_groups[g].interval,
            tuple(spec(p) for p in pts),
            decoder(pts),
        )
        for g, pts in by_group.items()
    )
    ordered = tuple(p for pts in by_group.values() for p in pts)
    return DevicePlan(
        profile.id, profile.kind, tuple(spec(p) for p in ordered), decoder(ordered), groups, protocol="dlt645"
    )
