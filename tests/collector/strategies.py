"""Hypothesis strategies for telemetry payloads, good and bad (shared by the collector tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from epcwatch import itemcodes, measurements
from epcwatch.measurements import FieldType
from epcwatch.wire import MAX_TS_MS, MIN_TS_MS

ids = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,15}\Z")
names = st.sampled_from(sorted(measurements.VOCABULARY))
tag_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters="\x7f"),
    min_size=1,
    max_size=20,
).filter(lambda s: not s.endswith("\\"))


def value_for(name: str) -> st.SearchStrategy[bool | int | float]:
    ft = measurements.VOCABULARY[name].field_type
    if ft is FieldType.BOOL:
        return st.booleans()
    if ft is FieldType.INT:
        return st.integers(-(10**12), 10**12) | st.integers(-1000, 1000).map(float)
    return st.floats(-1e12, 1e12, allow_nan=False) | st.integers(-(10**9), 10**9)


values = st.dictionaries(names, st.just(0), min_size=1, max_size=6).flatmap(
    lambda d: st.fixed_dictionaries({k: value_for(k) for k in d})
)


@st.composite
def documents(draw: st.DrawFn, site: str | None = None, device: str | None = None) -> dict[str, Any]:
    """A valid telemetry document (as a dict, before JSON encoding)."""
    n = draw(st.integers(1, 4))
    seq0 = draw(st.integers(0, 10**9))
    ts0 = draw(st.integers(MIN_TS_MS, MAX_TS_MS - 10**7))
    tags = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "building": tag_text,
                "floor": tag_text,
                "category": st.sampled_from("ABCD"),
                "tenant": tag_text,
                "profile": tag_text,
                "item_code": st.sampled_from(sorted(itemcodes.known_codes())),
            },
        )
    )
    if "item_code" in tags:
        # a category must agree with the item code's level-1 item
        category = itemcodes.category_of(tags["item_code"])
        if category is None:
            tags.pop("category", None)
        elif "category" in tags:
            tags["category"] = category
    doc: dict[str, Any] = {
        "site": site or draw(ids),
        "device": device or draw(ids),
        "kind": draw(st.sampled_from(["meter", "hvac", "lighting", "sensor"])),
        "readings": [
            {"seq": seq0 + i, "ts": ts0 + 1000 * i, "values": draw(values)}
            | ({"quality": draw(st.sampled_from(["good", "partial"]))} if draw(st.booleans()) else {})
            for i in range(n)
        ],
    }
    if tags:
        doc["tags"] = tags
    if draw(st.booleans()):
        doc["v"] = 1
    return doc
