"""Virtual meters: a meter defined by a formula over other meters (pure).

The grammar is arithmetic over meter references in square brackets, numbers and parentheses::

    [b1-main] - [b1-t-a] - [b1-t-b]              # a building's common area
    [plant-chiller] * 1200 / 2000                # a shared plant split by floor area
    [plant-chiller] * [ahu-a] / ([ahu-a] + [ahu-b])   # ... or by a sub-meter ratio

A formula is evaluated interval by interval. Division by zero yields 0 (a ratio of no
consumption shares nothing). The formula text is stored with the meter's figures so that every
table showing them can show how they were made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from epcwatch.reporting.errors import FormulaError

_TOKEN = re.compile(r"\s*(?:(\[[a-z0-9][a-z0-9_.-]*\])|(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|([-+*/()]))")

Node = Callable[[Mapping[str, float]], float]


@dataclass(frozen=True)
class Formula:
    text: str
    refs: tuple[str, ...]
    _eval: Node

    def __call__(self, values: Mapping[str, float]) -> float:
        """The formula's value given each referenced meter's value (missing meters raise KeyError)."""
        return self._eval(values)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FormulaError(
                f"formula {text!r}: cannot read {text[pos:].strip()[:20]!r} at column {pos + 1}"
            )
        out.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()
    return out


def parse_formula(text: str) -> Formula:
    toks = _tokens(text)
    refs: list[str] = []
    i = 0

    def peek() -> str | None:
        return toks[i] if i < len(toks) else None

    def take() -> str:
        nonlocal i
        if i >= len(toks):
            raise FormulaError(f"formula {text!r}: ends too early")
        i += 1
        return toks[i - 1]

    def expr() -> Node:
        node = term()
        while peek() in ("+", "-"):
            op = take()
            rhs = term()
            node = _bin(op, node, rhs)
        return node

    def term() -> Node:
        node = factor()
        while peek() in ("*", "/"):
            op = take()
            rhs = factor()
            node = _bin(op, node, rhs)
        return node

    def factor() -> Node:
        t = take()
        if t == "-":
            inner = factor()
            return lambda v: -inner(v)
        if t == "(":
            node = expr()
            if take() != ")":
                raise FormulaError(f"formula {text!r}: missing ')'")
            return node
        if t.startswith("["):
            name = t[1:-1]
            refs.append(name)
            return lambda v: v[name]
        if t[0].isdigit():
            c = float(t)
            return lambda v: c
        raise FormulaError(f"formula {text!r}: unexpected {t!r}")

    if not toks:
        raise FormulaError("formula is empty")
    root = expr()
    if i != len(toks):
        raise FormulaError(f"formula {text!r}: unexpected {toks[i]!r}")
    if not refs:
        raise FormulaError(f"formula {text!r}: refers to no meter")
    return Formula(text.strip(), tuple(dict.fromkeys(refs)), root)


def _bin(op: str, a: Node, b: Node) -> Node:
    if op == "+":
        return lambda v: a(v) + b(v)
    if op == "-":
        return lambda v: a(v) - b(v)
    if op == "*":
        return lambda v: a(v) * b(v)

    def div(v: Mapping[str, float]) -> float:
        d = b(v)
        return 0.0 if d == 0 else a(v) / d

    return div


def by_floor_area(source: str, share_m2: float, total_m2: float) -> str:
    """The formula of ``source``'s share by floor area."""
    return f"[{source}] * {share_m2:g} / {total_m2:g}"


def by_meter_ratio(source: str, meter: str, among: list[str]) -> str:
    """The formula of ``source``'s share in proportion to ``meter`` among sibling sub-meters."""
    return f"[{source}] * [{meter}] / ({' + '.join(f'[{m}]' for m in among)})"


def evaluation_order(formulas: Mapping[str, Formula], physical: set[str]) -> list[str]:
    """Virtual meters in an order where each comes after the virtual meters it uses.

    Raises :class:`FormulaError` for a reference to an unknown meter or a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise FormulaError(f"virtual meters refer to each other in a cycle: {' -> '.join((*path, name))}")
        state[name] = 1
        for r in formulas[name].refs:
            if r in formulas:
                visit(r, (*path, name))
            elif r not in physical:
                raise FormulaError(f"virtual meter {name}: formula refers to unknown meter {r!r}")
        state[name] = 2
        order.append(name)

    for n in formulas:
        visit(n, ())
    return order


def evaluate_series(
    formulas: Mapping[str, Formula],
    order: list[str],
    series: Mapping[str, Mapping[int, tuple[float, float]]],
) -> dict[str, dict[int, tuple[float, float]]]:
    """Every virtual meter's ``{interval start: (value, coverage)}`` from its inputs' series.

    An interval is computed where every input has a value; its coverage is the inputs' minimum
    (a virtual meter is only as complete as the least complete meter it uses)."""
    known: dict[str, Mapping[int, tuple[float, float]]] = dict(series)
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for name in order:
        f = formulas[name]
        inputs = [known.get(r, {}) for r in f.refs]
        starts = set(inputs[0]).intersection(*inputs[1:]) if inputs else set()
        result: dict[int, tuple[float, float]] = {}
        for t in sorted(starts):
            vals = {r: inp[t][0] for r, inp in zip(f.refs, inputs, strict=True)}
            cov = min(inp[t][1] for inp in inputs)
            result[t] = (f(vals), cov)
        out[name] = result
        known[name] = result
    return out
