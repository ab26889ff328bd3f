"""``epcwatch verify``: recompute a site's (or a contract's) reading chains and signatures from
what InfluxDB holds, with only a keyring (docs/provenance.md). Exits 1 when anything fails."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from epcwatch.errors import EpcwatchError

if TYPE_CHECKING:  # the audit (cryptography) loads when the command runs: --help stays fast
    from epcwatch.verify.audit import DeviceReport


def _ms(text: str) -> int:
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def report_doc(
    reports: list[DeviceReport],
    times: dict[tuple[str, str], dict[int, int]],
    unsigned_rows: dict[tuple[str, str], int],
) -> dict[str, Any]:
    """The JSON report: per device the counts and exactly which seqs (and times) failed."""
    devices = []
    total: dict[str, int] = {}
    for rep in reports:
        ts = times.get((rep.site, rep.device), {})
        counts = rep.counts()
        counts["unsigned"] += unsigned_rows.get((rep.site, rep.device), 0)
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        devices.append(
            {
                "site": rep.site,
                "device": rep.device,
                "ok": rep.ok,
                "counts": counts,
                "altered": [{"seq": s, "time": _iso(ts[s])} for s in rep.altered],
                "missing": [{"first_seq": a, "last_seq": b} for a, b in rep.missing],
                "invalid": [
                    {"seq": s, "time": _iso(ts[s]), "reason": r} for s, r in sorted(rep.invalid.items())
                ],
                "replayed": [{"first_seq": a, "last_seq": b} for a, b in rep.replayed],
            }
        )
    return {"ok": all(d["ok"] for d in devices), "total": total, "devices": devices}


def render_text(doc: dict[str, Any]) -> str:
    lines = []
    order = ("verified", "altered", "missing", "unsigned", "invalid", "replayed")
    for d in doc["devices"]:
        c = d["counts"]
        mark = "ok" if d["ok"] else "FAIL"
        lines.append(f"{d['site']}/{d['device']}: {mark}  " + "  ".join(f"{k} {c[k]}" for k in order))
        lines += [f"  altered after storage: seq {a['seq']} at {a['time']}" for a in d["altered"]]
        lines += [f"  missing: seq {m['first_seq']}..{m['last_seq']}" for m in d["missing"]]
        lines += [f"  invalid: seq {i['seq']} at {i['time']}: {i['reason']}" for i in d["invalid"]]
        lines += [f"  replayed: message seq {r['first_seq']}..{r['last_seq']}" for r in d["replayed"]]
    t = doc["total"]
    lines.append(
        "total: " + ("ok" if doc["ok"] else "FAIL") + "  " + "  ".join(f"{k} {t.get(k, 0)}" for k in order)
    )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_cmd(  # noqa: PLR0917 - typer options
        keyring: Annotated[Path, typer.Option("--keyring", help="keyring YAML of trusted site keys")],
        start: Annotated[str, typer.Option("--from", help="period start, ISO 8601 (UTC if no offset)")],
        end: Annotated[str, typer.Option("--to", help="period end (exclusive), ISO 8601")],
        site: Annotated[list[str] | None, typer.Option("--site", help="site id (repeatable)")] = None,
        contract: Annotated[
            Path | None, typer.Option("--contract", help="a contract YAML: verify its sites")
        ] = None,
        influx_url: Annotated[
            str | None,
            typer.Option(
                "--influx-url", envvar="EPCWATCH_INFLUX_URL", help="InfluxDB base URL", show_default=False
            ),
        ] = None,
        database: Annotated[
            str, typer.Option("--database", envvar="EPCWATCH_INFLUX_DATABASE", help="InfluxDB database")
        ] = "epcwatch",
        influx_user: Annotated[
            str | None, typer.Option("--influx-user", envvar="EPCWATCH_INFLUX_USER")
        ] = None,
        influx_password: Annotated[
            str | None,
            typer.Option("--influx-password", envvar="EPCWATCH_INFLUX_PASSWORD", show_default=False),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    ) -> None:
        """Check that the stored readings of a period are the ones the sites signed: report
        verified, altered, missing, unsigned, invalid and replayed readings per device."""
        from epcwatch import logs
        from epcwatch.influx import InfluxClient
        from epcwatch.local import load_ports
        from epcwatch.verify.audit import audit_device
        from epcwatch.verify.keyring import load_keyring
        from epcwatch.verify.stored import device_data

        try:
            sites = list(site or [])
            if contract is not None:
                sites += _contract_sites(contract)
            if not sites:
                raise typer.BadParameter("give --site or --contract")
            logs.redact(influx_password)
            url = influx_url or load_ports().influx_url
            client = InfluxClient(url, database, influx_user, influx_password)
            ring = load_keyring(keyring)
            start_ms, end_ms = _ms(start), _ms(end)
            reports, times, unsigned = [], {}, {}
            for s in dict.fromkeys(sites):
                for device, data in device_data(client, s, start_ms, end_ms):
                    rep = audit_device(s, device, data.readings, data.records, ring)
                    reports.append(rep)
                    # the times of the seqs the report names (not of every reading)
                    named = {*rep.altered, *rep.invalid}
                    times[(s, device)] = {r.seq: r.ts for r in data.readings if r.seq in named}
                    unsigned[(s, device)] = data.unsigned
        except (EpcwatchError, ValueError) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        doc = report_doc(reports, times, unsigned)
        typer.echo(json.dumps(doc, indent=2) if as_json else render_text(doc))
        if not doc["ok"]:
            raise typer.Exit(1)


def _contract_sites(path: Path) -> list[str]:
    """The sites a contract's meters belong to (``site`` keys anywhere in the contract YAML)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    found: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "site" and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    if not found:
        raise ValueError(f"{path}: the contract names no site")
    return found
