"""A small stand-in for the few Grafana HTTP API endpoints ``dashboards publish`` uses.

Grafana itself cannot be installed here, so this honest fake implements exactly the boundary:
folder list/create (``/api/folders``), dashboard read by uid (``/api/dashboards/uid/…``) and
upsert (``POST /api/dashboards/db`` with ``overwrite``), with token or basic authentication, and
records every request so tests can count what a publish did.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    body: Any
    authorization: str


@dataclass
class FakeGrafana:
    token: str = "glsa_test_token_123"
    user: str = "admin"
    password: str = "s3cret-pass"
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> folder
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {"dashboard", "folderUid"}
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def authorized(self, header: str) -> bool:
        basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header in (f"Bearer {self.token}", f"Basic {basic}")

    def posts(self, path: str) -> int:
        return sum(1 for r in self.requests if r.method == "POST" and r.path == path)

    def start(self) -> FakeGrafana:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                auth = self.headers.get("Authorization", "")
                path = self.path.split("?")[0]
                fake.requests.append(Request(method, path, body, auth))
                if not fake.authorized(auth):
                    return self._send(401, {"message": "Unauthorized"})
                if method == "GET" and path == "/api/folders":
                    return self._send(200, list(fake.folders.values()))
                if method == "POST" and path == "/api/folders":
                    uid = body.get("uid") or f"f{len(fake.folders) + 1}"
                    if uid in fake.folders or any(f["title"] == body["title"] for f in fake.folders.values()):
                        return self._send(409, {"message": "a folder with the same name already exists"})
                    fake.folders[uid] = {"id": len(fake.folders) + 1, "uid": uid, "title": body["title"]}
                    return self._send(200, fake.folders[uid])
                if method == "GET" and path.startswith("/api/dashboards/uid/"):
                    uid = path.rsplit("/", 1)[1]
                    if uid not in fake.dashboards:
                        return self._send(404, {"message": "Dashboard not found"})
                    stored = fake.dashboards[uid]
                    return self._send(
                        200, {"dashboard": stored["dashboard"], "meta": {"folderUid": stored["folderUid"]}}
                    )
                if method == "POST" and path == "/api/dashboards/db":
                    doc = dict(body["dashboard"])
                    if body.get("folderUid") not in fake.folders:
                        return self._send(400, {"message": "folder not found"})
                    old = fake.dashboards.get(doc["uid"])
                    if old is not None and not body.get("overwrite"):
                        return self._send(412, {"message": "version-mismatch"})
                    version = (old["dashboard"]["version"] + 1) if old else 1
                    doc.update(
                        id=len(fake.dashboards) + 1 if old is None else old["dashboard"]["id"],
                        version=version,
                    )
                    fake.dashboards[doc["uid"]] = {"dashboard": doc, "folderUid": body["folderUid"]}
                    return self._send(200, {"status": "success", "uid": doc["uid"], "version": version})
                return self._send(404, {"message": "not found"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
