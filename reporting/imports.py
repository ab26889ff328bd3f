"""Non-metered consumption imported from CSV (pure parsing and validation).

Vehicle fuel, bottled LPG, coal, purchased heat and the like reach the bureau as receipts and
ledgers, not meter readings. One CSV row per institution, period and carrier::

    institution,period,carrier,quantity,unit,source,note
    civic-admin,2025-03,gasoline,1200,L,fuel card statement 2025-03,official vehicles

``period`` is ``YYYY``, ``YYYY-Qn`` or ``YYYY-MM``; ``unit`` one the carrier converts from
(:mod:`epcwatch.reporting.factors`); ``source`` is required and stays with the row into every
report, where imported rows are listed apart from metered consumption and marked as imported.
A row counts in a report period that contains its own period (a yearly row does not enter a
monthly report: it is listed there as not apportioned).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from epcwatch.reporting.errors import ImportFileError, PeriodError, ReportingError
from epcwatch.reporting.factors import Factors, default_factors
from epcwatch.reporting.periods import Period, parse_period

COLUMNS = ("institution", "period", "carrier", "quantity", "unit", "source")


@dataclass(frozen=True, slots=True)
class ImportedRow:
    institution: str
    period: Period
    carrier: str
    quantity: float  # as given, in ``unit``
    unit: str
    quantity_base: float  # in the carrier's base unit
    source: str
    note: str
    file: str
    line: int


def parse_imports(
    text: str, path: str, institutions: set[str] | None = None, factors: Factors | None = None
) -> list[ImportedRow]:
    """Validate a whole file; raises :class:`ImportFileError` listing every bad row and field."""
    f = factors or default_factors()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ImportFileError(path, [f"1: header: missing column(s) {', '.join(missing)}"])
    problems: list[str] = []
    rows: list[ImportedRow] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for n, raw in enumerate(reader, start=2):
        r = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        bad = len(problems)

        def problem(field: str, msg: str, n: int = n) -> None:
            problems.append(f"{n}: {field}: {msg}")

        inst = r.get("institution", "")
        if not inst:
            problem("institution", "empty")
        elif institutions is not None and inst not in institutions:
            problem("institution", f"{inst!r} is not in the register")
        period: Period | None = None
        try:
            period = parse_period(r.get("period", ""))
        except PeriodError as exc:
            problem("period", str(exc))
        carrier = r.get("carrier", "")
        if carrier not in f.carriers:
            problem("carrier", f"unknown carrier {carrier!r} (known: {', '.join(f.carriers)})")
        quantity = math.nan
        try:
            quantity = float(r.get("quantity", ""))
        except ValueError:
            problem("quantity", f"not a number: {r.get('quantity', '')!r}")
        else:
            if not math.isfinite(quantity) or quantity < 0:
                problem("quantity", "must be a finite number >= 0")
        unit = r.get("unit", "")
        base = math.nan
        if carrier in f.carriers and math.isfinite(quantity):
            try:
                base = f.to_base(carrier, quantity, unit)
            except ReportingError as exc:
                problem("unit", str(exc))
        source = r.get("source", "")
        if not source:
            problem("source", "empty: every imported row names where it comes from")
        if len(problems) > bad or period is None:
            continue
        key = (inst, period.label, carrier, source)
        if key in seen:
            problem("source", f"same institution, period, carrier and source as line {seen[key]}")
            continue
        seen[key] = n
        rows.append(
            ImportedRow(inst, period, carrier, quantity, unit, base, source, r.get("note", ""), path, n)
        )
    if problems:
        raise ImportFileError(path, problems)
    return rows


def load_imports(
    path: str, institutions: set[str] | None = None, factors: Factors | None = None
) -> list[ImportedRow]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(path, [f" cannot read: {exc}"]) from None
    return parse_imports(text, path, institutions, factors)
