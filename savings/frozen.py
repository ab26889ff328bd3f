"""Frozen baselines: the baseline signed off once, reloaded for every later report.

At sign-off, :func:`freeze` stores the baseline rows the model was fitted on (dates, energy,
temperature, day type), the SHA-256 of the input file and of those rows, the software version,
the settings (calendar, timezone, temperature unit) and the fitted model, in one JSON document
whose own SHA-256 (over everything else) is its identity. A later report loads the document
instead of refitting: it states that it did and gives the hash. If the data file a later report
reads still covers the baseline period, its rows are compared with the stored ones and every
difference is listed with its date and size — a meter re-read, a back-filled gap or an edited
CSV cannot silently move the baseline.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from epcwatch.savings.errors import DataError
from epcwatch.savings.models import FittedModel, ModelError

SCHEMA = "epcwatch.savings.frozen_baseline/1"
KEYS = {"daily": "date", "hourly": "timestamp", "monthly": "timestamp"}
#: stored and current values differing by more than this (relative, and 1e-9 absolute) differ
TOLERANCE = 1e-9


def _num(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def _canonical(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FrozenBaseline:
    kind: str
    baseline: str
    columns: list[str]
    data: list[list[Any]]
    model: FittedModel
    settings: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    software_version: str = ""
    input_sha256: str = ""
    statistics: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "kind": self.kind,
            "baseline": self.baseline,
            "settings": self.settings,
            "created": self.created,
            "software_version": self.software_version,
            "input_sha256": self.input_sha256,
            "data_sha256": hashlib.sha256(
                _canonical({"c": self.columns, "d": self.data}).encode()
            ).hexdigest(),
            "columns": self.columns,
            "data": self.data,
            "model": self.model.to_dict(),
            "statistics": self.statistics,
        }

    @property
    def hash(self) -> str:
        return hashlib.sha256(_canonical(self.body()).encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps({**self.body(), "sha256": self.hash}, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> FrozenBaseline:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"frozen baseline is not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise DataError("not an epcwatch frozen baseline (schema epcwatch.savings.frozen_baseline/1)")
        try:
            fb = cls(
                kind=str(doc["kind"]),
                baseline=str(doc["baseline"]),
                columns=[str(c) for c in doc["columns"]],
                data=list(doc["data"]),
                model=FittedModel.from_dict(doc["model"]),
                settings=dict(doc.get("settings", {})),
                created=str(doc.get("created", "")),
                software_version=str(doc.get("software_version", "")),
                input_sha256=str(doc.get("input_sha256", "")),
                statistics=dict(doc.get("statistics", {})),
            )
        except (KeyError, TypeError, ValueError, ModelError) as exc:
            raise DataError(f"frozen baseline is incomplete ({exc})") from None
        if fb.hash != doc.get("sha256"):
            raise DataError(
                f"frozen baseline was altered after it was frozen (stored sha256 {doc.get('sha256')}, "
                f"content hashes to {fb.hash})"
            )
        return fb

    def rows(self) -> pd.DataFrame:
        """The stored baseline rows as the frame they were fitted from."""
        df = pd.DataFrame(self.data, columns=self.columns)
        key = KEYS[self.kind]
        df[key] = pd.to_datetime(df[key])
        for c in self.columns:
            if c != key:
                df[c] = pd.to_numeric(df[c]).astype(float)
        return df

    def describe(self, current: pd.DataFrame | None) -> dict[str, Any]:
        """What a report says about the frozen baseline, with changes in the current data."""
        out: dict[str, Any] = {
            "loaded": True,
            "sha256": self.hash,
            "created": self.created,
            "software_version": self.software_version,
            "input_sha256": self.input_sha256,
            "baseline": self.baseline,
            "model": self.model.type,
            "statement": (
                f"The baseline model was not refitted: it was loaded from the frozen baseline "
                f"{self.hash[:12]}… (frozen {self.created} with epcwatch {self.software_version})."
            ),
        }
        out["data_changes"] = compare(self.rows(), current, KEYS[self.kind]) if current is not None else None
        return out


def frame_data(kind: str, rows: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    key = KEYS[kind]
    rest = [c for c in rows.columns if c not in (key, "energy", "temperature")]
    cols = [key, "energy", "temperature", *rest]  # day type and named variables too
    fmt = "%Y-%m-%d" if kind == "daily" else "%Y-%m-%dT%H:%M:%S"
    data = []
    stamps = pd.to_datetime(rows[key]).dt.strftime(fmt).tolist()
    vals = {c: rows[c].to_numpy(dtype=float) for c in cols[1:]}
    for i, ts in enumerate(stamps):
        data.append([ts, *(_num(vals[c][i]) for c in cols[1:])])
    return cols, data


def freeze(
    kind: str,
    rows: pd.DataFrame,
    model: FittedModel,
    *,
    baseline: str,
    settings: dict[str, Any],
    created: str,
    software_version: str,
    input_sha256: str,
    statistics: dict[str, Any],
) -> FrozenBaseline:
    cols, data = frame_data(kind, rows)
    return FrozenBaseline(
        kind=kind,
        baseline=baseline,
        columns=cols,
        data=data,
        model=model,
        settings=settings,
        created=created,
        software_version=software_version,
        input_sha256=input_sha256,
        statistics=statistics,
    )


def compare(stored: pd.DataFrame, current: pd.DataFrame, key: str, limit: int = 50) -> dict[str, Any]:
    """Differences between the stored baseline rows and the current data's rows."""
    a = stored.set_index(pd.to_datetime(stored[key]))
    b = current.set_index(pd.to_datetime(current[key]))
    idx = a.index.union(b.index)
    a, b = a.reindex(idx), b.reindex(idx)
    changes: list[dict[str, Any]] = []
    total = 0
    energy_diff = 0.0
    for col in ("energy", "temperature"):
        x, y = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
        both = np.isfinite(x) & np.isfinite(y)
        differs = (np.isfinite(x) != np.isfinite(y)) | (
            both & (np.abs(x - y) > TOLERANCE * np.maximum(1.0, np.abs(np.where(both, x, 0.0))))
        )
        total += int(differs.sum())
        if col == "energy":
            energy_diff = float(np.nansum(np.where(both, y - x, 0.0)))
        for i in np.flatnonzero(differs):
            if len(changes) < limit:
                changes.append(
                    {
                        "period": pd.Timestamp(idx[int(i)]).isoformat(),
                        "field": col,
                        "stored": _num(x[i]),
                        "current": _num(y[i]),
                        "difference": _num(y[i] - x[i]) if both[i] else None,
                    }
                )
    return {
        "changed": total > 0,
        "count": total,
        "energy_difference_total": energy_diff,
        "changes": changes,
    }
