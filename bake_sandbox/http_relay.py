"""The HTTP relay shared by the sandbox's proxies in front of moto (EC2's clock, the tests'
fault proxy): read a request and name its AWS action, forward it, answer with moto's reply."""

from __future__ import annotations

import http.client
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

HOP_HEADERS = ("content-length", "transfer-encoding", "connection", "server", "date")


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive for boto3's connection pool; no access log on stderr."""

    protocol_version = "HTTP/1.1"
    # The reply goes out as headers, then body: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers, 40 ms on Linux, which made every relayed call ~45 ms
    # against moto's ~5 ms. A relay must not add time of its own.
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass


def read_request(handler: BaseHTTPRequestHandler) -> tuple[bytes, str, dict[str, str]]:
    """The body, the API action (EC2's query ``Action=``, or the JSON protocol's
    ``X-Amz-Target``) and the decoded form parameters."""
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else b""
    target = handler.headers.get("X-Amz-Target")
    if target:  # JSON protocol: "AmazonSSM.GetParameter"
        return body, target.rpartition(".")[2], {}
    form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
    if not form:
        form = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
    return body, form.get("Action", ""), form


def forward(upstream: tuple[str, int], handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(*upstream, timeout=120)
    try:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(handler.command, handler.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def respond(handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
    handler.send_response(status)
    for k, v in headers:
        if k.lower() not in HOP_HEADERS:
            handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
