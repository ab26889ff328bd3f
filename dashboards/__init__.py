"""Grafana dashboards as code, provisioning files and publisher."""
