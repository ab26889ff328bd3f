"""epcwatch: building energy monitoring for energy-performance contracts."""

__version__ = "0.1.0"
