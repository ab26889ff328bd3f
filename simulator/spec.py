"""What the simulated office complex is made of: buildings, tenants, plant, devices and retrofits.

The demo complex (:func:`demo_complex`) is site ``civic-centre`` of docs/data-model.md: a
municipal centralised office district in a Chengdu-like climate with three buildings. Device ids
are ``{building}-{role}``; every device names the shipped profile whose register map serves it.

Sub-metering, as this model defines it (the identity the tests check):

* ``{b}-main`` = ``{b}-light`` (A) + ``{b}-hvac`` (B) + ``{b}-power`` (C) + ``{b}-special`` (D);
  in a building with ``hvac_submeters`` B is metered by two level-2 sub-meters instead,
  ``{b}-hvac-plant`` (01B10 冷热站) + ``{b}-hvac-terminals`` (01B20 空调末端: AHUs and fan coils)
  (:meth:`ComplexSpec.category_meters` lists a building's category meters either way)
* ``{b}-light`` (A, lighting & sockets) = sum of the tenant meters ``{b}-t-{tenant}``: each
  department's meter carries its floors' lighting and sockets, and together they cover all of A
* ``{b}-lc1`` (lighting controller) reports the lighting part of A (its zones' power)
* ``{b}-chiller`` + ``{b}-ahu*`` are part of B (the rest of B is terminal units: fan coils, exhaust)

Tags: category meters carry ``category``; tenant meters carry ``tenant`` (and ``category`` A,
whose part they are); main meters and controllers carry neither, so summing the category meters
(``category`` set, ``tenant`` empty) counts every kWh once. A building with ``item_codes`` tags
its category meters with the national level-1 item codes (``01A00`` …) and its water and gas
meters (``{b}-water``, ``{b}-gas``, present where the building's water or gas use is set) with
the energy classes ``02000`` and ``03000``.

A building with ``dlt645_tenants`` meters its departments on DL/T 645-2007 sub-meters (the
``tenant_dlt645`` profile, a CHINT DTSU666 in DL/T 645 mode): ``sim serve --dlt645-port`` serves
them on a transparent serial-over-TCP gateway, and the fast history tags them with the same
profile, so history and live readings form one series per meter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Final, Literal

from epcwatch.wire import DeviceKind

__all__ = ["DeviceKind"]

Use = Literal["office", "service_hall", "archive_dc"]
Measure = Literal["led_lighting", "chiller_replacement", "ahu_schedule"]
Category = Literal["A", "B", "C", "D"]

MEASURES: Final[tuple[Measure, ...]] = ("led_lighting", "chiller_replacement", "ahu_schedule")
CATEGORY_ROLES: Final[dict[Category, str]] = {"A": "light", "B": "hvac", "C": "power", "D": "special"}


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    share: float  #: share of the building's lighting & socket load (floors occupied)


@dataclass(frozen=True)
class Schedule:
    """Daily on-window in local hours; ``non_workday`` None means off on weekends and holidays."""

    workday: tuple[float, float]
    non_workday: tuple[float, float] | None


#: the audit's finding: AHUs run early to late and on weekends
LOOSE_AHU: Final = Schedule((6.0, 22.0), (8.0, 18.0))
#: the retrofit: occupied hours only, off on weekends and holidays
TIGHT_AHU: Final = Schedule((7.5, 18.5), None)


@dataclass(frozen=True)
class Building:
    id: str
    name: str
    use: Use
    floor_area_m2: float
    floors: int
    occupants: int
    tenants: tuple[Tenant, ...]
    ahus_kw: tuple[float, ...]  #: rated fan power of each AHU
    lighting_zones: int = 8
    lighting_w_m2: float = 8.0  #: installed lighting power density (T8 fluorescent)
    led_lighting_w_m2: float = 4.5  #: after the LED retrofit
    plug_w_m2: float = 6.0  #: sockets at full occupancy
    plug_standby_w_m2: float = 1.4
    cool_w_m2k: float = 4.0  #: envelope + ventilation cooling load per K above 20 °C
    heat_w_m2k: float = 3.2  #: heating load per K below 14 °C
    solar_w_m2: float = 9.0  #: solar gain at full daylight
    plant_capacity_kw: float = 2000.0  #: thermal capacity of the heat-pump chiller plant
    chiller_cop: float = 3.1  #: nominal cooling COP (at 30 °C outdoor, full load)
    heating_cop: float = 2.7  #: nominal heating COP (at 7 °C outdoor)
    new_chiller_cop_factor: float = 1.35  #: replacement plant's COP relative to the old one
    terminal_w_m2: float = 1.8  #: fan coils and exhaust fans while HVAC runs
    lifts: int = 6
    lift_kw: float = 15.0
    base_power_kw: float = 18.0  #: pumps and ventilation, around the clock
    special_kw: float = 60.0  #: kitchen peak / server room / data-centre IT load
    ahu_schedule: Schedule = LOOSE_AHU
    #: tap water per occupant and working day (m³); > 0 gives the building a water meter
    water_m3_per_person_day: float = 0.0
    #: canteen gas burners at the lunch peak (m³/h); > 0 gives the building a gas meter
    canteen_gas_m3h: float = 0.0
    #: tag the category, water and gas meters with the national item codes
    item_codes: bool = False
    #: building identification code (建筑识别编码), e.g. 510104A001
    code: str | None = None
    #: meter HVAC (B) as its two national level-2 items: plant 01B10 and terminals 01B20
    hvac_submeters: bool = False
    #: the tenant sub-meters speak DL/T 645 (profile role ``tenant_dlt645``), not Modbus. The
    #: 2007 edition's power format (XX.XXXX kW) tops out at 79.9999 kW: keep each tenant below it
    dlt645_tenants: bool = False


@dataclass(frozen=True)
class Retrofit:
    """An energy conservation measure installed in ``building`` at local midnight of ``installed``."""

    building: str
    measure: Measure
    installed: dt.date


@dataclass(frozen=True)
class Device:
    id: str
    kind: DeviceKind
    role: str  #: main, light, hvac, power, special, tenant, chiller, ahu, lc, weather
    profile: str  #: shipped device profile serving this device's registers
    building: str | None = None
    floor: str | None = None
    category: Category | None = None
    tenant: str | None = None
    index: int = 0  #: AHU number, lighting controller number
    item_code: str | None = None  #: national item code (分类分项能耗编码)


#: which shipped profile serves which role (a main meter on CTs, DIN-rail sub-meters, …)
DEFAULT_PROFILES: Final[dict[str, str]] = {
    "main": "schneider-pm5100",  # CT-connected power meter, 64-bit Wh counter
    "light": "abb-b23",
    "hvac": "carlo-gavazzi-em24",
    "power": "chint-dtsu666",
    "special": "schneider-iem3000",
    "tenant": "eastron-sdm630",
    "tenant_dlt645": "chint-dtsu666-dlt645",  # a tenant meter on a DL/T 645 RS-485 line
    "chiller": "generic-chiller-plant",
    "ahu": "generic-ahu",
    "lc": "generic-lighting-controller",
    "weather": "generic-rs485-th",
    "water": "generic-water-meter",
    "gas": "generic-gas-meter",
}
#: level-2 HVAC sub-meters (role, item code) of a building with ``hvac_submeters``
HVAC_SUBMETERS: Final[tuple[tuple[str, str], ...]] = (("hvac-plant", "01B10"), ("hvac-terminals", "01B20"))
#: roles of meters that count a volume (m³), not electrical energy
VOLUME_ROLES: Final[dict[str, str]] = {"water": "water_volume", "gas": "gas_volume"}
#: level-1 national item code of each category, and the classes of water and gas
ITEM_CODES: Final[dict[str, str]] = {
    "A": "01A00", "B": "01B00", "C": "01C00", "D": "01D00", "water": "02000", "gas": "03000",
}  # fmt: skip


@dataclass(frozen=True)
class ComplexSpec:
    site: str
    timezone: str
    buildings: tuple[Building, ...]
    retrofits: tuple[Retrofit, ...]
    seed: int = 0
    #: counters read their initial value at local midnight starting this day
    counter_origin: dt.date = dt.date(2024, 1, 1)
    profiles: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROFILES))

    def building(self, building_id: str) -> Building:
        for b in self.buildings:
            if b.id == building_id:
                return b
        raise KeyError(f"no building {building_id!r}")

    def devices(self) -> list[Device]:
        """Every device of the complex, in a stable order."""
        p = self.profiles
        out: list[Device] = []
        for b in self.buildings:
            out.append(Device(f"{b.id}-main", "meter", "main", p["main"], b.id, "B1"))
            for cat, role in CATEGORY_ROLES.items():
                if cat == "B" and b.hvac_submeters:
                    for sub, sub_code in HVAC_SUBMETERS:
                        out.append(
                            Device(
                                f"{b.id}-{sub}",
                                "meter",
                                sub,
                                p[role],
                                b.id,
                                "B1",
                                category=cat,
                                item_code=sub_code,
                            )
                        )
                    continue
                code: str | None = ITEM_CODES[cat] if b.item_codes else None
                out.append(
                    Device(f"{b.id}-{role}", "meter", role, p[role], b.id, "B1", category=cat, item_code=code)
                )
            for role, wanted in (("water", b.water_m3_per_person_day), ("gas", b.canteen_gas_m3h)):
                if wanted > 0:
                    code = ITEM_CODES[role] if b.item_codes else None
                    out.append(Device(f"{b.id}-{role}", "meter", role, p[role], b.id, "B1", item_code=code))
            tenant_profile = p["tenant_dlt645" if b.dlt645_tenants else "tenant"]
            for t in b.tenants:
                out.append(
                    Device(
                        f"{b.id}-t-{t.id}", "meter", "tenant", tenant_profile, b.id, category="A", tenant=t.id
                    )
                )
            # controllers carry no category: a building's category energy is the sum of its
            # category meters, and the controllers' own counters must not be added to it
            out.append(Device(f"{b.id}-chiller", "hvac", "chiller", p["chiller"], b.id, "RF"))
            for i in range(len(b.ahus_kw)):
                out.append(Device(f"{b.id}-ahu{i + 1}", "hvac", "ahu", p["ahu"], b.id, index=i))
            out.append(Device(f"{b.id}-lc1", "lighting", "lc", p["lc"], b.id))
        out.append(Device("weather", "sensor", "weather", p["weather"]))
        return out

    def category_meters(self, building_id: str) -> list[Device]:
        """The building's category sub-meters (category set, no tenant): they add up to its main meter."""
        return [
            d
            for d in self.devices()
            if d.building == building_id and d.category is not None and d.tenant is None
        ]

    def device(self, device_id: str) -> Device:
        for d in self.devices():
            if d.id == device_id:
                return d
        raise KeyError(f"no device {device_id!r}")


def demo_complex(seed: int = 0) -> ComplexSpec:
    """Site ``civic-centre``: baseline 2024, retrofits installed 2025-01-01, reporting 2025."""
    b1 = Building(
        id="b1",
        code="510104A001",
        name="Administration tower",
        use="office",
        floor_area_m2=24_000.0,
        floors=18,
        occupants=1_150,
        # shares of at most 0.21: a department peaks near 75 kW (T8 lighting, summer), inside
        # the DL/T 645 power format of its sub-meter (79.9999 kW)
        tenants=(
            Tenant("finance", "Finance bureau", 0.21),
            Tenant("planning", "Planning commission", 0.21),
            Tenant("education", "Education bureau", 0.20),
            Tenant("health", "Health commission", 0.20),
            Tenant("justice", "Justice bureau", 0.18),
        ),
        ahus_kw=(45.0, 45.0),
        plant_capacity_kw=2_400.0,
        lifts=8,
        special_kw=70.0,
        # about 40 L per person and working day (GB 50555 office quota: 30-50 L), a staff canteen
        water_m3_per_person_day=0.04,
        canteen_gas_m3h=24.0,
        item_codes=True,
        hvac_submeters=True,
        dlt645_tenants=True,
    )
    b2 = Building(
        id="b2",
        code="510104A002",
        name="Public service hall",
        use="service_hall",
        floor_area_m2=12_000.0,
        floors=4,
        occupants=380,
        tenants=(
            Tenant("hall", "Service hall counters", 0.55),
            Tenant("permits", "Permits office", 0.25),
            Tenant("records", "Civil records office", 0.20),
        ),
        ahus_kw=(37.0, 30.0),
        lighting_w_m2=9.0,
        led_lighting_w_m2=5.0,
        plug_w_m2=5.0,
        cool_w_m2k=4.6,
        solar_w_m2=12.0,
        plant_capacity_kw=1_300.0,
        chiller_cop=3.3,
        lifts=4,
        special_kw=22.0,
    )
    b3 = Building(
        id="b3",
        code="510104H001",
        name="Archive and data centre",
        use="archive_dc",
        floor_area_m2=8_000.0,
        floors=6,
        occupants=110,
        tenants=(
            Tenant("archive", "City archive", 0.7),
            Tenant("itc", "Information centre", 0.3),
        ),
        ahus_kw=(30.0,),
        lighting_zones=6,
        plug_w_m2=4.5,
        cool_w_m2k=3.0,
        plant_capacity_kw=700.0,
        lifts=2,
        base_power_kw=10.0,
        special_kw=150.0,
    )
    installed = dt.date(2025, 1, 1)
    return ComplexSpec(
        site="civic-centre",
        timezone="Asia/Shanghai",
        buildings=(b1, b2, b3),
        retrofits=(
            Retrofit("b1", "led_lighting", installed),
            Retrofit("b1", "chiller_replacement", installed),
            Retrofit("b1", "ahu_schedule", installed),
            Retrofit("b2", "led_lighting", installed),
            Retrofit("b2", "ahu_schedule", installed),
        ),
        seed=seed,
    )
