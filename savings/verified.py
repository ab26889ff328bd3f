"""How much of a contract's energy rests on verified readings (docs/provenance.md).

A device-day's energy (``energy_interval``, ``1d``) keeps the seqs of the counter readings at its
edges (``first_seq``, ``last_seq``); it is *verified* when every reading ``first_seq..last_seq``
of that device verifies against the keyring. The report states, for the baseline and the
reporting period, the kWh and share so verified, and lists by day what kept the rest from it.
:func:`period_share` is pure; :func:`verified_share_from_influx` reads InfluxDB and runs the verifier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from epcwatch.influx import InfluxClient
    from epcwatch.provenance import Keyring
    from epcwatch.savings.contract import Contract


@dataclass(frozen=True, slots=True)
class DeviceDay:
    device: str
    day: date
    kwh: float
    first_seq: int | None = None
    last_seq: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceAudit:
    """One device's verification result: verified seqs, and why each failing seq failed."""

    verified: frozenset[int]
    failed: Mapping[int, str] = field(default_factory=dict)  # seq -> altered / missing / reason


@dataclass(frozen=True, slots=True)
class DayIssue:
    day: date
    device: str
    kwh: float
    why: str


@dataclass(frozen=True)
class PeriodShare:
    name: str
    kwh: float
    kwh_verified: float
    issues: list[DayIssue]

    @property
    def share(self) -> float | None:
        return self.kwh_verified / self.kwh if self.kwh > 0 else None


@dataclass(frozen=True)
class VerifiedShare:
    baseline: PeriodShare
    reporting: PeriodShare
    min_share: float | None = None

    @property
    def verifiable(self) -> bool:
        """False when the contract sets a minimum verified share the reporting period misses."""
        s = self.reporting.share
        return self.min_share is None or (s is not None and s >= self.min_share)


def _why(d: DeviceDay, audit: DeviceAudit | None) -> str | None:
    """``None`` when the device-day is verified, else what kept it from being verified."""
    if d.first_seq is None or d.last_seq is None:
        return "unsigned readings"
    if audit is None:
        return "no verification result"
    bad = [s for s in range(d.first_seq, d.last_seq + 1) if s not in audit.verified]
    if not bad:
        return None
    reasons = sorted({audit.failed.get(s, "unsigned") for s in bad})
    shown = ", ".join(str(s) for s in bad[:5]) + (" …" if len(bad) > 5 else "")
    return f"{'; '.join(reasons)} (seq {shown})"


def period_share(name: str, days: Iterable[DeviceDay], audits: Mapping[str, DeviceAudit]) -> PeriodShare:
    total = verified = 0.0
    issues = []
    for d in sorted(days, key=lambda x: (x.day, x.device)):
        if math.isnan(d.kwh):
            continue
        total += d.kwh
        why = _why(d, audits.get(d.device))
        if why is None:
            verified += d.kwh
        else:
            issues.append(DayIssue(d.day, d.device, d.kwh, why))
    return PeriodShare(name, total, verified, issues)


# -- I/O ------------------------------------------------------------------------------------------


def _device_days(client: InfluxClient, c: Contract, start: date, end: date) -> list[DeviceDay]:
    from epcwatch.influx.influxql import ident, literal
    from epcwatch.influx.schema import ENERGY_INTERVAL

    tz = ZoneInfo(c.timezone)
    lo = int(datetime(start.year, start.month, start.day, tzinfo=tz).timestamp() * 1000)
    e = end + timedelta(days=1)
    hi = int(datetime(e.year, e.month, e.day, tzinfo=tz).timestamp() * 1000)
    fld = c.meters[0].field
    sel = " OR ".join(
        "(" + " AND ".join(f"{ident(k)}={literal(v)}" for k, v in sorted(m.tags().items())) + ")"
        for m in c.meters
    )
    q = (
        f"SELECT {ident(fld)}, first_seq, last_seq FROM {ident(ENERGY_INTERVAL)} "
        f"WHERE site={literal(c.site)} AND ({sel}) AND interval='1d' "
        f"AND time >= {lo}ms AND time < {hi}ms GROUP BY device"
    )
    out = []
    for s in client.query(q):
        for row in s.rows:
            v = row.get(fld)
            if v is None:
                continue
            day = datetime.fromtimestamp(int(row["time"]) / 1000, tz).date()
            fs, ls = row.get("first_seq"), row.get("last_seq")
            out.append(
                DeviceDay(
                    s.tags["device"],
                    day,
                    float(v),
                    None if fs is None else int(fs),
                    None if ls is None else int(ls),
                )
            )
    return out


def verified_share_from_influx(client: InfluxClient, c: Contract, keyring: Keyring) -> VerifiedShare:
    """Verify the contract site's readings over both periods and weigh each day's energy."""
    from epcwatch.verify.audit import audit_device
    from epcwatch.verify.stored import device_data

    tz = ZoneInfo(c.timezone)
    shares = []
    for name, period in (("baseline", c.baseline), ("reporting", c.reporting)):
        days = _device_days(client, c, period.start, period.end)
        s0 = int(
            datetime(period.start.year, period.start.month, period.start.day, tzinfo=tz).timestamp() * 1000
        )
        e = period.end + timedelta(days=2)  # the reading after the last day's end
        s1 = int(datetime(e.year, e.month, e.day, tzinfo=tz).timestamp() * 1000)
        audits: dict[str, DeviceAudit] = {}
        devices = {d.device for d in days}
        for device, data in device_data(client, c.site, s0 - 86_400_000, s1, devices):
            if device not in devices:
                continue
            rep = audit_device(c.site, device, data.readings, data.records, keyring)
            failed: dict[int, str] = {s: "altered after storage" for s in rep.altered}
            failed.update({s: "missing" for a, b in rep.missing for s in range(a, b + 1)})
            failed.update(rep.invalid)
            audits[device] = DeviceAudit(frozenset(rep.verified), failed)
        shares.append(period_share(name, days, audits))
    return VerifiedShare(shares[0], shares[1], c.min_verified_share)


def verified_doc(ev: VerifiedShare) -> dict[str, Any]:
    """The ``verified_readings`` section of report.json."""

    def one(p: PeriodShare) -> dict[str, Any]:
        return {
            "kwh": p.kwh,
            "kwh_verified": p.kwh_verified,
            "share": p.share,
            "issues": [
                {"day": i.day.isoformat(), "device": i.device, "kwh": i.kwh, "why": i.why} for i in p.issues
            ],
        }

    return {
        "baseline": one(ev.baseline),
        "reporting": one(ev.reporting),
        "min_verified_share": ev.min_share,
        "verifiable": ev.verifiable,
    }
