"""The loss audit is pure: its figures follow from set laws over produced and stored records."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from epcwatch.testing.loss_audit import Produced, Stored, audit

T0 = 1_790_000_000_000


@st.composite
def produced_sets(draw: st.DrawFn) -> list[Produced]:
    out = []
    for site in draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=1, max_size=3, unique=True)):
        for device in draw(
            st.lists(st.sampled_from(["m1", "m2", "h1"]), min_size=1, max_size=3, unique=True)
        ):
            n = draw(st.integers(0, 30))
            out += [Produced(site, device, seq, T0 + seq * 1000) for seq in range(n)]
    return out


def stored_of(p: Produced, seen_after: float = 2.0, with_seq: bool = True) -> Stored:
    return Stored(p.site, p.device, p.ts, p.seq if with_seq else None, p.ts / 1000 + seen_after)


@given(produced_sets(), st.randoms(use_true_random=False), st.booleans())
def test_stored_subset_laws(produced: list[Produced], rnd: random.Random, with_seq: bool) -> None:
    kept = [p for p in produced if rnd.random() < 0.8]
    dups = [p for p in kept if rnd.random() < 0.1]
    stored = [stored_of(p, with_seq=with_seq) for p in kept + dups]
    rnd.shuffle(stored)
    r = audit(produced, stored)
    assert r.produced == len(produced)
    assert r.stored == len(stored)
    assert r.lost == len(produced) - len(kept)
    assert r.duplicated == len(dups)
    assert r.unexpected == 0
    assert sum(r.lost_by_device.values()) == r.lost
    assert r.ok == (r.lost == 0 and not dups)
    if kept:
        assert r.max_delay_s is not None and abs(r.max_delay_s - 2.0) < 1e-6


def test_everything_stored_once_is_ok_and_delay_is_the_worst_first_sighting() -> None:
    produced = [Produced("s1", "m1", i, T0 + i * 1000) for i in range(5)]
    stored = [stored_of(p, seen_after=1.0 + p.seq) for p in produced]
    # a later second sighting of the same point does not count as its delay
    stored.append(Stored("s1", "m1", T0, 0, T0 / 1000 + 100))
    r = audit(produced, stored)
    assert (r.produced, r.lost, r.unexpected) == (5, 0, 0)
    assert r.duplicated == 1  # the repeated identical point is a second copy
    assert r.max_delay_s == 5.0 and r.median_delay_s == 3.0


def test_unexpected_points_and_contradicting_seq() -> None:
    produced = [Produced("s1", "m1", 0, T0), Produced("s1", "m1", 1, T0 + 1000)]
    stored = [
        Stored("s1", "m1", T0, 0),
        Stored("s1", "m1", T0 + 1000, 7),  # a different reading at that timestamp
        Stored("s2", "m1", T0, None),  # a site that produced nothing
    ]
    r = audit(produced, stored)
    assert (r.lost, r.unexpected, r.duplicated) == (1, 2, 0)
    assert r.lost_examples == [("s1", "m1", 1)]
    assert not r.ok
    text = "\n".join(r.lines())
    assert "lost         1" in text and "s1/m1#1" in text


def test_the_same_committed_reading_reported_twice_is_one_reading() -> None:
    p = Produced("s1", "m1", 3, T0)
    r = audit([p, p], [stored_of(p)])
    assert (r.produced, r.lost, r.duplicated) == (1, 0, 0)


def test_empty_inputs() -> None:
    r = audit([], [])
    assert r.ok and r.max_delay_s is None and r.produced == r.stored == 0
