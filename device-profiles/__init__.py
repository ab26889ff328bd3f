"""Device register maps (one YAML per model), shipped as package data."""
