"""bake.aws: an endpoint that answers with an HTML page ends the call with one line naming it.

A real HTTP server on loopback answers every call with the page moto 5.2 gives an action it
does not implement; botocore alone raises ResponseParserError, a traceback quoting the page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from bake import aws
from bake.cli import one_line

PAGE = (b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
        b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>\n")


@pytest.fixture
def html_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    served = {"status": 500, "calls": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            served["calls"] += 1
            self.send_response(served["status"])
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(key, value)
    yield served
    server.shutdown()
    server.server_close()


def test_a_5xx_page_is_retried_and_ends_in_one_line(html_endpoint):
    ec2 = aws.client(boto3.session.Session(), "ec2", "us-east-1")
    with pytest.raises(ClientError) as exc:
        ec2.describe_fast_snapshot_restores()
    assert html_endpoint["calls"] == 2  # retried like any 5xx (AWS_MAX_ATTEMPTS=2)
    line = one_line(exc.value)
    assert line is not None and "\n" not in line
    assert "DescribeFastSnapshotRestores" in line and "HTTP 500 with an HTML page ('500 Internal Server Error')" in line


def test_another_status_with_a_page_is_not_retried(html_endpoint):
    html_endpoint["status"] = 404
    ec2 = aws.client(boto3.session.Session(), "ec2", "us-east-1")
    with pytest.raises(BotoCoreError) as exc:
        ec2.describe_images(Owners=["self"])
    assert html_endpoint["calls"] == 1
    assert one_line(exc.value) == ("AWS: ec2:DescribeImages answered HTTP 404 with an HTML page "
                                   "('500 Internal Server Error'), not an AWS answer")


def test_without_the_hook_botocore_raises_a_parser_error(html_endpoint):
    # What the hook guards against: a plain client fails with ResponseParserError, which is no
    # BotoCoreError (the CLI still says it in one line, as the last resort).
    from botocore.parsers import ResponseParserError

    plain = boto3.session.Session().client("ec2", region_name="us-east-1")
    with pytest.raises(ResponseParserError) as exc:
        plain.describe_images(Owners=["self"])
    assert len(str(exc.value).splitlines()) > 1  # the page follows on the next line
    line = one_line(exc.value)
    assert line is not None and line.startswith("AWS: an answer botocore could not read") and "\n" not in line


def test_ssh_and_registry_errors_that_reach_the_cli_are_one_line_too():
    import requests

    from bake.lean_paramiko import paramiko

    assert one_line(paramiko.SSHException("Error reading SSH protocol banner")) == (
        "SSH: SSHException: Error reading SSH protocol banner")
    req = requests.Request("HEAD", "https://quay.io/v2/org/env/manifests/rev9").prepare()
    err = requests.ConnectionError("Connection reset by peer", request=req)
    assert one_line(err) == ("registry: HEAD https://quay.io/v2/org/env/manifests/rev9: "
                             "ConnectionError: Connection reset by peer")
    assert one_line(ConnectionRefusedError(111, "Connection refused")) == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert one_line(KeyError("a bug")) is None  # a bug keeps its traceback
