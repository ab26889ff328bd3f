"""The portfolio: sites and their buildings, with what energy statistics need to normalise
(floor area, occupants) and where day boundaries fall (the site's timezone).

Loaded from YAML (``demo/data/portfolio.yaml`` describes the demo site) and written into
InfluxDB as the ``building_info`` measurement so that dashboards can compute EUI.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

from epcwatch import itemcodes
from epcwatch.config import load_yaml_model
from epcwatch.fields import Timezone
from epcwatch.wire import Id, TagValue


class Building(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: TagValue
    name: str
    floor_area_m2: float = Field(gt=0)
    occupants: int = Field(ge=0, default=0)
    floors: int = Field(ge=1, default=1)
    code: str | None = Field(
        default=None,
        description="building identification code (建筑识别编码): administrative division (GB/T 2260) "
        "+ building class letter + serial, e.g. 510104A001",
    )

    @field_validator("code")
    @classmethod
    def _code(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                itemcodes.parse_building_id(v)
            except itemcodes.ItemCodeError as exc:
                raise ValueError(str(exc)) from None
        return v


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Id
    name: str
    timezone: Timezone = "UTC"
    buildings: list[Building] = Field(min_length=1)

    def building(self, building_id: str) -> Building:
        for b in self.buildings:
            if b.id == building_id:
                return b
        raise KeyError(f"site {self.id} has no building {building_id!r}")


class Portfolio(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sites: list[Site] = Field(min_length=1)

    def site(self, site_id: str) -> Site:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(f"portfolio has no site {site_id!r}")


def load_portfolio(path: str | os.PathLike[str]) -> Portfolio:
    return load_yaml_model(path, Portfolio)
