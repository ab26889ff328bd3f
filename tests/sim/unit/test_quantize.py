"""Fast history rounds counters exactly as a live reading of the same register decodes them."""

from __future__ import annotations

import numpy as np

from epcwatch.measurements import VOCABULARY, Kind
from epcwatch.profiles import dlt645_profile
from epcwatch.profiles.decode import decode_point
from epcwatch.profiles.dlt645_profile import is_dlt645_profile, load_dlt645_profile
from epcwatch.profiles.encode import encode_point
from epcwatch.profiles.model import load_profile
from epcwatch.sim.dlt645 import encode_reading
from epcwatch.sim.history import bcd_quantizer, profile_quantizers, register_quantizer
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex


def test_history_counters_equal_the_edge_decoding_of_their_registers():
    rng = np.random.default_rng(7)
    checked = 0
    for profile_id in sorted({d.profile for d in demo_complex().devices()}):
        if is_dlt645_profile(profile_id):
            continue  # below
        for p in load_profile(profile_id).points:
            if VOCABULARY[p.name].kind is not Kind.COUNTER or p.scale_factor is not None:
                continue
            top = 60_000 * p.scale if p.type in ("int16", "uint16") else 3e6
            values = rng.uniform(0, top, 200)
            mine = register_quantizer(p.type, p.scale)(values)
            edge = [decode_point(p, encode_point(p, float(v))) for v in values]
            assert mine.tolist() == edge, (profile_id, p.name)
            checked += 1
    assert checked >= 10


def test_history_counters_of_dlt645_meters_equal_the_edge_decoding_of_their_bcd_values():
    """The demo's DL/T 645 tenant meters: history rounds and wraps a counter as the simulated
    meter encodes it (``XXXXXX.XX`` kWh wraps at 1,000,000) and the edge decodes it."""
    rng = np.random.default_rng(11)
    ids = sorted({d.profile for d in demo_complex().devices() if is_dlt645_profile(d.profile)})
    assert ids  # the demo has a DL/T 645 building
    checked = 0
    for profile_id in [*ids, "acrel-adl400-dlt645", "generic-dlt645-1997"]:
        for p in load_dlt645_profile(profile_id).points:
            if VOCABULARY[p.name].kind is not Kind.COUNTER:
                continue
            step = p.scale / 10**p.bcd.decimals
            values = np.concatenate(
                [rng.uniform(0, 3e6, 200), [0.0, step / 2, 1.5 * step, 999_999.994, 999_999.996, 1e6]]
            )
            mine = bcd_quantizer(p.bcd.decimals, p.scale, p.bcd.max_magnitude + 1)(values)
            edge = [dlt645_profile.decode_point(p, encode_reading(p, float(v))) for v in values]
            assert mine.tolist() == edge, (profile_id, p.name)
            assert max(edge) < 1e6 and 0.0 in edge  # 1e6 kWh reads 0: the register wrapped
            checked += 1
    assert checked >= 4
    model = ComplexModel(demo_complex())
    tenants = [d for d in model.devices if d.building == "b1" and d.tenant]
    assert set(profile_quantizers(model, tenants)["b1-t-finance"]) == {"energy_import", "energy_export"}
