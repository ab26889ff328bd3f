"""Signed fast history: per device consecutive seqs from 0, one chain across messages, each
message's proof verifies with the site key, and the heads are where a live agent continues."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epcwatch import provenance
from epcwatch.sim.history import HistorySigner, history_batches
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex
from epcwatch.wire import TelemetryMessage

DAY = dt.date(2025, 3, 3)


def test_signed_history_is_one_verifiable_chain_per_device() -> None:
    model = ComplexModel(demo_complex())
    devices = model.devices[:3]
    key = Ed25519PrivateKey.generate()
    signer = HistorySigner(key)
    batches = list(
        history_batches(
            model, DAY, DAY, interval_s=3600, devices=devices, readings_per_message=10, signer=signer
        )
    )
    heads: dict[str, tuple[int, bytes]] = {}
    for b in batches:
        m = TelemetryMessage.model_validate_json(b.payload)
        assert m.proof is not None and m.proof.kid == provenance.key_id(key.public_key())
        readings = [provenance.ChainReading(r.seq, r.ts, r.values, r.quality) for r in m.readings]
        sr = provenance.signed_range(m.site, m.device, readings, base64.b64decode(m.proof.first_prev))
        assert provenance.verify(key.public_key(), base64.b64decode(m.proof.sig), sr)
        last, head = heads.get(m.device, (-1, provenance.GENESIS))
        assert sr.first_seq == last + 1 and sr.first_prev == head  # consecutive, one chain
        heads[m.device] = (sr.last_seq, sr.head)
    assert heads == signer.heads
    assert {d.id: heads[d.id][0] for d in devices} == {d.id: 23 for d in devices}  # 24 readings: seq 0..23


def test_unsigned_history_keeps_epoch_second_seqs() -> None:
    model = ComplexModel(demo_complex())
    (b, *_) = history_batches(model, DAY, DAY, interval_s=3600, devices=model.devices[:1])
    m = TelemetryMessage.model_validate_json(b.payload)
    assert m.proof is None and all(r.seq == r.ts // 1000 for r in m.readings)
