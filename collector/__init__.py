"""Collector: MQTT consumer, validation, dead letters, InfluxDB writers, interval-energy rollups."""
