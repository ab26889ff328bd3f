"""A signing agent against a real Mosquitto: every message's proof verifies with the site's public
key, and each device's chain runs unbroken across messages and across an agent restart."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from epcwatch import provenance
from epcwatch.broker.signing import create_site_key
from epcwatch.clock import SystemClock
from epcwatch.devservices.services import Mosquitto
from epcwatch.edge.agent import Agent
from epcwatch.edge.site import SigningConfig, SiteConfig
from epcwatch.wire import TelemetryMessage, telemetry_messages
from tests.edge.integration.test_agent_mqtt import DEVICES, PLAN, SITE, _config, _fake

pytestmark = pytest.mark.integration


def _messages(sub: Any) -> list[TelemetryMessage]:
    # the agent sends schema-2 site messages (a proof on every device block); one per block here
    return [m for t, p, _ in sub.snapshot() if t.endswith("/telemetry") for m in telemetry_messages(p)]


def _run(cfg: SiteConfig, sub: Any, helpers: Any, at_least: int) -> None:
    agent = Agent(cfg, dict.fromkeys(DEVICES, PLAN), SystemClock(), transport_factory=lambda bus: _fake())
    runner = helpers.AgentThread(agent).start()
    try:
        helpers.wait_for(
            # by seq: without a collector nothing is acknowledged, so a restarted agent sends
            # its unacknowledged readings again and a count of readings would include repeats
            lambda: all(
                max((r.seq for m in _messages(sub) if m.device == d for r in m.readings), default=-1)
                >= at_least - 1
                for d in DEVICES
            ),
            what=f"seq {at_least - 1} of every device",
        )
    finally:
        runner.stop()


def test_signed_chains_verify_and_survive_a_restart(
    tmp_path: Path, private_mosquitto: Mosquitto, helpers: Any
) -> None:
    key = create_site_key(tmp_path / "site.key")
    cfg = _config(tmp_path, private_mosquitto.port, interval=0.2).model_copy(
        update={"signing": SigningConfig(key_file=tmp_path / "site.key")}
    )
    sub = helpers.Subscriber(private_mosquitto.port, f"epc/v1/{SITE}/#")
    _run(cfg, sub, helpers, 4)
    _run(cfg, sub, helpers, 8)  # a new agent on the same outbox: seqs and chains continue
    sub.close()
    assert any(t.endswith("/_site/telemetry") for t, _, _ in sub.snapshot())  # signed schema 2
    public = key.public_key()
    heads: dict[str, tuple[int, bytes]] = {}
    for m in _messages(sub):
        assert m.proof is not None and m.proof.kid == provenance.key_id(public)
        readings = [provenance.ChainReading(r.seq, r.ts, r.values, r.quality) for r in m.readings]
        sr = provenance.signed_range(SITE, m.device, readings, base64.b64decode(m.proof.first_prev))
        assert provenance.verify(public, base64.b64decode(m.proof.sig), sr), (m.device, sr.first_seq)
        last = heads.get(m.device)
        if last is None:
            assert sr.first_seq == 0 and sr.first_prev == provenance.GENESIS
        elif sr.first_seq == last[0] + 1:
            assert sr.first_prev == last[1], (m.device, sr.first_seq)  # one unbroken chain
        if last is None or sr.last_seq > last[0]:
            heads[m.device] = (sr.last_seq, sr.head)
    assert all(heads[d][0] >= 7 for d in DEVICES)
