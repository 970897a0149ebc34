"""A small in-process fake of a registry and its token service, for unit-level tests.

This is NOT a real registry: it answers only ``/v2/REPO/manifests/REF`` and ``/token``, enough
to drive the resolver through what the real docker-registry cannot easily show here: a Bearer
token flow (Docker Hub's, GHCR's), 5xx and 429 answers to retry, a HEAD without a digest, a
digest header that lies. Everything real-world (pushes, Basic auth, TLS) is tested against
the real docker-registry instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {}, "layers": []}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


@dataclass
class FakeRegistry:
    repo: str = "team/app"
    tag: str = "v1"
    bearer: bool = True  # demand a token from /token
    token_user: tuple[str, str] | None = None  # Basic credentials the token service demands
    fail_first: list[int] = field(default_factory=list)  # statuses for the first manifest requests
    retry_after: str | None = None
    head_digest: bool = True  # send Docker-Content-Digest on HEAD
    lie_digest: bool = False  # send a wrong Docker-Content-Digest
    token: str = field(default_factory=lambda: "tok-" + secrets.token_hex(12))
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (method, path, headers)
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests_to(self, path_prefix: str) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.log if r[1].startswith(path_prefix)]

    def start(self) -> FakeRegistry:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
                body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
                self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.log.append((self.command, url.path, dict(self.headers)))
                if url.path == "/token":
                    return self._token(parse_qs(url.query))
                prefix = f"/v2/{fake.repo}/manifests/"
                if not url.path.startswith("/v2/"):
                    return self._send(404)
                if fake.fail_first:
                    status = fake.fail_first.pop(0)
                    extra = {"Retry-After": fake.retry_after} if fake.retry_after else {}
                    return self._error(status, "UNAVAILABLE", "try later", extra)
                if fake.bearer and self.headers.get("Authorization") != f"Bearer {fake.token}":
                    challenge = (f'Bearer realm="http://{fake.address}/token",service="fake-registry",'
                                 f'scope="repository:{fake.repo}:pull"')
                    return self._error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
                ref = url.path.removeprefix(prefix)
                if not url.path.startswith(prefix) or ref not in (fake.tag, MANIFEST_DIGEST):
                    return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
                if fake.lie_digest:
                    headers["Docker-Content-Digest"] = "sha256:" + "0" * 64
                elif fake.head_digest or self.command == "GET":
                    headers["Docker-Content-Digest"] = MANIFEST_DIGEST
                return self._send(200, MANIFEST, headers)

            def _token(self, query: dict[str, list[str]]) -> None:
                if query.get("service") != ["fake-registry"] or query.get("scope") != [f"repository:{fake.repo}:pull"]:
                    return self._send(400, b"bad service or scope")
                if fake.token_user:
                    want = "Basic " + base64.b64encode(":".join(fake.token_user).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        return self._send(401, b'{"details":"incorrect username or password"}')
                body = json.dumps({"token": fake.token, "expires_in": 300}).encode()
                self._send(200, body, {"Content-Type": "application/json"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
