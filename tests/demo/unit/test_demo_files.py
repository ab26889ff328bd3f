"""The demo's data files agree with the simulated complex."""

from __future__ import annotations

from pathlib import Path

from epcwatch.portfolio import load_portfolio
from epcwatch.sim.spec import demo_complex

ROOT = Path(__file__).resolve().parents[3]


def test_portfolio_matches_the_simulated_buildings():
    spec = demo_complex()
    site = load_portfolio(ROOT / "demo" / "data" / "portfolio.yaml").site(spec.site)
    assert site.timezone == spec.timezone
    assert [b.id for b in site.buildings] == [b.id for b in spec.buildings]
    for b in spec.buildings:
        pb = site.building(b.id)
        assert (pb.floor_area_m2, pb.occupants, pb.floors, pb.name) == (
            b.floor_area_m2,
            b.occupants,
            b.floors,
            b.name,
        )


def test_generated_portfolio_equals_the_shipped_one():
    import yaml

    from epcwatch.demo.run import portfolio_yaml
    from epcwatch.portfolio import Portfolio

    shipped = load_portfolio(ROOT / "demo" / "data" / "portfolio.yaml")
    assert Portfolio.model_validate(yaml.safe_load(portfolio_yaml())) == shipped


def test_demo_buildings_have_national_building_codes():
    from epcwatch import itemcodes

    site = load_portfolio(ROOT / "demo" / "data" / "portfolio.yaml").site(demo_complex().site)
    for b in site.buildings:
        assert b.code is not None
        assert itemcodes.parse_building_id(b.code).division == "510104"
