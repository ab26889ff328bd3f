"""``epcwatch profiles list|show|validate`` and ``epcwatch edge plan``.

``register(app, edge_app)`` adds the ``profiles`` group to the root CLI and ``plan`` to the
``edge`` group. User mistakes (unknown id, invalid file) print one clear error per problem, naming
the file, line and field, and exit 1; never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from epcwatch import measurements
from epcwatch.profiles import dlt645
from epcwatch.profiles.dlt645_profile import (
    Dlt645Profile,
    is_dlt645_profile,
    list_dlt645_profiles,
    load_dlt645_file,
    load_dlt645_profile,
)
from epcwatch.profiles.model import (
    ForbiddenRange,
    PointSpec,
    Profile,
    ProfileError,
    library_root,
    list_profiles,
    load_profile,
    load_profile_file,
)
from epcwatch.profiles.planner import PlanError, effective_max_gap, plan_profile

profiles_app = typer.Typer(help="The device profile library: list, show and validate register maps.",
                           no_args_is_help=True)

_REF_HELP = "a shipped profile id (see `epcwatch profiles list`), or a path to a profile YAML"
_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(2)


def _load(ref: str) -> Profile:
    try:
        return load_profile(ref)
    except ProfileError as exc:
        raise _fail(f"error: {exc}") from None


def _layout(p: PointSpec) -> str:
    parts = []
    if p.type == "string":
        parts.append(f"{p.length} regs")
    if p.type not in ("bool", "int16", "uint16", "string"):
        parts.append(p.order)
    if p.scale != 1.0:
        parts.append(f"×{p.scale:g}")
    if p.offset:
        parts.append(f"{p.offset:+g}")
    if p.scale_factor is not None:
        parts.append(f"×10^[{p.sf_function} {p.scale_factor.address}]")
    if p.bit is not None:
        parts.append(f"bit {p.bit}")
    if p.enum is not None:
        parts.append("enum " + ",".join(f"{k}→{v}" for k, v in p.enum.items()))
    if p.no_value:
        parts.append("none=" + "|".join(str(s) for s in p.no_value))
    return "  ".join(parts)


@profiles_app.command("list")
def list_cmd() -> None:
    """List the shipped profiles (id, kind, vendor, model, number of points)."""
    try:
        profiles = list_profiles()
    except ProfileError as exc:
        raise _fail(f"error: a shipped profile is invalid: {exc}") from None
    table = Table("id", "kind", "vendor", "model", "points", title=f"{len(profiles)} device profiles")
    for p in profiles:
        table.add_row(p.id, p.kind, p.vendor, p.model, str(len(p.points)))
    _out().print(table)
    try:
        dlt = list_dlt645_profiles()
    except ProfileError as exc:
        raise _fail(f"error: a shipped profile is invalid: {exc}") from None
    table = Table("id", "kind", "vendor", "model", "edition", "points", title=f"{len(dlt)} DL/T 645 profiles")
    for d in dlt:
        table.add_row(d.id, d.kind, d.vendor, d.model, d.version, str(len(d.points)))
    _out().print(table)


@profiles_app.command("show")
def show_cmd(profile: Annotated[str, typer.Argument(help=_REF_HELP)]) -> None:
    """Show a profile: its device, quirks, poll groups and every point with its register layout
    (DL/T 645: its data identifier and BCD format)."""
    if is_dlt645_profile(profile):
        try:
            _show_dlt645(load_dlt645_profile(profile))
        except ProfileError as exc:
            raise _fail(f"error: {exc}") from None
        return
    p = _load(profile)
    out = _out()
    out.print(f"[bold]{p.id}[/bold]  {p.vendor} {p.model}  (kind {p.kind})")
    out.print(f"source: {p.source}")
    if p.description:
        out.print(p.description)
    q = p.quirks
    out.print(
        f"quirks: max {q.max_registers_per_read} registers / {q.max_bits_per_read} bits per read, "
        f"max gap {effective_max_gap(p)}"
        + "".join(f"; never read {_forbidden(r)}" for r in q.forbidden)
    )
    out.print("poll groups: " + ", ".join(f"{g} every {pg.interval:g} s" for g, pg in p.poll_groups.items()))
    table = Table("point", "unit", "function", "address", "type", "layout", "group")
    for pt in (*p.points, *p.identity):
        m = measurements.VOCABULARY.get(pt.name)
        unit = m.unit if m is not None and pt.group != "identity" else "-"
        table.add_row(
            pt.name, unit, f"{pt.function} (FC{_FC[pt.function]})", f"{pt.address} (0x{pt.address:04X})",
            pt.type, _layout(pt), pt.group,
        )
    out.print(table)


def _show_dlt645(p: Dlt645Profile) -> None:
    out = _out()
    out.print(f"[bold]{p.id}[/bold]  {p.vendor} {p.model}  (kind {p.kind}, DL/T 645-{p.version})")
    out.print(f"source: {p.source}")
    if p.description:
        out.print(p.description)
    out.print("poll groups: " + ", ".join(f"{g} every {pg.interval:g} s" for g, pg in p.poll_groups.items()))
    table = Table("point", "unit", "DI", "format", "bytes", "scale", "group", "description")
    for pt in p.points:
        m = measurements.VOCABULARY[pt.name]
        fmt = pt.format + (" ±" if pt.signed else "")
        scale = "" if pt.scale == 1.0 else f"×{pt.scale:g}"
        table.add_row(
            pt.name, m.unit, dlt645.di_text(pt.di, p.version), fmt, str(pt.bcd.size), scale, pt.group,
            pt.description or "",
        )
    out.print(table)


def _forbidden(r: ForbiddenRange) -> str:
    return f"{r.function} {r.first}..{r.last}"


@profiles_app.command("validate")
def validate_cmd(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="profile YAML files or folders holding them [default: the shipped library]"),
    ] = None,
) -> None:
    """Validate profile files: schema, vocabulary, quirks and a read plan. Exit 1 if any is invalid."""
    files: list[Path] = []
    for path in paths or [library_root()]:
        if path.is_dir():
            files += sorted(path.rglob("*.yaml"))
        else:
            files.append(path)
    if not files:
        raise _fail("error: no profile files given")
    bad = 0
    for f in files:
        try:
            if is_dlt645_profile(f):
                dprof = load_dlt645_file(f)
                typer.echo(f"ok  {f}  ({len(dprof.points)} points, {len(dprof.points)} reads, DL/T 645)")
                continue
            prof = load_profile_file(f)
            plans = plan_profile(prof)
        except ProfileError as exc:
            bad += 1
            typer.secho(str(exc), fg="red", err=True)
            continue
        except PlanError as exc:
            bad += 1
            typer.secho(f"{f}: cannot plan reads: {exc}", fg="red", err=True)
            continue
        reads = sum(len(pl.reads) for pl in plans)
        typer.echo(f"ok  {f}  ({len(prof.points)} points, {reads} reads)")
    if bad:
        raise _fail(f"{bad} of {len(files)} profiles invalid")


def plan_cmd(
    profile: Annotated[str, typer.Option("--profile", help=_REF_HELP)],
    max_gap: Annotated[
        int | None,
        typer.Option(
            "--max-gap", min=0, help="registers a read may bridge [default: the profile's, else 16]"
        ),
    ] = None,
) -> None:
    """Print the reads the edge agent would issue for a profile, per poll group."""
    if is_dlt645_profile(profile):
        try:
            _plan_dlt645(load_dlt645_profile(profile))
        except ProfileError as exc:
            raise _fail(f"error: {exc}") from None
        return
    p = _load(profile)
    try:
        plans = plan_profile(p, max_gap)
    except PlanError as exc:
        raise _fail(f"error: {p.id}: {exc}") from None
    out = _out()
    out.print(f"{p.id}: max gap {effective_max_gap(p, max_gap)}, max {p.quirks.max_registers_per_read} "
              f"registers / {p.quirks.max_bits_per_read} bits per read")
    for plan in plans:
        when = f"every {plan.interval:g} s" if plan.interval is not None else "once at start-up"
        title = f"group {plan.group} ({when}): {len(plan.reads)} reads, {plan.registers} registers"
        table = Table("FC", "function", "addresses", "count", "points", title=title)
        for r in plan.reads:
            last = r.end - 1
            table.add_row(
                str(_FC[r.function]), r.function,
                f"{r.address}..{last} (0x{r.address:04X}..0x{last:04X})", str(r.count), ", ".join(r.points),
            )
        out.print(table)


def _plan_dlt645(p: Dlt645Profile) -> None:
    """One read request per data identifier (DL/T 645 has no register ranges to merge)."""
    out = _out()
    control = dlt645.READ_DATA[p.version]
    out.print(f"{p.id}: DL/T 645-{p.version}, control code {control:02X}, one request per data identifier")
    for group, pg in p.poll_groups.items():
        pts = [pt for pt in p.points if pt.group == group]
        if not pts:
            continue
        title = f"group {group} (every {pg.interval:g} s): {len(pts)} reads"
        table = Table("DI", "bytes", "point", title=title)
        for pt in pts:
            table.add_row(dlt645.di_text(pt.di, p.version), str(pt.bcd.size), pt.name)
        out.print(table)


def register(app: typer.Typer, edge_app: typer.Typer) -> None:
    app.add_typer(profiles_app, name="profiles")
    edge_app.command("plan")(plan_cmd)
