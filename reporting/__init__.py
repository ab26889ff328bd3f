"""Reporting upward: the institution register, virtual meters, non-metered imports and the
public-institution energy statistics (per institution and period, and the city roll-up)."""
