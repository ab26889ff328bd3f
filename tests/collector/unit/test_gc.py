"""The collector keeps the garbage collector off its long-lived state (runner.tune_gc)."""

from __future__ import annotations

import gc

from epcwatch.collector.runner import FULL_GC_AFTER, tune_gc


def test_startup_objects_are_frozen_and_full_collections_are_rare() -> None:
    before = gc.get_threshold()
    kept = [{"state": i} for i in range(1000)]  # long-lived objects existing at start
    try:
        tune_gc()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (before[0], before[1], FULL_GC_AFTER)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
