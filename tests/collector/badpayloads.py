"""Hypothesis strategies for payloads the contract must refuse, each with the reason expected.

Every strategy here produces something definitely invalid (no value pydantic could coerce into
a valid one), so a test can demand a dead letter for each.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import strategies as st

from epcwatch import itemcodes
from tests.collector.strategies import documents

SITE, DEVICE = "s1", "bad1"
TOPIC = f"epc/v1/{SITE}/{DEVICE}/telemetry"
MAX_BYTES = 4096

#: values no lax conversion turns into a number, bool or id
not_a_number = st.one_of(
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(alphabet="xyz!? ", min_size=1, max_size=8),
    st.none(),
)


def _encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@st.composite
def wrong_types(draw: st.DrawFn) -> bytes:
    d = draw(documents(site=SITE, device=DEVICE))
    r = d["readings"][0]
    target = draw(st.sampled_from(["seq", "ts", "value", "bool", "kind", "readings", "tags", "values"]))
    if target in ("seq", "ts"):
        r[target] = draw(not_a_number | st.floats(0.5, 1e6).filter(lambda f: not f.is_integer()))
    elif target == "value":
        r["values"]["active_power"] = draw(not_a_number | st.booleans())
    elif target == "bool":
        r["values"]["run_status"] = draw(not_a_number | st.floats(2, 100) | st.integers(2, 100))
    elif target == "kind":
        d["kind"] = draw(not_a_number | st.sampled_from(["Meter", "toaster", ""]))
    elif target == "readings":
        d["readings"] = draw(
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2) | st.text(max_size=5)
        )
    elif target == "tags":
        d["tags"] = {"category": draw(st.sampled_from(["E", "a", "", "AB"]) | st.integers())}
    else:
        r["values"] = draw(st.just({}) | st.lists(st.integers(), max_size=2))
    return _encode(d)


@st.composite
def missing_fields(draw: st.DrawFn) -> bytes:
    d = draw(documents(site=SITE, device=DEVICE))
    if draw(st.booleans()):
        del d[draw(st.sampled_from(["site", "device", "kind", "readings"]))]
    else:
        del d["readings"][0][draw(st.sampled_from(["seq", "ts", "values"]))]
    return _encode(d)


@st.composite
def huge_values(draw: st.DrawFn) -> bytes:
    d = draw(documents(site=SITE, device=DEVICE))
    r = d["readings"][-1]
    sign = draw(st.sampled_from([1, -1]))
    target = draw(st.sampled_from(["value", "seq", "ts", "token"]))
    if target == "value":
        r["values"]["energy_import"] = sign * draw(st.floats(1.01e15, 1e300) | st.integers(10**16, 10**30))
    elif target == "seq":
        r["seq"] = draw(st.integers(2**63, 2**80))
    elif target == "ts":
        r["ts"] = draw(st.integers(4_102_444_800_000, 10**17) | st.integers(-(10**15), 946_684_799_999))
    else:
        # tokens JSON does not allow (Python's encoder writes them for inf and nan)
        r["values"]["active_power"] = draw(st.sampled_from([float("inf"), float("-inf"), float("nan")]))
    return _encode(d)


@st.composite
def wrong_site(draw: st.DrawFn) -> bytes:
    d = draw(documents(site=SITE, device=DEVICE))
    if draw(st.booleans()):
        d["site"] = draw(st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,10}\Z").filter(lambda s: s != SITE))
    else:
        d["device"] = draw(st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,10}\Z").filter(lambda s: s != DEVICE))
    return orjson.dumps(d)


@st.composite
def non_utf8(draw: st.DrawFn) -> bytes:
    d = orjson.dumps(draw(documents(site=SITE, device=DEVICE)))
    cut = draw(st.integers(0, len(d)))
    junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80"]))
    return d[:cut] + junk + d[cut:]


@st.composite
def oversized(draw: st.DrawFn) -> bytes:
    d = draw(documents(site=SITE, device=DEVICE))
    d["tags"] = {"building": "b"}
    pad = draw(st.integers(MAX_BYTES + 1, 3 * MAX_BYTES))
    payload = orjson.dumps(d)
    return payload + b" " * max(0, pad - len(payload))  # trailing whitespace: valid JSON, too big


@st.composite
def not_json(draw: st.DrawFn) -> bytes:
    return (
        draw(st.sampled_from([b"", b"{", b"[1,", b"nul", b"{'a': 1}"]))
        + draw(st.text(alphabet="abc{}[]", max_size=10)).encode()
    )


@st.composite
def unknown_item_code(draw: st.DrawFn) -> bytes:
    """A valid document whose well-formed item code is not in the national table."""
    d = draw(documents(site=SITE, device=DEVICE))
    code = draw(st.from_regex(r"\A[0-9]{2}[0-9A-Z][0-9]{2}\Z").filter(lambda c: not itemcodes.is_known(c)))
    d["tags"] = {**d.get("tags", {}), "item_code": code}
    d["tags"].pop("category", None)
    return orjson.dumps(d)


#: (strategy, reasons it may be rejected with)
BAD: dict[str, tuple[st.SearchStrategy[bytes], frozenset[str]]] = {
    "wrong_types": (wrong_types(), frozenset({"schema"})),
    "missing_fields": (missing_fields(), frozenset({"schema"})),
    "huge_values": (huge_values(), frozenset({"schema", "invalid_json"})),
    "wrong_site": (wrong_site(), frozenset({"topic_mismatch"})),
    "non_utf8": (non_utf8(), frozenset({"not_utf8"})),
    "oversized": (oversized(), frozenset({"oversized"})),
    "not_json": (not_json(), frozenset({"invalid_json", "schema"})),
    "unknown_item_code": (unknown_item_code(), frozenset({"item_code"})),
}
bad_payloads = st.sampled_from(sorted(BAD)).flatmap(lambda k: st.tuples(st.just(k), BAD[k][0]))
