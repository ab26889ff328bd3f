"""Property tests of the read planner against an independent brute-force optimum."""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from epcwatch.profiles.model import Point, Quirks
from epcwatch.profiles.planner import Read, plan_reads

NAMES = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
         "active_power", "frequency", "reactive_power"]
WIDTH = {"uint16": 1, "uint32": 2, "uint64": 4}
SPAN = 40  # addresses 0..SPAN-1


@st.composite
def maps(draw: st.DrawFn) -> tuple[list[Point], Quirks, int]:
    """A small random map: non-overlapping points (plus bit fields sharing a register), a few
    forbidden ranges that no point touches, a max per read and a max gap."""
    n = draw(st.integers(1, 7))
    taken: set[tuple[str, int]] = set()
    specs: list[dict[str, Any]] = []
    for name in NAMES[:n]:
        fn = draw(st.sampled_from(("holding", "input")))
        t = draw(st.sampled_from(sorted(WIDTH)))
        addr = draw(st.integers(0, SPAN - WIDTH[t]))
        cells = {(fn, a) for a in range(addr, addr + WIDTH[t])}
        assume(not cells & taken)
        taken |= cells
        spec: dict[str, Any] = {"name": name, "function": fn, "address": addr, "type": t}
        if draw(st.booleans()) and t == "uint16":
            sf = draw(st.integers(0, SPAN - 1))  # SunSpec scale factor somewhere in the same table
            spec = {**spec, "type": "int16", "scale_factor": {"address": sf}}
            if (fn, sf) not in taken:
                taken.add((fn, sf))
        specs.append(spec)
    if draw(st.booleans()):  # two bit fields in one register: identical spans
        fn = draw(st.sampled_from(("holding", "input")))
        addr = draw(st.integers(0, SPAN - 1))
        assume((fn, addr) not in taken)
        taken.add((fn, addr))
        specs += [{"name": "run_status", "function": fn, "address": addr, "bit": 0},
                  {"name": "fault", "function": fn, "address": addr, "bit": 1}]
    forbidden = []
    for _ in range(draw(st.integers(0, 3))):
        fn = draw(st.sampled_from(("holding", "input")))
        first = draw(st.integers(0, SPAN - 1))
        last = draw(st.integers(first, min(SPAN - 1, first + 3)))
        if all((fn, a) not in taken for a in range(first, last + 1)):
            forbidden.append({"function": fn, "first": first, "last": last})
    max_per_read = draw(st.integers(4, 20))
    quirks = Quirks.model_validate({"max_registers_per_read": max_per_read, "forbidden": forbidden})
    return [Point.model_validate(s) for s in specs], quirks, draw(st.integers(0, 6))


def needs(points: list[Point]) -> list[tuple[str, int, int]]:
    """Every (function, first, end) range that must lie wholly inside one read."""
    out = []
    for p in points:
        out.append((p.function, p.address, p.address + p.count))
        if p.scale_factor is not None:
            out.append((p.function, p.scale_factor.address, p.scale_factor.address + 1))
    return sorted(set(out))


def brute_force_min_reads(points: list[Point], quirks: Quirks, max_gap: int) -> int:
    """Breadth-first search over sets of covered ranges, trying every legal read of every table.

    Written without the planner's reasoning: a read is any address range of at most the maximum
    length that touches no forbidden address and in which no run of unneeded addresses (at the
    edges or inside) is longer than max_gap."""
    ranges = needs(points)
    full = (1 << len(ranges)) - 1
    needed = {(fn, a) for fn, s, e in ranges for a in range(s, e)}
    moves = set()
    for fn in ("holding", "input"):
        for start in range(SPAN):
            for count in range(1, quirks.max_registers_per_read + 1):
                end = start + count
                if end > SPAN or any(quirks.is_forbidden(fn, a) for a in range(start, end)):
                    break
                run = longest = 0
                for a in range(start, end):
                    run = 0 if (fn, a) in needed else run + 1
                    longest = max(longest, run)
                if longest > max_gap:
                    continue
                inside = (i for i, (f, s, e) in enumerate(ranges) if f == fn and start <= s and e <= end)
                mask = sum(1 << i for i in inside)
                if mask:
                    moves.add(mask)
    seen = {0: 0}
    queue = deque([0])
    while queue:
        state = queue.popleft()
        if state == full:
            return seen[state]
        for m in moves:
            nxt = state | m
            if nxt not in seen:
                seen[nxt] = seen[state] + 1
                queue.append(nxt)
    raise AssertionError("no set of reads covers the map")


def check_plan(reads: tuple[Read, ...], points: list[Point], quirks: Quirks) -> None:
    for fn, s, e in needs(points):
        assert any(r.covers(fn, s, e - s) for r in reads), f"{fn} {s}..{e} not read"
    for r in reads:
        assert 1 <= r.count <= quirks.max_per_read(r.function)
        assert not quirks.is_forbidden(r.function, r.address, r.count)
    named = [n for r in reads for n in r.points]
    assert sorted(named) == sorted(p.name for p in points)  # every point decoded from exactly one read


@settings(max_examples=300, deadline=None)
@given(maps())
def test_planner_is_correct_and_optimal(case: tuple[list[Point], Quirks, int]) -> None:
    points, quirks, max_gap = case
    reads = plan_reads(points, quirks, max_gap)
    check_plan(reads, points, quirks)
    assert len(reads) <= brute_force_min_reads(points, quirks, max_gap)


@settings(max_examples=100, deadline=None)
@given(maps(), st.randoms(use_true_random=False))
def test_planner_is_deterministic(case: tuple[list[Point], Quirks, int], rnd: Any) -> None:
    points, quirks, max_gap = case
    shuffled = list(points)
    rnd.shuffle(shuffled)
    a, b = plan_reads(points, quirks, max_gap), plan_reads(shuffled, quirks, max_gap)
    assert [(r.function, r.address, r.count, sorted(r.points)) for r in a] == [
        (r.function, r.address, r.count, sorted(r.points)) for r in b
    ]


@settings(max_examples=100, deadline=None)
@given(maps())
def test_a_larger_gap_never_needs_more_reads(case: tuple[list[Point], Quirks, int]) -> None:
    points, quirks, max_gap = case
    assert len(plan_reads(points, quirks, max_gap + 1)) <= len(plan_reads(points, quirks, max_gap))
