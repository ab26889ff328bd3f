from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from epcwatch.config import ConfigError, load_yaml_model


class Dev(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    unit: int = Field(ge=1, le=247)


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    devices: list[Dev]


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "site.yaml"
    p.write_text("site: a\ndevices:\n  - id: m1\n    unit: 1\n  - id: m2\n    unit: 300\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Site)
    assert str(ei.value).startswith(f"{p}:6: devices[1].unit: Input should be less than or equal to 247")


def test_unknown_key_and_bad_yaml(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("site: a\ndevices: []\ncolour: red\n")
    with pytest.raises(ConfigError, match=r":3: colour: Extra inputs are not permitted"):
        load_yaml_model(p, Site)
    p.write_text("site: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml_model(p, Site)
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml_model(tmp_path / "missing.yaml", Site)


def test_odd_keys_are_quoted_on_one_line(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text('site: a\ndevices: []\n"\\r": 1\n" ": 2\n')
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Site)
    lines = str(ei.value).splitlines()
    assert lines == [
        f"{p}:3: '\\r': Extra inputs are not permitted",
        f"{p}:4: ' ': Extra inputs are not permitted",
    ]
