"""Mosquitto ACL entries for epcwatch's two roles: sites (publishers) and collectors (readers).

Each credential gets an explicit ``user`` block rather than a ``pattern %u`` rule, because a
``pattern`` applies to every user, collectors included: a collector named ``collector-a``
would be allowed to publish telemetry for a "site" called ``collector-a``. With explicit
blocks a username has exactly the rights written under it and nothing else.

- site ``S``: write ``epc/v1/S/+/telemetry``, ``epc/v1/S/status`` (birth and last will) and
  ``epc/v1/S/health``; read only its own acknowledgements, ``epc/v1/S/ack``.
- collector of group ``G``: read telemetry, status and health of every site, write the
  end-to-end acknowledgements of every site (``epc/v1/+/ack``) and dead letters on
  ``epc/deadletter/v1/G``. Mosquitto 2.0 checks a ``$share/G/…`` subscription against the
  topic filter without the ``$share/G/`` prefix, so one ``read`` line covers both forms.

The functions here are pure text transformations: an ACL file is a sequence of blocks, one
per credential, each introduced by a marker comment so that re-issuing a credential replaces
its block instead of appending a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from epcwatch import topics
from epcwatch.broker.errors import BrokerError

Role = Literal["site", "collector"]

MARKER: Final = "# epcwatch"
_MARKER_RE: Final = re.compile(r"^# epcwatch (site|collector) (\S+)(?: group (\S+))?\s*$")
#: mosquitto usernames end up in ACL lines; keep them to the id alphabet (no spaces, ``+``, ``#``, ``/``)
USERNAME_RE: Final = topics.ID_RE


class AclError(BrokerError, ValueError):
    """An ACL file or credential name that epcwatch cannot manage."""


@dataclass(frozen=True, slots=True)
class AclBlock:
    """One credential's rights."""

    role: Role
    username: str
    group: str | None = None

    def lines(self) -> list[str]:
        if self.role == "site":
            s = self.username
            return [
                f"{MARKER} site {s}",
                f"user {s}",
                f"topic write {topics.PREFIX}/{s}/+/telemetry",
                f"topic write {topics.status(s)}",
                f"topic write {topics.health(s)}",
                f"topic read {topics.ack(s)}",
            ]
        group = self.group or "collectors"
        return [
            f"{MARKER} collector {self.username} group {group}",
            f"user {self.username}",
            f"topic read {topics.TELEMETRY_FILTER}",
            f"topic read {topics.PREFIX}/+/status",
            f"topic read {topics.PREFIX}/+/health",
            f"topic write {topics.ACK_FILTER}",
            f"topic write {topics.dead_letter(group)}",
        ]

    def legacy_lines(self) -> list[str]:
        """What earlier releases wrote for this credential (before end-to-end acks): still
        accepted when reading an ACL file, and replaced by :meth:`lines` when it is rewritten."""
        return [line for line in self.lines() if not line.endswith("/ack")]


def site_block(site: str) -> AclBlock:
    """The ACL block of a site credential; the username is the site id."""
    return AclBlock("site", topics.check_id(site, "site"))


def collector_block(name: str, group: str = "collectors") -> AclBlock:
    """The ACL block of a collector credential reading through shared-subscription group ``group``."""
    return AclBlock("collector", check_username(name), topics.check_id(group, "group"))


def check_username(name: str) -> str:
    try:
        return topics.check_id(name, "username")
    except topics.TopicError as exc:
        raise AclError(str(exc)) from None


def parse(text: str) -> tuple[list[str], list[AclBlock]]:
    """Split an ACL file into its unmanaged preamble and epcwatch's blocks.

    Everything before the first marker is kept verbatim (an operator's own comments and
    rules); after it, only marked blocks are allowed, so a hand edit inside the managed part
    is reported instead of being silently rewritten.
    """
    preamble: list[str] = []
    blocks: list[AclBlock] = []
    current: AclBlock | None = None
    got: list[tuple[int, str]] = []

    def close() -> None:
        if current is None:
            return
        lines = [line for _, line in got]
        if lines in (current.lines()[1:], current.legacy_lines()[1:]):
            return
        want = current.lines()[1:]
        for i, (n, line) in enumerate(got):
            if i >= len(want) or line != want[i]:
                raise AclError(
                    f"line {n}: {line!r} inside the epcwatch-managed part is not what epcwatch "
                    f"writes for {current.username}; move hand-written rules above the first "
                    f"'{MARKER}' line"
                )
        raise AclError(f"block of {current.username} is incomplete")

    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        m = _MARKER_RE.match(line)
        if m:
            close()
            role: Role = "site" if m.group(1) == "site" else "collector"
            current = AclBlock(role, m.group(2), m.group(3))
            blocks.append(current)
            got = []
            continue
        if current is None:
            preamble.append(raw)
            continue
        if line.strip():
            got.append((n, line.strip()))
    close()
    while preamble and not preamble[-1].strip():
        preamble.pop()
    return preamble, blocks


def render(preamble: list[str], blocks: list[AclBlock]) -> str:
    out = list(preamble)
    for b in blocks:
        if out:
            out.append("")
        out.extend(b.lines())
    return "\n".join(out) + "\n"


def upsert(text: str, block: AclBlock) -> str:
    """``text`` with ``block`` added, or replacing the block of the same username.

    A username may hold one role only: issuing collector rights to a site's name (or the
    reverse) is refused, since it would silently widen that credential.
    """
    preamble, blocks = parse(text)
    for i, b in enumerate(blocks):
        if b.username == block.username:
            if b.role != block.role:
                raise AclError(f"username {block.username!r} is already a {b.role} credential")
            blocks[i] = block
            break
    else:
        blocks.append(block)
    return render(preamble, blocks)


HEADER: Final = """\
# Mosquitto ACL for epcwatch (acl_file). One block per credential, written by
# `epcwatch security site-credentials` and `epcwatch security collector-credentials`.
# Rules written above the first '# epcwatch' marker are kept as they are; no general
# 'topic' or 'pattern' rules, so a credential holds only the rights listed under it."""
