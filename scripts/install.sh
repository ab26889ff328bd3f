#!/usr/bin/env bash
# Install everything epcwatch needs on Debian 12 (run as root, or with sudo available):
# the servers it runs (Mosquitto, InfluxDB 1.x, VictoriaMetrics), the Modbus interop tools
# (socat, mbpoll), Chromium for the report tests, and the Python environment in .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(mosquitto mosquitto-clients influxdb victoria-metrics socat mbpoll chromium python3-venv openssl)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # the packages' own services are not wanted: epcwatch starts its own instances
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# strict editable mode: a link tree of the component folders under their import names, which
# mypy and every subprocess see like an installed wheel
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=strict
echo "epcwatch installed: $(.venv/bin/epcwatch --version)"
