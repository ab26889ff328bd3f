"""National energy item codes (分类分项能耗编码) and building identification codes (pure).

The tables are data (``epcwatch/data/item_codes.yaml``, from the 2008 MOHURD technical
guideline for sub-item energy data collection, cited there and in docs/chinese-standards.md);
this module looks codes up, relates the levels and checks building ids::

    itemcodes.lookup("01A10").zh          # '照明与插座'
    itemcodes.first_level("01A10")        # '01A00'
    itemcodes.resolve("A")                # '01A00' (the pre-national category letter)
    itemcodes.label("01B00")              # '01B00 空调用电 Air conditioning'
    itemcodes.parse_building_id("510104A001").division   # '510104'

A code has five characters: energy class (2 digits), sub-item letter (``0`` for none), first-
and second-level sub-item digits. Levels: 0 = energy class (``01000``), 1 = electricity item
(``01A00``), 2 = its sub-item (``01A10``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import yaml
from pydantic import BaseModel, ConfigDict, Field

from epcwatch.errors import EpcwatchError

CODE_PATTERN: Final = r"[0-9]{2}[0-9A-Z][0-9]{2}"
BUILDING_ID_PATTERN: Final = r"[0-9]{6}[A-Z][0-9]{3}"
_CODE_RE: Final = re.compile(rf"^{CODE_PATTERN}$")
_BUILDING_RE: Final = re.compile(r"^([0-9]{6})([A-Z])([0-9]{3})$")


class ItemCodeError(EpcwatchError, ValueError):
    """An item code or building id that is not in the national tables."""


@dataclass(frozen=True, slots=True)
class ItemCode:
    code: str
    zh: str
    en: str
    #: 0 energy class, 1 first-level item, 2 second-level item
    level: int
    parent: str | None
    #: energy carrier of the code's class (energy_factors.yaml), None for "other energy"
    carrier: str | None
    #: the category letter (A-D) a first-level electricity item replaces
    alias: str | None = None

    @property
    def label(self) -> str:
        return f"{self.code} {self.zh} {self.en}"


@dataclass(frozen=True, slots=True)
class BuildingClass:
    letter: str
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class BuildingId:
    division: str
    building_class: BuildingClass
    serial: str

    def __str__(self) -> str:
        return f"{self.division}{self.building_class.letter}{self.serial}"


# -- the YAML file's model ----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Class(_Strict):
    code: str = Field(pattern=r"^[0-9]{2}000$")
    zh: str
    en: str
    carrier: str | None


class _Sub(_Strict):
    code: str = Field(pattern=rf"^{CODE_PATTERN}$")
    zh: str
    en: str


class _Item(_Sub):
    alias: str | None = Field(default=None, pattern=r"^[A-Z]$")
    sub: list[_Sub] = []


class _BuildingClass(_Strict):
    letter: str = Field(pattern=r"^[A-Z]$")
    zh: str
    en: str


class _File(_Strict):
    version: int
    source: str
    classes: list[_Class]
    items: list[_Item]
    building_classes: list[_BuildingClass]
    provinces: list[str]


@dataclass(frozen=True, slots=True)
class Tables:
    codes: dict[str, ItemCode]
    aliases: dict[str, str]
    building_classes: dict[str, BuildingClass]
    provinces: frozenset[str]
    source: str


def _build(doc: _File) -> Tables:
    codes: dict[str, ItemCode] = {}

    def add(c: ItemCode) -> None:
        if c.code in codes:
            raise ItemCodeError(f"item code {c.code} listed twice")
        codes[c.code] = c

    carriers: dict[str, str | None] = {}
    for k in doc.classes:
        carriers[k.code[:2]] = k.carrier
        add(ItemCode(k.code, k.zh, k.en, 0, None, k.carrier))
    aliases: dict[str, str] = {}
    for it in doc.items:
        cls = it.code[:2] + "000"
        if cls not in codes or it.code[3:] != "00" or it.code[2] == "0":
            raise ItemCodeError(f"item {it.code}: not a first-level item of a listed class")
        add(ItemCode(it.code, it.zh, it.en, 1, cls, carriers[it.code[:2]], it.alias))
        if it.alias:
            aliases[it.alias] = it.code
        for s in it.sub:
            if s.code[:3] != it.code[:3] or s.code[3] == "0" or s.code[4] != "0":
                raise ItemCodeError(f"sub-item {s.code}: not below {it.code}")
            add(ItemCode(s.code, s.zh, s.en, 2, it.code, carriers[it.code[:2]]))
    classes = {b.letter: BuildingClass(b.letter, b.zh, b.en) for b in doc.building_classes}
    return Tables(codes, aliases, classes, frozenset(doc.provinces), doc.source)


@functools.cache
def tables() -> Tables:
    """The shipped national tables."""
    text = resources.files("epcwatch").joinpath("data/item_codes.yaml").read_text(encoding="utf-8")
    return _build(_File.model_validate(yaml.safe_load(text)))


def known_codes() -> frozenset[str]:
    return frozenset(tables().codes)


def is_known(code: str) -> bool:
    return code in tables().codes


def lookup(code: str) -> ItemCode:
    """The code's entry; :class:`ItemCodeError` names the known codes of the same class."""
    t = tables()
    try:
        return t.codes[code]
    except KeyError:
        pass
    if not _CODE_RE.match(code):
        raise ItemCodeError(f"{code!r} is not an item code (five characters such as 01A10)")
    siblings = sorted(c for c in t.codes if c[:2] == code[:2]) or sorted(t.codes)
    raise ItemCodeError(f"{code!r} is not a national item code (known: {', '.join(siblings)})")


def resolve(code_or_alias: str) -> str:
    """The national code for a code or a category letter (``A`` → ``01A00``)."""
    alias = tables().aliases.get(code_or_alias)
    return alias if alias is not None else lookup(code_or_alias).code


def first_level(code: str) -> str:
    """The code's level-1 item (``01A10`` → ``01A00``); classes map to themselves."""
    c = lookup(code)
    return c.parent if c.level == 2 and c.parent is not None else c.code


def energy_class(code: str) -> str:
    """The code's energy class (``01A10`` → ``01000``)."""
    lookup(code)
    return code[:2] + "000"


def category_of(code: str) -> str | None:
    """The pre-national category letter (A-D) of the code's level-1 item, if it has one."""
    return lookup(first_level(code)).alias


def label(code: str) -> str:
    return lookup(code).label


def level(n: int) -> list[ItemCode]:
    """Every code of level ``n`` in table order."""
    return [c for c in tables().codes.values() if c.level == n]


def derive_tags(category: str | None, item_code: str | None) -> tuple[str | None, str | None]:
    """``(category, item_code)`` as stored in InfluxDB for a device's tags.

    The ``category`` tag is the level-1 electricity item under its pre-national letter (``A`` is
    ``01A00``, and so on), so data stored before item codes and after them aggregate alike: an
    item code gives its letter (``01A10`` → ``A``); a letter alone stays as it is. Raises
    :class:`ItemCodeError` for an unknown code or a category that contradicts the code.
    """
    if item_code is None:
        # a letter alone is its level-1 item: the meter measures the whole item
        return category, tables().aliases.get(category) if category is not None else None
    alias = lookup(first_level(item_code)).alias
    if category is not None and category != alias:
        l1 = first_level(item_code)
        raise ItemCodeError(
            f"category {category!r} contradicts item code {item_code} ({label(l1)}"
            + (f", category {alias})" if alias else ")")
        )
    return alias, item_code


# -- building identification codes -------------------------------------------------------------


def parse_building_id(text: str) -> BuildingId:
    """``510104A001`` → division 510104, class A (office), serial 001; raises :class:`ItemCodeError`."""
    m = _BUILDING_RE.match(text)
    if m is None:
        raise ItemCodeError(
            f"building id {text!r}: expected 6 digits of administrative division, a class letter "
            "and a 3-digit serial, e.g. 510104A001"
        )
    division, letter, serial = m.groups()
    t = tables()
    if division[:2] not in t.provinces:
        raise ItemCodeError(
            f"building id {text!r}: {division} is not a GB/T 2260 division (province {division[:2]})"
        )
    if letter not in t.building_classes:
        known = ", ".join(f"{b.letter} {b.zh}" for b in t.building_classes.values())
        raise ItemCodeError(f"building id {text!r}: unknown building class {letter} (known: {known})")
    if serial == "000":
        raise ItemCodeError(f"building id {text!r}: serials start at 001")
    return BuildingId(division, t.building_classes[letter], serial)


def is_valid_building_id(text: str) -> bool:
    try:
        parse_building_id(text)
    except ItemCodeError:
        return False
    return True
