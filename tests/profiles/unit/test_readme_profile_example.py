"""The annotated profile in docs/profiles.md is a valid profile that plans and decodes."""

from __future__ import annotations

import re
from pathlib import Path

from epcwatch.profiles.decode import decode
from epcwatch.profiles.encode import register_image
from epcwatch.profiles.model import load_profile
from epcwatch.profiles.planner import plan_profile

README = Path(__file__).resolve().parents[3] / "docs" / "profiles.md"


def test_readme_example_profile_is_valid(tmp_path: Path) -> None:
    section = README.read_text().split("# Device profiles and the read planner", 1)[1]
    block = re.search(r"```yaml\n(# device-profiles/meters/acme-pm10\.yaml.*?)```", section, re.S)
    assert block is not None, "annotated example not found in README"
    path = tmp_path / "acme-pm10.yaml"
    path.write_text(block.group(1))
    prof = load_profile(str(path))
    assert prof.id == "acme-pm10"
    values = {"voltage_l1": 230.1, "active_power": 1234.5, "energy_import": 4567.891, "outdoor_temp": -3.5,
              "reactive_power": -220.0, "operating_mode": 2, "run_status": True, "fault": False,
              "zone1_on": True, "current_n": None}
    image = register_image(prof, values)
    decoded: dict[str, object] = {}
    for plan in plan_profile(prof):
        for r in plan.reads:
            assert not prof.quirks.is_forbidden(r.function, r.address, r.count)
        responses = [[image[r.function].get(a, 0) for a in range(r.address, r.end)] for r in plan.reads]
        out = decode(plan, responses)
        decoded |= out.values
        assert "current_n" not in out.values
    assert decoded == {k: v for k, v in values.items() if v is not None}
