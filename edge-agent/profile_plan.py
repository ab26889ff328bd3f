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
from epcwatch.profiles.codec import Decoder
from epcwatch.profiles.model import ForbiddenRange, Function, Profile, load_profile, point_spans
from epcwatch.profiles.planner import Read, merge_spans, plan_profile, refused_points
from epcwatch.wire import Quality, Value

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
    return ReadSpec(FUNCTION_CODES[r.function], r.address, r.count, r.points, blocks)


def device_plan(ref: str | Path | Profile, holes: Holes = frozenset()) -> DevicePlan:
    """Load (if needed), plan and wrap a profile; raises the profile library's errors.

    ``holes`` are registers the device is known to refuse (``epcwatch.edge.holes``): reads never
    touch them and the points inside them are left out. The plan can learn more (``replan``).
    """
    profile = ref if isinstance(ref, Profile) else load_profile(ref)
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
