"""Local development servers (Mosquitto, InfluxDB, VictoriaMetrics) as supervised child
processes. Used by ``epcwatch services``, the demo and the tests; production code never imports it."""
