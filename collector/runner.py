"""``epcwatch collector run``: the consumer, the writer loop and the periodic rollup, wired together.

Threads: paho's network loop (receives into a queue), the writer loop (this module's
:meth:`Collector.run`, on the caller's thread: parse, batch, write, dead-letter, ack) and, when
enabled, a rollup thread that recomputes recent ``energy_interval`` points with its own writer.
SIGTERM/SIGINT stop the loop; a batch being retried is abandoned unacked (the broker redelivers).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

from epcwatch import logs
from epcwatch.collector.consumer import BrokerError, Consumer
from epcwatch.collector.errors import CollectorError, StoppedError
from epcwatch.collector.health import Stats
from epcwatch.collector.pipeline import Backoff, Inbound, Pipeline
from epcwatch.collector.rollup import Interval, Rules
from epcwatch.collector.rollup_job import InfluxQL, RollupSettings, rollup_lines
from epcwatch.collector.settings import CollectorConfig, Influx
from epcwatch.collector.writers import V1Writer, V2Writer, Writer

log = logging.getLogger("epcwatch.collector")


def make_writer(s: Influx) -> Writer:
    token = s.token.resolve() if s.token else None
    if s.writer == "v2":
        assert s.bucket and s.org
        return V2Writer(
            s.url, s.bucket, s.org, token, timeout=s.timeout_s, verify_tls=s.verify_tls, ca_file=s.ca_file
        )
    password = s.password.resolve() if s.password else None
    return V1Writer(
        s.url,
        s.database,
        retention_policy=s.retention_policy,
        username=s.username,
        password=password,
        token=token,
        timeout=s.timeout_s,
        verify_tls=s.verify_tls,
        ca_file=s.ca_file,
        gzip=s.gzip,
    )


def make_query(s: Influx) -> InfluxQL:
    return InfluxQL(
        s.query_url or s.url,
        s.database,
        username=s.username,
        password=s.password.resolve() if s.password else None,
        token=s.token.resolve() if s.token else None,
    )


def rollup_settings(cfg: CollectorConfig, base: Path | None) -> RollupSettings:
    tzs, default = cfg.site_timezones(base)
    r = cfg.rollup
    return RollupSettings(
        timezones=tzs,
        default_timezone=default,
        rules=Rules(max_rate_per_h=r.max_rate_per_h, moduli=tuple(r.moduli), max_gap_s=r.max_gap_s),
        max_rate_by_field=dict(r.max_rate_per_h_by_field),
    )


class Collector:
    def __init__(self, cfg: CollectorConfig, *, config_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.config_dir = config_dir
        self.stop_event = threading.Event()
        self.inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.stats = Stats()
        self.consumer = Consumer(cfg.mqtt, self.inbox)
        self.writer = make_writer(cfg.influx)
        self.pipeline = Pipeline(
            self.writer,
            self.consumer,
            group=cfg.mqtt.group,
            collector=cfg.mqtt.client_id,
            max_points=cfg.batch.max_points,
            max_wait_s=cfg.batch.max_wait_s,
            max_payload_bytes=cfg.batch.max_payload_bytes,
            backoff=Backoff(cfg.retry.initial_s, cfg.retry.max_s, cfg.retry.max_retry_after_s),
            stats=self.stats,
            health_interval_s=cfg.health.interval_s,
            wait=self.stop_event.wait,
        )

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            log.info("stopping", extra=logs.fields(signal=signal.Signals(signum).name))
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> None:
        """Consume until stopped."""
        if self.cfg.rollup.enabled:
            threading.Thread(target=self._rollup_loop, name="rollup", daemon=True).start()
        self.consumer.start()
        log.info(
            "collector running",
            extra=logs.fields(
                client_id=self.cfg.mqtt.client_id, group=self.cfg.mqtt.group, writer=self.writer.name
            ),
        )
        try:
            self._loop()
        finally:
            self.consumer.stop()
            self.writer.close()
            log.info(
                "collector stopped",
                extra=logs.fields(
                    messages=self.stats.messages,
                    points=self.stats.points,
                    dead_letters=self.stats.dead_letters,
                ),
            )

    def _loop(self) -> None:
        p = self.pipeline
        tick = min(0.2, self.cfg.batch.max_wait_s)
        while not self.stop_event.is_set():
            try:
                item = self.inbox.get(timeout=tick)
            except queue.Empty:
                item = None
            gen = self.consumer.generation
            while item is not None:
                if item.gen == gen:  # messages of a lost connection come again; skip them
                    p.add(item)
                if p.pending and len(p._batch.lines) >= p.max_points:
                    break
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    item = None
            if p.due():
                try:
                    p.flush()
                except StoppedError:
                    log.warning("stopped with a batch unwritten; it stays unacked and will be redelivered")
                    return
                except BrokerError as exc:
                    log.error("batch left unacked", extra=logs.fields(error=str(exc)))
        # stopping: write and ack what is in hand if the database answers
        if self.pipeline.pending:
            self.pipeline.wait = lambda s: True  # one attempt, no retries
            try:
                self.pipeline.flush()
            except (CollectorError, OSError):
                log.warning("final batch not written; it stays unacked and will be redelivered")

    def _rollup_loop(self) -> None:
        try:
            settings = rollup_settings(self.cfg, self.config_dir)
            db = make_query(self.cfg.influx)
            writer = make_writer(self.cfg.influx)
        except (CollectorError, ValueError, OSError) as exc:
            log.error("rollup disabled", extra=logs.fields(error=str(exc)))
            return
        every = self.cfg.rollup.every_s
        lookback_ms = int(self.cfg.rollup.lookback_h * 3_600_000)
        while not self.stop_event.wait(every):
            now = int(time.time() * 1000)
            try:
                n = 0
                for interval in (Interval.QUARTER, Interval.DAY):
                    lines = rollup_lines(db, settings, interval, now - lookback_ms, now)
                    for i in range(0, len(lines), 5000):
                        writer.write("\n".join(lines[i : i + 5000]).encode())
                    n += len(lines)
                log.info("rollup written", extra=logs.fields(points=n))
            except (CollectorError, ValueError, OSError) as exc:
                log.warning("rollup failed; next run retries", extra=logs.fields(error=str(exc)[:300]))
