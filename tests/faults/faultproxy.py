"""A fault-injecting HTTP proxy between bake and the sandbox's moto server (loopback only).

Point ``AWS_ENDPOINT_URL`` at ``proxy.url``; every request is forwarded to moto unchanged
unless a rule matches its API action (EC2's query ``Action=``, or the JSON protocol's
``X-Amz-Target``). A rule can delay the call, answer with an error instead of forwarding
(throttling, 5xx) a limited number of times, or rewrite moto's answer (GetConsoleOutput).
Every request is logged (action and decoded form parameters) so a test can check what bake
asked EC2 for, e.g. RunInstances' MetadataOptions.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from bake_sandbox import http_relay as relay

EC2_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
)
JSON_TYPE = "application/x-amz-json-1.1"
# What moto 5.2 (werkzeug) answers an action it does not implement, and what a corporate
# proxy's error page looks like: not AWS's XML or JSON.
HTML_ERROR = (
    "<!doctype html>\n<html lang=en>\n<title>{status} Internal Server Error</title>\n"
    "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to "
    "complete your request.</p>\n"
)


@dataclass
class Rule:
    action: str
    delay: float = 0.0  # seconds to hold the call before forwarding it
    status: int | None = None  # answer this HTTP status instead of forwarding
    code: str = "InternalError"  # the EC2 error code that goes with ``status``
    html: bool = False  # answer ``status`` with an HTML page instead of AWS's error document
    times: int | None = None  # how many matching calls the rule applies to (None: all)
    rewrite: Callable[[bytes], bytes] | None = None  # change moto's answer body
    hits: int = 0
    holding: threading.Event = field(default_factory=threading.Event)  # set while a matched call is held (delay)

    def take(self) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


@dataclass
class Call:
    action: str
    params: dict[str, str]
    status: int
    injected: bool
    at: float = field(default_factory=time.monotonic)  # when the answer went back
    region: str = ""  # from the SigV4 credential scope: which region the client called
    started: float = 0.0  # when the request arrived (time.monotonic(), as ``at``)
    answer: bytes = b""  # the body sent back (forwarded calls): what the client was told


class FaultProxy:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, action: str, **kw) -> Rule:
        rule = Rule(action, **kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.calls.clear()

    def calls_to(self, action: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.action == action]

    def _match(self, action: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.action == action and rule.take():
                    return rule
        return None

    def _log(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(relay.QuietHandler):
            def _relay(self) -> None:
                started = time.monotonic()
                body, action, params = relay.read_request(self)
                region = _signed_region(self.headers.get("Authorization", ""))
                rule = proxy._match(action)
                if rule and rule.delay:
                    rule.holding.set()  # a test can wait for the call to be in flight
                    time.sleep(rule.delay)
                    rule.holding.clear()
                if rule and rule.status:
                    message = f"injected {rule.code} by the fault proxy"
                    if rule.html:
                        payload, ctype = HTML_ERROR.format(status=rule.status).encode(), "text/html; charset=utf-8"
                    elif self.headers.get("X-Amz-Target"):  # the JSON protocol (SSM, ECR)
                        payload, ctype = json.dumps({"__type": rule.code, "message": message}).encode(), JSON_TYPE
                    else:
                        payload, ctype = EC2_ERROR.format(code=rule.code, message=message).encode(), "text/xml"
                    proxy._log(Call(action, params, rule.status, True, region=region, started=started))
                    relay.respond(self, rule.status, [("Content-Type", ctype)], payload)
                    return
                status, headers, data = relay.forward(proxy.upstream, self, body)
                if rule and rule.rewrite:
                    data = rule.rewrite(data)
                proxy._log(Call(action, params, status, False, region=region, started=started, answer=data))
                relay.respond(self, status, headers, data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        return Handler


def _signed_region(authorization: str) -> str:
    """REGION of ``AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, ...``."""
    scope = authorization.partition("Credential=")[2].split(",")[0].split("/")
    return scope[2] if len(scope) >= 5 else ""


def console_with_fingerprints(fingerprints: list[str]) -> Callable[[bytes], bytes]:
    """A rewrite for GetConsoleOutput: cloud-init's host key block, as EC2 would print it."""
    lines = ["[   12.3] cloud-init[1234]: Cloud-init v. 22.2.2 running 'modules:final'",
             "ec2: #############################################################",
             "-----BEGIN SSH HOST KEY FINGERPRINTS-----"]
    lines += [f"256 {fp} root@ip-10-0-0-1 (ED25519)" for fp in fingerprints]
    lines += ["-----END SSH HOST KEY FINGERPRINTS-----",
              "ec2: #############################################################"]
    encoded = base64.b64encode("\n".join(lines).encode() + b"\n")

    def rewrite(body: bytes) -> bytes:
        return re.sub(rb"<output>.*?</output>", b"<output>" + encoded + b"</output>", body, count=1, flags=re.S)

    return rewrite
