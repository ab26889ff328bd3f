"""``epcwatch verify``: recompute the chains and signatures of stored readings from a keyring alone."""
