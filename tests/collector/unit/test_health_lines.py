"""Agent health into line protocol: per-device counters, including bad frames and error replies."""

from __future__ import annotations

from epcwatch.collector.health import agent_health_lines
from epcwatch.wire import MIN_TS_MS, DeviceHealth, HealthMessage


def test_device_health_carries_bad_frame_counters() -> None:
    msg = HealthMessage(
        site="s1",
        ts=MIN_TS_MS,
        agent="edge-s1",
        uptime_s=1.0,
        outbox_depth=0,
        outbox_bytes=0,
        outbox_dropped=0,
        published=0,
        connected=True,
        devices=[DeviceHealth(device="t-645", polls_ok=5, polls_failed=2, frame_errors=3, error_replies=1)],
    )
    line = next(ln for ln in agent_health_lines(msg) if ln.startswith("device_health,"))
    assert "device=t-645" in line
    assert "frame_errors=3i" in line and "error_replies=1i" in line and "polls_failed=2i" in line


def test_older_agents_without_the_counters_still_validate() -> None:
    doc = {"device": "m1", "polls_ok": 1, "polls_failed": 0}
    d = DeviceHealth.model_validate(doc)
    assert (d.frame_errors, d.error_replies) == (0, 0)
