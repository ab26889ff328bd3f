"""Fast history rounds counters exactly as a live reading of the same register decodes them."""

from __future__ import annotations

import numpy as np

from epcwatch.measurements import VOCABULARY, Kind
from epcwatch.profiles.decode import decode_point
from epcwatch.profiles.encode import encode_point
from epcwatch.profiles.model import load_profile
from epcwatch.sim.history import register_quantizer
from epcwatch.sim.spec import demo_complex


def test_history_counters_equal_the_edge_decoding_of_their_registers():
    rng = np.random.default_rng(7)
    checked = 0
    for profile_id in sorted({d.profile for d in demo_complex().devices()}):
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
