"""``epcwatch security …``: per-site and per-collector MQTT credentials, a lab CA, and a lab
broker config rendered from the shipped production config.

A generated password is shown exactly once: printed alone on standard output (so
``PW=$(epcwatch security site-credentials …)`` captures it and nothing else) or written to a
0600 file with ``--secret-file``. It is registered with :func:`epcwatch.logs.redact` before
anything is logged, and no log line or error message carries it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from epcwatch import logs
from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker import credentials, lab_ca
from epcwatch.broker.config import BrokerConfigError, localise, shipped_config
from epcwatch.topics import TopicError

log = logging.getLogger("epcwatch.broker.cli")

security_app = typer.Typer(
    help="MQTT credentials per site and per collector, a lab CA, and a lab broker config.",
    no_args_is_help=True,
)

PasswdFile = Annotated[
    Path, typer.Option("--passwd-file", help="Mosquitto password file (created 0600 if missing)")
]
AclFile = Annotated[
    Path | None,
    typer.Option("--acl-file", help="Mosquitto ACL file to add or update this credential's block in"),
]
SecretFile = Annotated[
    Path | None,
    typer.Option("--secret-file", help="write the password to this file (0600) instead of standard output"),
]


def _fail(msg: str) -> typer.Exit:
    typer.secho(f"error: {msg}", fg="red", err=True)
    return typer.Exit(2)


def _hand_over(issued: credentials.Issued, secret_file: Path | None) -> None:
    logs.redact(issued.password)
    if secret_file is not None:
        try:
            credentials.write_secret_file(secret_file, issued.password)
        except (credentials.CredentialError, OSError) as exc:
            raise _fail(f"cannot write the secret file: {exc}") from None
        log.info(
            "credential issued",
            extra=logs.fields(user=issued.username, role=issued.block.role, secret_file=str(secret_file)),
        )
        typer.echo(
            f"{issued.block.role} {issued.username}: password written to {secret_file} (0600)", err=True
        )
    else:
        log.info("credential issued", extra=logs.fields(user=issued.username, role=issued.block.role))
        typer.echo(
            f"{issued.block.role} {issued.username}: password follows on standard output; "
            "it is not stored anywhere else",
            err=True,
        )
        typer.echo(issued.password)


def _issue(
    block: mqtt_acl.AclBlock, passwd_file: Path, acl_file: Path | None, secret_file: Path | None
) -> None:
    try:
        issued = credentials.issue(block, passwd_file, acl_file)
    except credentials.CredentialError as exc:
        raise _fail(str(exc)) from None
    _hand_over(issued, secret_file)
    typer.echo("reload the broker (SIGHUP, `systemctl reload mosquitto`) to apply", err=True)


@security_app.command("site-credentials")
def site_credentials(
    site: Annotated[str, typer.Argument(help="site id; it is also the MQTT username")],
    passwd_file: PasswdFile,
    acl_file: AclFile = None,
    secret_file: SecretFile = None,
) -> None:
    """Create or rotate a site's MQTT credential: it may publish only under epc/v1/SITE/."""
    try:
        block = mqtt_acl.site_block(site)
    except TopicError as exc:
        raise _fail(str(exc)) from None
    _issue(block, passwd_file, acl_file, secret_file)


@security_app.command("collector-credentials")
def collector_credentials(
    name: Annotated[str, typer.Argument(help="collector username, e.g. collector-1")],
    passwd_file: PasswdFile,
    acl_file: AclFile = None,
    group: Annotated[
        str, typer.Option(help="shared-subscription group; dead letters go to its topic")
    ] = "collectors",
    secret_file: SecretFile = None,
) -> None:
    """Create or rotate a collector's credential: read telemetry, status and health; write dead letters."""
    try:
        block = mqtt_acl.collector_block(name, group)
    except (TopicError, mqtt_acl.AclError) as exc:
        raise _fail(str(exc)) from None
    _issue(block, passwd_file, acl_file, secret_file)


@security_app.command("lab-ca")
def lab_ca_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="directory for ca.crt, server.crt/key, client-*.crt/key")
    ],
    server_name: Annotated[
        str, typer.Option(help="broker host name (SAN); localhost and 127.0.0.1 are always added")
    ] = "localhost",
    client: Annotated[
        list[str] | None, typer.Option("--client", help="also issue a client certificate (repeatable)")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="validity in days")] = lab_ca.DEFAULT_DAYS,
) -> None:
    """Create a test CA, a broker certificate and client certificates for a lab (not for production)."""
    pki = lab_ca.create(out, server_name=server_name, clients=client or [], days=days)
    typer.echo(f"CA          {pki.ca_cert}  (key {pki.ca_key}, 0600)")
    typer.echo(f"server      {pki.server_cert}  (key {pki.server_key}, 0600)")
    for name, (cert, key) in pki.clients.items():
        typer.echo(f"client {name}  {cert}  (key {key}, 0600)")


@security_app.command("broker-config")
def broker_config_cmd(  # noqa: PLR0917 - typer maps each parameter to an option
    out: Annotated[Path, typer.Option("--out", help="config file to write")],
    pki: Annotated[Path, typer.Option("--pki", help="directory written by `epcwatch security lab-ca`")],
    passwd_file: PasswdFile,
    acl_file: Annotated[Path, typer.Option("--acl-file", help="Mosquitto ACL file")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="persistence directory")],
    port: Annotated[int, typer.Option(help="TLS port on 127.0.0.1")] = 8883,
    plain_port: Annotated[
        int | None, typer.Option(help="also an authenticated non-TLS loopback listener (lab only)")
    ] = None,
) -> None:
    """Write deploy/mosquitto/epcwatch.conf localised for a lab: loopback, these paths and ports."""
    try:
        text = localise(
            shipped_config(),
            tls_port=port,
            plain_port=plain_port,
            paths={
                "cafile": pki.resolve() / "ca.crt",
                "certfile": pki.resolve() / "server.crt",
                "keyfile": pki.resolve() / "server.key",
                "password_file": passwd_file.resolve(),
                "acl_file": acl_file.resolve(),
                "persistence_location": data_dir.resolve(),
            },
        )
    except BrokerConfigError as exc:
        raise _fail(str(exc)) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    typer.echo(f"wrote {out}; start with: mosquitto -c {out}")


@security_app.command("site-key")
def site_key(
    site: Annotated[str, typer.Argument(help="site id whose readings the key signs")],
    out: Annotated[Path, typer.Option("--out", help="private key file to write (PEM, 0600)")],
    keyring: Annotated[
        Path | None,
        typer.Option(
            "--keyring", help="keyring YAML to add the public key to (the site's older keys are rotated out)"
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing key file (a rotation)")] = False,
) -> None:
    """Create a site's Ed25519 signing key; print its key id and public key (base64)."""
    import base64
    import datetime as dt

    from epcwatch.broker.signing import SigningKeyError, create_site_key, public_key_of
    from epcwatch.config import ConfigError
    from epcwatch.provenance import key_id
    from epcwatch.verify.keyring import add_key

    try:
        mqtt_acl.site_block(site)
        key = create_site_key(out, overwrite=force)
    except (TopicError, SigningKeyError) as exc:
        raise _fail(str(exc)) from None
    public = public_key_of(key)
    typer.echo(f"site {site}: key id {key_id(public)}, private key in {out} (0600)", err=True)
    typer.echo(base64.b64encode(public).decode())
    if keyring is not None:
        try:
            kid = add_key(keyring, site, public, dt.datetime.now(dt.UTC))
        except (ConfigError, OSError) as exc:
            raise _fail(f"cannot update the keyring: {exc}") from None
        typer.echo(f"added key {kid} to {keyring}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(security_app, name="security")
