"""Fuzzing the YAML loaders (device profiles, site config): every bad input is a ConfigError
that names the file and the field (or the YAML problem), nothing else escapes, and whatever
loads can be planned."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcwatch.config import ConfigError
from epcwatch.profiles.model import Profile, ProfileError, load_profile_file, shipped_profile_paths
from epcwatch.profiles.planner import PlanError, plan_profile

FUZZ = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)

yaml_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["input", "holding", "coil", "float32", "ABCD", "DCBA", "0x10", "-1", "meter", "hvac"])
)
yaml_values = st.recursive(
    yaml_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

Loc = tuple[str | int, ...]


def paths(doc: Any, prefix: Loc = ()) -> list[Loc]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def mutate(doc: Any, loc: Loc, op: str, value: Any) -> Any:
    if not loc:
        return value if op == "replace" else doc
    head, rest = loc[0], loc[1:]
    if isinstance(doc, dict):
        doc = dict(doc)
        if not rest and op == "delete":
            doc.pop(head, None)
        elif not rest and op == "add":
            doc[f"extra_{len(doc)}"] = value
        else:
            doc[head] = mutate(doc[head], rest, op, value)
    elif isinstance(doc, list):
        doc = list(doc)
        assert isinstance(head, int)
        if not rest and op == "delete":
            doc.pop(head)
        elif not rest and op == "add":
            doc.insert(head, value)
        else:
            doc[head] = mutate(doc[head], rest, op, value)
    return doc


def mutated(data: st.DataObject, doc: Any) -> Any:
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        loc = data.draw(st.sampled_from(paths(doc)), label="where")
        op = data.draw(st.sampled_from(["replace", "delete", "add"]), label="op")
        doc = mutate(doc, loc, op, data.draw(yaml_values, label="value"))
    return doc


#: a problem line: ``PATH:LINE: field.path: message`` or ``PATH:LINE: message`` for whole-file problems
def assert_clear(exc: ConfigError, path: Path) -> None:
    text = str(exc)
    assert exc.problems, "a ConfigError lists at least one problem"
    for line in text.splitlines():
        if not line.startswith(str(path)):
            continue  # a problem's message may span lines; its first line names the file
        rest = line[len(str(path)) :]
        assert re.match(r"^:(\d+:)? \S", rest), line
    assert text.startswith(f"{path}:"), text[:200]
    assert "Traceback" not in text


def load_or_clear_error(path: Path, text: str | bytes, loader: Callable[[Path], Any]) -> Any:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    try:
        return loader(path)
    except ConfigError as exc:
        assert_clear(exc, path)
        return None


# -- device profiles ---------------------------------------------------------------------------
PROFILES = shipped_profile_paths()


def check_profile(profile: Profile | None) -> None:
    if profile is None:
        return
    try:
        plans = plan_profile(profile)
    except PlanError as exc:
        assert str(exc)
        return
    assert plans


@pytest.mark.slow  # a long property run: the full check runs it, --fast does not
@FUZZ
@given(st.sampled_from(sorted(PROFILES)), st.data())
def test_mutated_profiles(profile_id: str, data: st.DataObject) -> None:
    doc = yaml.safe_load(PROFILES[profile_id].read_text())
    doc = mutated(data, doc)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"{profile_id}.yaml"
        check_profile(load_or_clear_error(p, yaml.safe_dump(doc, allow_unicode=True), load_profile_file))


@FUZZ
@given(st.sampled_from(sorted(PROFILES)), st.data())
def test_text_mutations_of_profiles(profile_id: str, data: st.DataObject) -> None:
    text = PROFILES[profile_id].read_bytes()
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        i = data.draw(st.integers(0, len(text)), label="at")
        cut = data.draw(st.integers(0, 20), label="cut")
        ins = data.draw(
            st.binary(max_size=6)
            | st.sampled_from([b"\t", b": ", b"- ", b"[", b"{", b"&a ", b"*a", b"\xff", b"\n  "]),
            label="insert",
        )
        text = text[:i] + ins + text[i + cut :]
    with tempfile.TemporaryDirectory() as d:
        check_profile(load_or_clear_error(Path(d) / f"{profile_id}.yaml", text, load_profile_file))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- just\n- a list\n",
        "vendor: [unclosed\n",
        "\tvendor: tab\n",
        "points: *undefined\n",
        # aliases multiplying a list (a small "billion laughs")
        "a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b]\npoints: *c\n",
        "vendor: x\nmodel: y\nkind: meter\nsource: z\npoints: []\n",
        "vendor: x\nmodel: y\nkind: toaster\nsource: z\npoints: [{name: active_power, address: 0}]\n",
        "vendor: x\nmodel: y\nkind: meter\nsource: z\npoints: [{name: watts, address: 0}]\n",
        "vendor: x\nmodel: y\nkind: meter\nsource: z\npoints: [{name: active_power, address: 70000}]\n",
    ],
)
def test_known_bad_profiles(tmp_path: Path, text: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ProfileError) as ei:
        load_profile_file(p)
    assert_clear(ei.value, p)


def test_missing_and_binary_profile_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile_file(tmp_path / "missing.yaml")
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(ProfileError) as ei:
        load_profile_file(p)
    assert_clear(ei.value, p)


# -- site config (edge) and collector config --------------------------------------------------
EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples"


def load_site_and_secret(path: Path) -> Any:
    from epcwatch.edge.site import load_site, resolve_password

    cfg = load_site(path)
    resolve_password(cfg, path)  # errors here are ConfigErrors too
    return cfg


def load_collector(path: Path) -> Any:
    from epcwatch.collector import settings

    return settings.load(path)


@pytest.mark.slow  # a long property run: the full check runs it, --fast does not
@FUZZ
@given(st.sampled_from(["site.yaml", "collector.yaml"]), st.data())
def test_mutated_site_and_collector_configs(name: str, data: st.DataObject) -> None:
    doc = mutated(data, yaml.safe_load((EXAMPLES / name).read_text()))
    loader = load_site_and_secret if name == "site.yaml" else load_collector
    with tempfile.TemporaryDirectory() as d:
        load_or_clear_error(Path(d) / name, yaml.safe_dump(doc, allow_unicode=True), loader)


@FUZZ
@given(st.sampled_from(["site.yaml", "collector.yaml"]), st.data())
def test_text_mutations_of_site_and_collector_configs(name: str, data: st.DataObject) -> None:
    text = (EXAMPLES / name).read_bytes()
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        i = data.draw(st.integers(0, len(text)), label="at")
        cut = data.draw(st.integers(0, 20), label="cut")
        ins = data.draw(
            st.binary(max_size=6) | st.sampled_from([b"\t", b": ", b"- ", b"[", b"\xff", b"\n  "])
        )
        text = text[:i] + ins + text[i + cut :]
    loader = load_site_and_secret if name == "site.yaml" else load_collector
    with tempfile.TemporaryDirectory() as d:
        load_or_clear_error(Path(d) / name, text, loader)
