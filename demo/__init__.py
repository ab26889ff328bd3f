"""The demo: the simulated office complex through the whole chain, with its files in ``data/``."""
