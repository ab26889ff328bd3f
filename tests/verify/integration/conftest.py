"""The collector's integration fixtures, for the provenance tests that run a collector."""

from tests.collector.conftest import collectors

__all__ = ["collectors"]
