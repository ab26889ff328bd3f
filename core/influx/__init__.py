"""The one InfluxDB layer: line protocol, schema names and an InfluxQL/v1-write client.

- :mod:`epcwatch.influx.lineprotocol` (pure): the escaping rules and point formatting every
  writer uses, so one tag value is one series whoever writes it;
- :mod:`epcwatch.influx.schema`: measurement names, tag keys and device kinds;
- :mod:`epcwatch.influx.influxql`: quoting of identifiers and string literals in queries;
- :mod:`epcwatch.influx.client`: :class:`InfluxClient` (``/query``, ``/write``, ``/ping``) and
  :class:`InfluxError`.
"""

from epcwatch.influx.client import InfluxClient, InfluxError, Series, basic_auth_header

__all__ = ["InfluxClient", "InfluxError", "Series", "basic_auth_header"]
