"""Publish dashboards into a Grafana folder through its HTTP API (grafana-client).

Idempotent: the folder is looked up by title and created only when missing; each dashboard is
compared with what Grafana holds under its uid and written (``overwrite``) only when it
differs, so publishing the same build twice changes nothing the second time. Credentials are
registered with the log masker and never appear in messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from epcwatch import logs
from epcwatch.dashboards.errors import PublishError

log = logging.getLogger("epcwatch.dashboards.publish")

#: fields Grafana manages itself; ignored when comparing a stored dashboard with ours
_VOLATILE = ("id", "version", "iteration")


@dataclass(frozen=True)
class Outcome:
    uid: str
    title: str
    action: str  # "created", "updated" or "unchanged"


def folder_uid(title: str) -> str:
    """A stable folder uid for a title (Grafana uids: ≤ 40 chars of [a-zA-Z0-9_-])."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", title.strip().lower()).strip("-")
    return (slug or "epcwatch")[:40]


def _comparable(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _VOLATILE}


def _client(url: str, token: str | None, user: str | None, password: str | None) -> Any:
    from grafana_client.api import GrafanaApi

    if token:
        logs.redact(token)
        credential: Any = token
    elif user:
        logs.redact(password)
        credential = (user, password or "")
    else:
        raise PublishError("give --token, or --user and --password (or GRAFANA_TOKEN / GRAFANA_USER)")
    return GrafanaApi.from_url(url, credential=credential, timeout=30.0)


def publish(
    url: str,
    dashboards: Mapping[str, Mapping[str, Any]],
    *,
    folder: str,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> list[Outcome]:
    """Upsert ``dashboards`` (file name → document) into ``folder``; returns what happened to each."""
    from grafana_client.client import GrafanaClientError, GrafanaException
    from niquests.exceptions import RequestException

    api = _client(url, token, user, password)
    try:
        existing = [f for f in api.folder.get_all_folders() if f.get("title") == folder]
        if existing:
            uid = str(existing[0]["uid"])
        else:
            uid = str(api.folder.create_folder(folder, uid=folder_uid(folder))["uid"])
            log.info("folder created", extra=logs.fields(folder=folder, uid=uid))
        outcomes = []
        for doc in dashboards.values():
            duid, title = str(doc["uid"]), str(doc.get("title", ""))
            try:
                stored = api.dashboard.get_dashboard(duid)
            except GrafanaClientError as exc:
                if getattr(exc, "status_code", None) != 404:
                    raise
                stored = None
            if stored is not None:
                same_folder = stored.get("meta", {}).get("folderUid") == uid
                if same_folder and _comparable(stored.get("dashboard", {})) == _comparable(doc):
                    outcomes.append(Outcome(duid, title, "unchanged"))
                    continue
            api.dashboard.update_dashboard(
                {
                    "dashboard": {**doc, "id": None},
                    "folderUid": uid,
                    "overwrite": True,
                    "message": "epcwatch dashboards publish",
                }
            )
            outcomes.append(Outcome(duid, title, "updated" if stored is not None else "created"))
            log.info("dashboard published", extra=logs.fields(uid=duid, folder=folder))
        return outcomes
    except GrafanaException as exc:
        status = getattr(exc, "status_code", None)
        message = getattr(exc, "message", None) or str(exc)
        raise PublishError(
            f"Grafana at {_safe(url)} refused the request ({status or 'no answer'}): {message}"
        ) from None
    except (RequestException, OSError) as exc:
        raise PublishError(f"Grafana at {_safe(url)} unreachable (no answer): {type(exc).__name__}") from None
    finally:
        session = getattr(getattr(api, "client", None), "s", None)
        if session is not None:
            session.close()  # no pooled sockets left for the garbage collector


def _safe(url: str) -> str:
    """The URL without any user:password@ part, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
