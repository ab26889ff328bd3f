"""YAML configuration loading with errors that name the file, the line and the field.

Every config file (site, collector, contract, profile) is a pydantic model loaded through
:func:`load_yaml_model`. Validation errors are mapped back onto the YAML node they came
from, so an operator reads ``site.yaml:14: devices[2].unit: Input should be less than or
equal to 247`` instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from epcwatch.errors import EpcwatchError

M = TypeVar("M", bound=BaseModel)


class ConfigError(EpcwatchError):
    """A configuration file that cannot be used; ``str()`` is ready to show to an operator."""

    def __init__(self, path: str | os.PathLike[str], problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}:{p}" for p in problems))


def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                    nxt = v
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                # not a key: a discriminated union's tag in the loc (``buses[0].rtu.baud``)
                # or a missing field; stay on this node and keep following the path
                continue
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # a key with control characters or blanks is shown quoted, so the message stays on one line
            text = part if part.isprintable() and part.strip() == part and part else repr(part)
            out += f".{text}" if out else text
    return out or "(top level)"


def validation_problems(err: ValidationError, root: yaml.Node | None) -> list[str]:
    problems = []
    for e in err.errors(include_url=False, include_input=False):
        # pydantic appends union member / validator names to loc; keep the data path only
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        line = _node_line(root, loc)
        where = f"{line}:" if line is not None else ""
        problems.append(f"{where} {format_loc(loc)}: {e['msg']}")
    return problems


def parse_yaml(text: str, path: str | os.PathLike[str]) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text; returns the data and the node tree (for line numbers)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [f"{where} invalid YAML: {problem}"]) from None
    return data, root


def load_yaml_model(
    path: str | os.PathLike[str], model: type[M], *, context: dict[str, Any] | None = None
) -> M:
    """Read ``path`` and validate it as ``model``; raises :class:`ConfigError`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(path, [f" cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f" not UTF-8 text (byte {exc.start})"]) from None
    return validate_yaml_text(text, path, model, context=context)


def validate_yaml_text(
    text: str, path: str | os.PathLike[str], model: type[M], *, context: dict[str, Any] | None = None
) -> M:
    data, root = parse_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["1: top level must be a mapping"])
    try:
        return model.model_validate(data, context=context)
    except ValidationError as err:
        raise ConfigError(path, validation_problems(err, root)) from None


def read_secret(*, value: str | None = None, env: str | None = None, file: str | None = None) -> str | None:
    """Resolve a secret from an inline value, an environment variable or a file (first set wins).

    Secrets never appear in error messages: a missing variable or file is named, its
    content is not.
    """
    if value is not None:
        return value
    if env is not None:
        if env not in os.environ:
            raise ValueError(f"environment variable {env} is not set")
        return os.environ[env]
    if file is not None:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {file}: {exc.strerror or exc}") from None
    return None
