"""The register and import file shared by the reporting tests (line numbers matter: the error
tests name them)."""

REGISTER = """\
timezone: Asia/Shanghai
shared_meters:
  - {id: b1-main, site: s1, device: b1-main, in_total: false}
  - {id: plant, site: s1, device: chiller, in_total: false}
institutions:
  - id: admin
    name: 机关事务管理局
    staff: 200
    buildings: [{id: b1, floor_area_m2: 10000, heated_area_m2: 8000}]
    meters:
      - {id: admin-common, site: s1, formula: "[b1-main] - [b1-t-x]"}
      - id: admin-chiller
        site: s1
        apportion: {source: plant, by: floor_area, share_m2: 10000, total_m2: 12000}
  - id: dept-x
    name: Department X
    staff: 50
    buildings: [{id: b1x, floor_area_m2: 2000}]
    meters:
      - {id: b1-t-x, site: s1, device: b1-t-x}
      - id: x-chiller
        site: s1
        apportion: {source: plant, by: meter_ratio, meter: b1-t-x, among: [b1-t-x, admin-common]}
        tags: {tenant: x}
      - {id: x-water, site: s1, device: x-water, carrier: water}
"""

CSV = """\
institution,period,carrier,quantity,unit,source,note
admin,2025,gasoline,1000,L,fuel cards 2025,official cars
admin,2025-Q1,diesel,500,kg,generator log Q1,
admin,2024,gasoline,1200,L,fuel cards 2024,
"""
