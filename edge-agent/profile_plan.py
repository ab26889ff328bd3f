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
from epcwatch.profiles.codec import Decoder
from epcwatch.profiles.model import Profile, load_profile
from epcwatch.profiles.planner import plan_profile
from epcwatch.wire import Quality, Value

FUNCTION_CODES: Final = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def device_plan(ref: str | Path | Profile) -> DevicePlan:
    """Load (if needed), plan and wrap a profile; raises the profile library's errors."""
    profile = ref if isinstance(ref, Profile) else load_profile(ref)
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
