"""The reporting component's error tree; ``str()`` is ready to show to an operator."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class ReportingError(EpcwatchError):
    """Base of every error this component raises."""


class FormulaError(ReportingError):
    """A virtual meter's formula that cannot be parsed or refers to an unknown meter."""


class ImportFileError(ReportingError):
    """A non-metered consumption CSV with rows that cannot be used (each problem names file:line:field)."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}:{p}" for p in problems))


class PeriodError(ReportingError):
    """A reporting period that cannot be parsed."""
