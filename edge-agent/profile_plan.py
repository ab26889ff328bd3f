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

from epcwatch.edge.poller import DevicePlan, ReadGroup, ReadSpec
from epcwatch.edge.transport import Registers
from epcwatch.profiles import dlt645
from epcwatch.profiles.decode import Decoder
from epcwatch.profiles.dlt645_profile import Dlt645Point, Dlt645Profile, decode_values, load_any_profile
from epcwatch.profiles.model import Profile
from epcwatch.profiles.planner import plan_profile
from epcwatch.wire import Quality, Value

GroupDecoder = Callable[[Sequence[Registers | None]], tuple[dict[str, Value], Quality]]
FUNCTION_CODES: Final = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def device_plan(ref: str | Path | Profile | Dlt645Profile) -> DevicePlan:
    """Load (if needed), plan and wrap a profile (Modbus or DL/T 645); raises the profile
    library's errors."""
    profile = ref if isinstance(ref, Profile | Dlt645Profile) else load_any_profile(ref)
    if isinstance(profile, Dlt645Profile):
        return dlt645_plan(profile)
    plans = [p for p in plan_profile(profile) if p.group != "identity"]
    decoders = [(Decoder(p), len(p.reads)) for p in plans]
    reads = tuple(ReadSpec(FUNCTION_CODES[r.function], r.address, r.count) for p in plans for r in p.reads)
    # the fastest groups follow the device's poll_interval_s (the operator's choice); slower
    # groups (energy counters, run hours) keep their own, longer interval
    fastest = min((p.interval for p in plans if p.interval is not None), default=None)
    groups = tuple(
        ReadGroup(
            p.group,
            None if p.interval is None or p.interval == fastest else p.interval,
            tuple(ReadSpec(FUNCTION_CODES[r.function], r.address, r.count) for r in p.reads),
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

    return DevicePlan(profile.id, profile.kind, reads, decode, groups)


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
