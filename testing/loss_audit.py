"""The loss audit: every reading the edge committed, compared with what the database holds.

Pure: two collections of plain records in, figures out. The chaos run feeds it the readings
the edge outboxes committed (``produced``) and the points read back from InfluxDB
(``stored``, with the wall time an observer first saw each one), and prints the report.

A produced reading is identified by ``(site, device, seq)``; it is *stored* when a point with
the same site, device and timestamp exists (and, where the point carries its seq, the same
seq). Figures:

- ``lost``: produced readings with no stored point;
- ``duplicated``: stored points beyond the first for one produced reading. InfluxDB overwrites
  a point with the same series and timestamp, so a re-delivered reading is stored once; a
  duplicate is the same reading under a second series (tags or measurement differing
  between deliveries);
- ``unexpected``: stored points that match no produced reading (data nobody produced, or a
  point whose seq contradicts the reading committed at that timestamp);
- ``max_delay_s``: the longest time from a reading's timestamp to its first sighting in the
  database, over the readings whose first sighting is known.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

ReadingKey = tuple[str, str, int]  # site, device, seq


@dataclass(frozen=True, slots=True)
class Produced:
    site: str
    device: str
    seq: int
    ts: int  # ms since the epoch


@dataclass(frozen=True, slots=True)
class Stored:
    site: str
    device: str
    ts: int  # ms since the epoch
    seq: int | None = None
    first_seen: float | None = None  # wall seconds when an observer first saw the point


@dataclass(frozen=True)
class AuditReport:
    produced: int
    stored: int
    lost: int
    duplicated: int
    unexpected: int
    max_delay_s: float | None
    median_delay_s: float | None
    lost_examples: list[ReadingKey] = field(default_factory=list)
    duplicated_examples: list[ReadingKey] = field(default_factory=list)
    unexpected_examples: list[tuple[str, str, int]] = field(default_factory=list)
    lost_by_device: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0

    def lines(self) -> list[str]:
        def secs(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1f} s"

        out = [
            f"produced     {self.produced}",
            f"stored       {self.stored}",
            f"lost         {self.lost}",
            f"duplicated   {self.duplicated}",
            f"unexpected   {self.unexpected}",
            f"max delay    {secs(self.max_delay_s)}",
            f"median delay {secs(self.median_delay_s)}",
        ]
        if self.lost_examples:
            out.append("lost e.g.   " + ", ".join(f"{s}/{d}#{q}" for s, d, q in self.lost_examples))
        if self.duplicated_examples:
            out.append("dup e.g.    " + ", ".join(f"{s}/{d}#{q}" for s, d, q in self.duplicated_examples))
        if self.unexpected_examples:
            out.append("unexpected e.g. " + ", ".join(f"{s}/{d}@{t}" for s, d, t in self.unexpected_examples))
        return out


def audit(produced: Iterable[Produced], stored: Iterable[Stored], examples: int = 5) -> AuditReport:
    by_time: dict[tuple[str, str, int], Produced] = {}
    ts_of: dict[ReadingKey, int] = {}
    n_produced = 0
    for p in produced:
        key = (p.site, p.device, p.seq)
        if key in ts_of:
            continue  # the same committed reading reported twice is one reading
        ts_of[key] = p.ts
        by_time[(p.site, p.device, p.ts)] = p
        n_produced += 1

    hits: Counter[ReadingKey] = Counter()
    first_seen: dict[ReadingKey, float] = {}
    unexpected: list[tuple[str, str, int]] = []
    n_stored = 0
    for s in stored:
        n_stored += 1
        match = by_time.get((s.site, s.device, s.ts))
        if match is None or (s.seq is not None and s.seq != match.seq):
            unexpected.append((s.site, s.device, s.ts))
            continue
        key = (match.site, match.device, match.seq)
        hits[key] += 1
        if s.first_seen is not None:
            prev = first_seen.get(key)
            first_seen[key] = s.first_seen if prev is None else min(prev, s.first_seen)

    lost = sorted(ts_of.keys() - hits.keys())
    lost_by_device: dict[tuple[str, str], int] = defaultdict(int)
    for site, device, _ in lost:
        lost_by_device[(site, device)] += 1
    duplicated = sorted(k for k, n in hits.items() if n > 1)
    delays = [seen - ts_of[k] / 1000.0 for k, seen in first_seen.items()]
    return AuditReport(
        produced=n_produced,
        stored=n_stored,
        lost=len(lost),
        duplicated=sum(hits[k] - 1 for k in duplicated),
        unexpected=len(unexpected),
        max_delay_s=max(delays) if delays else None,
        median_delay_s=statistics.median(delays) if delays else None,
        lost_examples=lost[:examples],
        duplicated_examples=duplicated[:examples],
        unexpected_examples=sorted(unexpected)[:examples],
        lost_by_device=dict(lost_by_device),
    )
