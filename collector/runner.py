"""``epcwatch collector run``: the consumer, the writer loop and the periodic rollup, wired together.

Threads: the MQTT link (:mod:`epcwatch.collector.mqttlink`: receives into a queue), the writer
loop (this module's :meth:`Collector.run`, on the caller's thread: parse, batch, write,
dead-letter, ack) and, when enabled, a rollup thread that recomputes recent ``energy_interval``
points with its own writer.
SIGTERM/SIGINT stop the loop; a batch being retried is abandoned unacked (the broker redelivers).
"""

from __future__ import annotations

import gc
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
from epcwatch.collector.interval_store import IntervalStore
from epcwatch.collector.intervals import IntervalBook
from epcwatch.collector.pipeline import Backoff, Inbound, Pipeline, Sealed
from epcwatch.collector.rollup import Interval, Rules
from epcwatch.collector.rollup_job import InfluxQL, RollupSettings, rollup_lines
from epcwatch.collector.settings import CollectorConfig, Influx
from epcwatch.collector.writers import V1Writer, V2Writer, Writer
from epcwatch.influx import InfluxClient
from epcwatch.verify.keyring import load_keyring

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
    """Rollup queries, with the writer's credentials (a token is sent as the password)."""
    password = s.password.resolve() if s.password else None
    token = s.token.resolve() if s.token else None
    return InfluxQL(InfluxClient(s.query_url or s.url, s.database, s.username, password or token))


def rollup_settings(cfg: CollectorConfig, base: Path | None) -> RollupSettings:
    tzs, default = cfg.site_timezones(base)
    r = cfg.rollup
    return RollupSettings(
        timezones=tzs,
        default_timezone=default,
        rules=Rules(max_rate_per_h=r.max_rate_per_h, moduli=tuple(r.moduli), max_gap_s=r.max_gap_s),
        max_rate_by_field=dict(r.max_rate_per_h_by_field),
    )


def interval_state_path(cfg: CollectorConfig, base: Path | None) -> str:
    state = cfg.rollup.state
    if state is None:
        return ":memory:" if base is None else str(base / "collector-intervals.sqlite")
    path = Path(state)
    return str(path if path.is_absolute() or base is None else base / path)


#: a full collection waits for this many collections of the middle generation (default 10)
FULL_GC_AFTER = 1_000


def tune_gc() -> None:
    """Keep the garbage collector off the long-lived state. What exists when the collector starts
    (modules, settings, the interval book restored from its file) is frozen out of collections,
    and a full collection, which walks every object the process keeps (the book holds a few
    objects per series and counter), runs after 1,000 middle collections instead of 10. Each
    batch's parsed readings live until the batch is stored, so with the defaults they reached the
    oldest generation and set off a full collection every ~10,000 readings: 20-25 % of the parse
    thread's CPU in the live benchmark. Reference counting frees the transient objects as before;
    only garbage in reference cycles waits longer."""
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_GC_AFTER)


class Collector:
    def __init__(self, cfg: CollectorConfig, *, config_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.config_dir = config_dir
        self.stop_event = threading.Event()
        #: set when a batch is abandoned: later batches must not be acked out of order
        self._abort = threading.Event()
        self._order = threading.Condition()
        self._finished = -1
        self._busy = 0
        self.exit_code = 0
        self.inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.stats = Stats()
        self.consumer = Consumer(cfg.mqtt, self.inbox)
        self.writers = [make_writer(cfg.influx) for _ in range(cfg.influx.connections)]
        self.interval_store: IntervalStore | None = None
        book = None
        if cfg.rollup.at_ingest:
            settings = rollup_settings(cfg, config_dir)
            self.interval_store = IntervalStore(interval_state_path(cfg, config_dir))
            book = IntervalBook(
                settings.tz,
                settings.rules_for,
                open_every_s=cfg.rollup.open_every_s,
                checkpoint_readings=cfg.rollup.checkpoint_readings,
            )
            book.restore(*self.interval_store.load())
        self.writer = self.writers[0]
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
            intervals=book,
            store_intervals=self.interval_store.save if self.interval_store else None,
            keyring=load_keyring(Path(cfg.keyring)) if cfg.keyring else None,
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
        if self.interval_store is not None:
            threading.Thread(target=self._repair_loop, name="repair", daemon=True).start()
        tune_gc()
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
            for w in self.writers:
                w.close()
            log.info(
                "collector stopped",
                extra=logs.fields(
                    messages=self.stats.messages,
                    points=self.stats.points,
                    dead_letters=self.stats.dead_letters,
                ),
            )

    def _loop(self) -> None:
        """Parse on this thread, write on ``influx.connections`` writer threads.

        Sealed batches are numbered; any writer may write any batch (concurrent writes of
        different points are independent, and a rewrite is harmless), but dead letters and acks
        happen strictly in batch order, so PUBACKs leave in the order the messages came. The
        hand-off holds one batch per writer: while the database is away, intake stops and the
        broker keeps the messages.
        """
        p = self.pipeline
        n = len(self.writers)
        handoff: queue.Queue[tuple[int, Sealed] | None] = queue.Queue(maxsize=n)
        threads = [
            threading.Thread(target=self._commit_loop, args=(handoff, w), name=f"writer-{i}", daemon=True)
            for i, w in enumerate(self.writers)
        ]
        for t in threads:
            t.start()
        seq = 0
        tick = min(0.2, self.cfg.batch.max_wait_s)
        try:
            while not self.stop_event.is_set() and not self._abort.is_set():
                try:
                    item = self.inbox.get(timeout=tick)
                except queue.Empty:
                    item = None
                gen = self.consumer.generation
                while item is not None:
                    if item.gen == gen:  # messages of a lost connection come again; skip them
                        p.add(item)
                    if p.full():
                        break
                    try:
                        item = self.inbox.get_nowait()
                    except queue.Empty:
                        item = None
                # group commit: seal when full or old, or as soon as all writers are idle and nothing
                # more is waiting (low latency at low load, full batches at high load)
                idle = item is None and p.pending and handoff.empty() and self._busy == 0
                if idle or p.due():
                    job = (seq, p.seal())
                    seq += 1
                    while not self._put(handoff, job):
                        if self.stop_event.is_set() or self._abort.is_set():
                            return
            # stopping: hand over what is in hand; the writers try it once
            if (p.pending or p.intervals is not None) and not self._abort.is_set():
                self._put(handoff, (seq, p.seal(final=True)))
        finally:
            for _ in threads:
                self._put(handoff, None)
            for t in threads:
                t.join(self.cfg.influx.timeout_s + 5)

    @staticmethod
    def _put(handoff: queue.Queue[tuple[int, Sealed] | None], job: tuple[int, Sealed] | None) -> bool:
        try:
            handoff.put(job, timeout=0.2)
        except queue.Full:
            return False
        return True

    def _commit_loop(self, handoff: queue.Queue[tuple[int, Sealed] | None], writer: Writer) -> None:
        while True:
            job = handoff.get()
            if job is None:
                return
            seq, sealed = job
            with self._order:
                self._busy += 1
            try:
                refused = self.pipeline.write(sealed, writer)
                with self._order:
                    while self._finished != seq - 1:
                        if self._abort.is_set():
                            raise StoppedError("an earlier batch was abandoned")
                        self._order.wait(0.2)
                    try:
                        self.pipeline.finish(sealed, refused)
                    finally:
                        self._finished = seq
                        self._order.notify_all()
            except StoppedError:
                self._abort.set()
                log.warning("stopped with a batch unwritten; it stays unacked and will be redelivered")
                return
            except BrokerError as exc:
                # the broker did not confirm a dead letter: leave the batch unacked and restart,
                # so that the broker redelivers it (systemd's Restart=always brings us back)
                log.error("dead letter not confirmed; stopping", extra=logs.fields(error=str(exc)))
                self._abort.set()
                self.stop_event.set()
                self.exit_code = 3
                return
            except Exception:  # never die silently
                log.exception("writer failed; stopping")
                self._abort.set()
                self.stop_event.set()
                self.exit_code = 3
                return
            finally:
                with self._order:
                    self._busy -= 1

    def _repair_loop(self, every_s: float = 30.0) -> None:
        """Recompute from InfluxDB the ranges that late readings asked for (at-ingest intervals)."""
        store = self.interval_store
        assert store is not None
        try:
            settings = rollup_settings(self.cfg, self.config_dir)
            db = make_query(self.cfg.influx)
            writer = make_writer(self.cfg.influx)
        except (CollectorError, ValueError, OSError) as exc:
            log.error("interval repairs disabled", extra=logs.fields(error=str(exc)))
            return
        while not self.stop_event.wait(every_s):
            try:
                for rid, r in store.repairs():
                    for interval in (Interval.QUARTER, Interval.DAY):
                        lines = rollup_lines(db, settings, interval, r.t0, r.t1, site=r.site or None)
                        for i in range(0, len(lines), 5000):
                            writer.write("\n".join(lines[i : i + 5000]).encode())
                    store.repaired([rid])
                    log.info("interval energy repaired", extra=logs.fields(site=r.site, t0=r.t0, t1=r.t1))
            except (CollectorError, ValueError, OSError) as exc:
                log.warning("repair failed; next run retries", extra=logs.fields(error=str(exc)[:300]))

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
