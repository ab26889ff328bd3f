"""Representative data for the dashboards' tests, as line protocol following docs/data-model.md.

A small office site in Asia/Shanghai: two buildings with category sub-meters (A–D; b1's with
level-2 national item codes), tenant meters, a main meter and water, gas, heat and cooling
meters; daily ``energy_interval`` points at local midnight for 2024-01-01 … 2025-02-28; hourly
telemetry, health and savings points around 2025-02-01/02.
Values are a deterministic function of device and day, so tests derive expectations from the
same generator instead of hard-coding numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from epcwatch.portfolio import Building, Portfolio, Site

TZ = ZoneInfo("Asia/Shanghai")
SITE = "civic-centre"
FIRST_DAY = date(2024, 1, 1)
LAST_DAY = date(2025, 2, 28)
#: the telemetry / health window (local days)
LIVE_DAYS = (date(2025, 2, 1), date(2025, 2, 2))

PORTFOLIO = Portfolio(
    sites=[
        Site(
            id=SITE,
            name="Civic centre",
            timezone="Asia/Shanghai",
            buildings=[
                Building(id="b1", name="Administration tower", floor_area_m2=24000, occupants=900, floors=20),
                Building(id="b2", name="Public service hall", floor_area_m2=12500.5, occupants=300, floors=4),
            ],
        )
    ]
)


@dataclass(frozen=True)
class Meter:
    device: str
    building: str
    category: str = ""
    tenant: str = ""
    field: str = "energy_import"
    base: float = 100.0
    #: national item code as the collector stores it (level 2, or the level-1 code of a meter
    #: set up with a category letter only, or the energy class of a water/gas/heat meter)
    item_code: str = ""


#: b1's sub-meters carry level-2 item codes (two sub-items of A and of B), b2's only category
#: letters (stored with their level-1 codes), as a site part-way through adopting the codes
METERS = [
    *(
        Meter(f"b1-{role}", "b1", cat, base=base, item_code=code)
        for role, cat, base, code in (
            ("light", "A", 800, "01A10"),
            ("corridor", "A", 120, "01A20"),
            ("hvac", "B", 1500, "01B10"),
            ("terminals", "B", 500, "01B20"),
            ("power", "C", 400, "01C10"),
            ("special", "D", 250, "01D00"),
        )
    ),
    *(
        Meter(f"b2-{role}", "b2", cat, base=base * 0.55, item_code=f"01{cat}00")
        for role, cat, base in (
            ("light", "A", 800),
            ("hvac", "B", 1500),
            ("power", "C", 400),
            ("special", "D", 250),
        )
    ),
    Meter("b1-main", "b1", base=3100),
    Meter("b2-main", "b2", base=1700),
    Meter("b1-t-finance", "b1", tenant="finance", base=600),
    Meter("b1-t-planning", "b1", tenant="planning", base=450),
    Meter("b1-water", "b1", field="water_volume", base=40, item_code="02000"),
    Meter("b1-gas", "b1", field="gas_volume", base=60, item_code="03000"),
    Meter("b2-heat", "b2", field="heat_energy", base=900, item_code="04000"),
    Meter("b2-cooling", "b2", field="cooling_energy", base=700, item_code="05000"),
]


def meter(device: str) -> Meter:
    return next(m for m in METERS if m.device == device)


#: days a meter sent nothing (a gap the statistics must report)
GAPS = {"b2-special": {date(2025, 2, 10), date(2025, 2, 11), date(2025, 2, 12)}}


def has_data(m: Meter, day: date) -> bool:
    return day not in GAPS.get(m.device, set())


def daily_value(m: Meter, day: date) -> float:
    """kWh (or m³) of one local day: weekday/weekend and season shape, a little growth in 2025."""
    weekday = 1.0 if day.weekday() < 5 else 0.35
    season = 1.0 + 0.25 * abs(6.5 - day.month) / 5.5
    year = 0.93 if day.year >= 2025 else 1.0  # the retrofit saves ~7 %
    return round(m.base * weekday * season * year + (day.day % 7) * 0.5, 3)


def local_midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() * 1000)


def _tags(m: Meter) -> str:
    t = f"building={m.building},device={m.device}"
    if m.category:
        t = f"building={m.building},category={m.category},device={m.device}"
    if m.item_code:
        t += f",item_code={m.item_code}"
    if m.tenant:
        t += f",tenant={m.tenant}"
    return t


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def lines() -> list[str]:
    out: list[str] = []
    for m in METERS:
        for d in days(FIRST_DAY, LAST_DAY):
            if not has_data(m, d):
                continue
            out.append(
                f"energy_interval,{_tags(m)},interval=1d,site={SITE} "
                f"{m.field}={daily_value(m, d)!r},coverage=1 {local_midnight_ms(d)}"
            )
    start = local_midnight_ms(LIVE_DAYS[0])
    hours = 48
    for h in range(hours):
        ts = start + h * 3_600_000
        hour = h % 24
        occupied = 8 <= hour < 19
        for m in METERS:
            if m.field != "energy_import":
                continue
            p = m.base / 24 * 1000 * (1.6 if occupied else 0.4)
            out.append(f"meter,{_tags(m)},profile=sdm630,site={SITE} active_power={p:.1f} {ts}")
        for b in ("b1", "b2"):
            out.append(
                f"hvac,building={b},category=B,device={b}-ahu1,site={SITE} "
                f"supply_air_temp={13.5 + hour * 0.05:.2f},supply_air_temp_setpoint=14.0,"
                f"zone_temp={23 + (hour % 5) * 0.2:.2f},zone_temp_setpoint=24.0,run_hours={1000 + h}.0,"
                f"run_status={'true' if occupied else 'false'} {ts}"
            )
            out.append(
                f"hvac,building={b},category=B,device={b}-chiller,site={SITE} "
                f"supply_water_temp={7 + (hour % 3) * 0.1:.2f},supply_water_temp_setpoint=7.0,cop=4.2,"
                f"run_hours={5000 + h}.0 {ts}"
            )
            level = 80.0 if occupied else 10.0
            zones = ",".join(f"zone{z}_power={level * 12 + z:.1f}" for z in range(1, 5))
            out.append(
                f"lighting,building={b},category=A,device={b}-lc1,site={SITE} "
                f"lighting_level={level},zones_on={4 if occupied else 1}i,{zones} {ts}"
            )
        out.append(f"sensor,device=weather,site={SITE} outdoor_temp={5 + hour * 0.3:.1f} {ts}")
    # 15-minute energy rollups of the electricity meters (the demand interval)
    for m in METERS:
        if m.field != "energy_import":
            continue
        for k in range(hours * 4):
            hour = (k // 4) % 24
            kwh = m.base / 24 * (1.6 if 8 <= hour < 19 else 0.4) / 4
            out.append(
                f"energy_interval,{_tags(m)},interval=15m,site={SITE} "
                f"energy_import={kwh:.4f},coverage=1 {start + k * 900_000}"
            )
    # run hours per day (energy_interval carries every counter of a device)
    for b in ("b1", "b2"):
        for d in LIVE_DAYS:
            out.append(
                f"energy_interval,building={b},category=B,device={b}-ahu1,interval=1d,site={SITE} "
                f"run_hours=11.0 {local_midnight_ms(d)}"
            )
    # health every 5 minutes
    for i in range(0, 48 * 12):
        ts = start + i * 300_000
        for dev, ok in (("b1-main", True), ("b1-light", True), ("b2-main", i < 400)):
            failed = 0 if ok else i - 399
            out.append(
                f"device_health,device={dev},site={SITE} polls_ok={i * 30}i,polls_failed={failed}i,"
                f"consecutive_failures={failed}i,last_latency_ms={12.5 + (i % 7)},"
                f"last_ok_ts={ts if ok else start + 399 * 300_000}i,"
                f"online={'true' if ok else 'false'} {ts}"
            )
        out.append(
            f"agent_health,agent=edge-1,site={SITE} outbox_depth={(i * 37) % 500}i,outbox_bytes={i * 1000}i,"
            f"outbox_dropped=0i,outbox_unacked={(i * 13) % 200}i,outbox_oldest_age_s={(i % 12) * 30}.0,"
            f"published={i * 90}i,connected=true,uptime_s={i * 300}.0 {ts}"
        )
        out.append(
            f"collector_health,collector=c1,group=collectors messages_per_s=150.0,points_per_s=2100.0,"
            f"write_latency_ms=8.0,lag_ms={40 + i % 20}.0,dead_letters={i // 100}i,messages={i * 45000}i,"
            f"points={i * 630000}i {ts}"
        )
    # savings: January and February 2025
    cum = 0.0
    for d in days(date(2025, 1, 1), LAST_DAY):
        actual = 5000.0 + d.day * 10
        baseline = actual * 1.08
        cum += baseline - actual
        guaranteed = 300.0 * (d - date(2025, 1, 1)).days
        out.append(
            f"savings,contract=led-2025,site={SITE} actual={actual},adjusted_baseline={baseline:.3f},"
            f"savings={baseline - actual:.3f},cumulative_savings={cum:.3f},"
            f"guaranteed_cumulative={guaranteed:.1f},"
            f"temperature={6 + d.day * 0.2:.2f} {local_midnight_ms(d)}"
        )
    out.append(
        f'savings_model,contract=led-2025,site={SITE} model="3PC",cv_rmse=8.4,nmbe=0.3,r2=0.91,n_points=365i,'
        f"n_params=3i,autocorrelation=0.42,fractional_uncertainty=12.5,savings_uncertainty=5400.0 "
        f"{local_midnight_ms(LIVE_DAYS[0])}"
    )
    return out
