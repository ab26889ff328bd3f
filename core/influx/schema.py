"""Names in InfluxDB that more than one component reads or writes (docs/data-model.md).

A rename happens here; queries and writers import the names instead of repeating literals.
"""

from __future__ import annotations

from typing import Final, get_args

from epcwatch.wire import DeviceKind

# -- measurements ---------------------------------------------------------------------------
#: device kinds, which are also the measurements their readings are written to
DEVICE_KINDS: Final[tuple[DeviceKind, ...]] = get_args(DeviceKind)
METER: Final = "meter"
HVAC: Final = "hvac"
LIGHTING: Final = "lighting"
SENSOR: Final = "sensor"
#: energy per device and interval, computed from the counters by the collector's rollups
ENERGY_INTERVAL: Final = "energy_interval"
#: floor area, occupants and floors per building (from the portfolio), at time 0
BUILDING_INFO: Final = "building_info"
#: daily M&V results per contract
SAVINGS: Final = "savings"
#: one point per signed telemetry message: the signed range of a device's readings
#: (docs/provenance.md, "What is stored")
PROVENANCE: Final = "provenance"
#: one point per savings report run: the model and its statistics
SAVINGS_MODEL: Final = "savings_model"
#: one point per message the collector could not store (collector/deadletters.py)
DEAD_LETTER: Final = "dead_letter"

# -- tag keys -------------------------------------------------------------------------------
SITE: Final = "site"
DEVICE: Final = "device"
BUILDING: Final = "building"
CATEGORY: Final = "category"
FLOOR: Final = "floor"
PROFILE: Final = "profile"
TENANT: Final = "tenant"
#: national sub-metering item code (01A10 …; docs/chinese-standards.md)
ITEM_CODE: Final = "item_code"
CONTRACT: Final = "contract"
#: ``energy_interval``'s interval tag (``15m``, ``1h``, ``1d``)
INTERVAL: Final = "interval"
#: the tags of every device reading, sorted by key (the order InfluxDB's index prefers)
DEVICE_TAG_KEYS: Final = (BUILDING, CATEGORY, DEVICE, FLOOR, ITEM_CODE, PROFILE, SITE, TENANT)

# -- fields ---------------------------------------------------------------------------------
#: a signed reading's seq, stored beside its values so the verifier can join it to its record
SEQ: Final = "seq"
#: a signed reading's quality when it is not ``good``
QUALITY: Final = "quality"
#: share of an ``energy_interval`` that the counter samples cover (0–1)
COVERAGE: Final = "coverage"
