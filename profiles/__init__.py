"""Device profiles: the profile model, the shipped library and the register codec.
Shared by the edge agent (decoding) and the simulator (encoding)."""
