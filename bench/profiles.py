"""Benchmark: read plans and decode throughput of every shipped device profile.

    .venv/bin/python bench/profiles.py            # about 20 s
    .venv/bin/python bench/profiles.py --seconds 0.1 --max-gap 0

For each shipped profile it prints

- reads per poll cycle (every poll group polled once; identity reads excluded) as planned, against
  the minimum found by an independent dynamic programme over the needed address ranges
  (ratio 1.00 expected), and against one read per point (what a naive poller issues);
- decode throughput in values/s through ``Decoder.decode`` (sentinels, scaling, typing, quality),
  against pymodbus's ``convert_from_registers`` on the same registers in the same run (raw
  conversion only: no scaling, no typing), so the ratio survives a noisy shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pymodbus.client.mixin import ModbusClientMixin

from epcwatch import measurements
from epcwatch.measurements import FieldType
from epcwatch.profiles.decode import Decoder
from epcwatch.profiles.encode import register_image
from epcwatch.profiles.model import PointSpec, Profile, Quirks, list_profiles, point_spans
from epcwatch.profiles.planner import Plan, effective_max_gap, plan_profile


def minimum_reads(points: tuple[PointSpec, ...], quirks: Quirks, max_gap: int) -> int:
    """Fewest reads, by dynamic programming over the sorted needed ranges of each function.

    best[j] = fewest reads covering the first j ranges; a read may cover ranges i..j-1 when it spans
    at most the maximum, touches no forbidden address and bridges no gap longer than max_gap.
    """
    by_fn: dict[str, set[tuple[int, int]]] = {}
    for p in points:
        for fn, start, count in point_spans(p):
            by_fn.setdefault(fn, set()).add((start, start + count))
    total = 0
    for fn, spans in by_fn.items():
        # overlapping ranges must share a read; merge them first
        ranges: list[list[int]] = []
        for s, e in sorted(spans):
            if ranges and s < ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], e)
            else:
                ranges.append([s, e])
        n = len(ranges)
        best = [0] + [n + 1] * n
        for j in range(1, n + 1):
            for i in range(j - 1, -1, -1):
                start, end = ranges[i][0], ranges[j - 1][1]
                if end - start > quirks.max_per_read(fn):
                    break
                if i < j - 1:
                    gap = ranges[i + 1][0] - ranges[i][1]
                    if gap > max_gap or (gap and quirks.is_forbidden(fn, ranges[i][1], gap)):
                        break
                best[j] = min(best[j], best[i] + 1)
        total += best[n]
    return total


def sample_values(profile: Profile) -> dict[str, Any]:
    """Plausible values for every point (typed as the vocabulary says)."""
    out: dict[str, Any] = {}
    for p in profile.points:
        ft = measurements.VOCABULARY[p.name].field_type
        if ft is FieldType.BOOL:
            out[p.name] = True
        elif ft is FieldType.INT:
            out[p.name] = 1
        else:
            out[p.name] = 12.5
    for ip in profile.identity:
        out[ip.name] = "X1" if ip.type == "string" else 1
    return out


def responses_for(plan: Plan, image: dict[str, dict[int, int | bool]]) -> list[list[Any]]:
    return [[image[r.function].get(a, 0) for a in range(r.address, r.end)] for r in plan.reads]


def time_decode(plans: tuple[Plan, ...], image: dict[str, dict[int, int | bool]], seconds: float) -> float:
    """Values decoded per second."""
    jobs = [(Decoder(pl), responses_for(pl, image), len(pl.points)) for pl in plans]
    per_round = sum(n for _, _, n in jobs)
    rounds, start = 0, time.perf_counter()
    while True:
        for dec, resp, _ in jobs:
            dec.decode(resp)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return rounds * per_round / elapsed


_PYMODBUS_TYPES = {
    "int16": "INT16",
    "uint16": "UINT16",
    "int32": "INT32",
    "uint32": "UINT32",
    "int64": "INT64",
    "uint64": "UINT64",
    "float32": "FLOAT32",
    "float64": "FLOAT64",
    "string": "STRING",
}


def time_pymodbus(plans: tuple[Plan, ...], image: dict[str, dict[int, int | bool]], seconds: float) -> float:
    """Values per second through pymodbus's raw converter (slicing included, as in our decoder)."""
    jobs = []
    for pl in plans:
        resp = responses_for(pl, image)
        for p in pl.points:
            i = next(k for k, r in enumerate(pl.reads) if r.covers(p.function, p.address, p.count))
            off = p.address - pl.reads[i].address
            dt = _PYMODBUS_TYPES.get(p.type)
            order = "little" if p.order in ("CDAB", "DCBA") else "big"
            datatype = None if dt is None else getattr(ModbusClientMixin.DATATYPE, dt)
            jobs.append((resp[i], off, p.count, datatype, order))
    convert = ModbusClientMixin.convert_from_registers
    rounds, start = 0, time.perf_counter()
    while True:
        for regs, off, count, dt, order in jobs:
            chunk = regs[off : off + count]
            if dt is None:
                bool(chunk[0])
            else:
                convert(chunk, dt, word_order=order)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return rounds * len(jobs) / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=0.5, help="time per throughput measurement")
    ap.add_argument("--max-gap", type=int, default=None, help="override every profile's gap")
    args = ap.parse_args(argv)

    header = (
        f"{'profile':28s} {'points':>6s} {'reads':>5s} {'min':>4s} {'ratio':>5s} {'naive':>5s} "
        f"{'regs':>5s} {'decode values/s':>15s} {'pymodbus raw/s':>14s} {'ratio':>5s}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for prof in list_profiles():
        gap = effective_max_gap(prof, args.max_gap)
        plans = plan_profile(prof, args.max_gap)
        cyclic = tuple(pl for pl in plans if pl.interval is not None)
        reads = sum(len(pl.reads) for pl in cyclic)
        minimum = sum(minimum_reads(pl.points, prof.quirks, gap) for pl in cyclic)
        naive = sum(len(pl.points) for pl in cyclic)
        regs = sum(pl.registers for pl in cyclic)
        image = register_image(prof, sample_values(prof))
        ours = time_decode(plans, image, args.seconds)
        theirs = time_pymodbus(plans, image, args.seconds)
        ratio = reads / minimum
        worst = max(worst, ratio)
        print(
            f"{prof.id:28s} {len(prof.points):6d} {reads:5d} {minimum:4d} {ratio:5.2f} {naive:5d} "
            f"{regs:5d} {ours:15,.0f} {theirs:14,.0f} {ours / theirs:5.2f}"
        )
    print("-" * len(header))
    print("reads: planned reads per poll cycle; min: optimum (dynamic programme); naive: one read per point;")
    print("regs: registers/bits transferred per cycle;")
    print("last ratio: our decode (sentinels, scaling, typing, quality) / pymodbus raw conversion")
    print(f"worst reads/min ratio: {worst:.2f}")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
