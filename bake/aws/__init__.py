"""boto3 sessions, clients and cancellable waiters.

Clients use botocore's standard retry mode (throttling and 5xx are retried with backoff).
Waiters stay botocore's own (their acceptors are data); we only drive them one attempt at a
time so that a Ctrl-C is noticed within one delay instead of after max_attempts.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from bake.cancel import CancelToken
from bake.errors import BakeError
from bake.polling import PollSchedule, WaitStats, schedule_for, wait_until


def session(region: str | None = None) -> Any:
    import boto3

    return boto3.session.Session(region_name=region)


def chain_region(sess: Any = None) -> str | None:
    """The region the AWS chain names (AWS_REGION, AWS_DEFAULT_REGION, the profile), or None;
    ``bake.model.workspace.resolve_region`` asks it last."""
    return (sess or session()).region_name


def client(sess: Any, service: str, region: str | None = None) -> Any:
    from botocore.config import Config

    # An explicit Config outranks the environment in botocore: honour AWS_MAX_ATTEMPTS here.
    cfg = Config(retries={"mode": "standard", "total_max_attempts": max_attempts()}, connect_timeout=15, read_timeout=60)
    made = sess.client(service, region_name=region, config=cfg)
    made.meta.events.register("before-parse", _not_an_aws_answer)
    return made


@functools.cache
def _unusable_answer() -> type:
    """The error of an endpoint that answered a call with something that is not AWS's (an HTML
    page from a proxy, moto's "not implemented" page). A BotoCoreError, so every handler of
    botocore's errors treats it as one. Made on first use: botocore stays out of `--help`."""
    from botocore.exceptions import BotoCoreError

    class UnusableAnswer(BotoCoreError):
        fmt = "{message}"

    return UnusableAnswer


_TITLE = re.compile(rb"<title>\s*(.*?)\s*</title>", re.I | re.S)


def _looks_like_html(body: bytes) -> bool:
    head = body.lstrip()[:64].lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _not_an_aws_answer(operation_model: Any, response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    """botocore's ``before-parse`` hook. AWS answers in XML or JSON; an HTML page would end in
    botocore's ResponseParserError, a traceback quoting the page. A 5xx page becomes botocore's
    generic 5xx error (retried like any 5xx; its message says what came back); any other
    status is not retried and fails the call with one line."""
    body = response_dict.get("body") or b""
    if not isinstance(body, bytes) or not _looks_like_html(body):
        return
    status = int(response_dict.get("status_code") or 0)
    title = _TITLE.search(body)
    page = f"an HTML page ({title.group(1).decode(errors='replace')[:80]!r})" if title else "an HTML page"
    call = f"{operation_model.service_model.service_id.hyphenize()}:{operation_model.name}"
    what = f"HTTP {status} with {page}, not an AWS answer"
    if status >= 500:
        response_dict["body"] = b""  # botocore's generic error: code "500", retried
        customized_response_dict["Error"] = {"Code": str(status), "Message": what}
        return
    raise _unusable_answer()(message=f"{call} answered {what}")


def max_attempts(default: int = 8) -> int:
    """Attempts per AWS call, the first included (throttling and 5xx are retried with backoff):
    AWS_MAX_ATTEMPTS, else 8. (botocore's ``max_attempts`` key counts retries only.)"""
    raw = os.environ.get("AWS_MAX_ATTEMPTS", "")
    try:
        return max(1, int(raw)) if raw else default
    except ValueError:
        return default


def describe_error(exc: BaseException) -> str | None:
    """A one-line message for a botocore error (ClientError names the code and the call), or None."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, ClientError):
        from bake.iam.refusal import message

        refused = message(exc)
        return f"AWS: {refused or exc}"
    if isinstance(exc, BotoCoreError):
        return f"AWS: {exc}"
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ResponseParserError):  # an answer the hook above did not recognise
        return f"AWS: an answer botocore could not read: {str(exc).splitlines()[0][:200]}"
    return None


def paginate(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item under ``key`` of every page of ``operation``."""
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def wait(
    ec2_or_other: Any,
    waiter_name: str,
    *,
    cancel: CancelToken,
    timeout: float,
    delay: float,
    what: str,
    hint: str = "",
    on_poll: Callable[[float], float | None] | None = None,
    **kwargs: Any,
) -> WaitStats:
    """Wait with botocore's ``waiter_name`` until it succeeds, fails, times out or is cancelled.

    Polls follow ``bake.polling`` (quick first and around the state's usual time on EC2, never
    more than ``delay`` apart). ``hint`` follows the timeout message (for example, which
    setting raises the timeout); ``on_poll(elapsed)`` runs after each poll that found the
    state not reached yet and another follows (progress reports), and may return a better
    estimate of when the change will land (seconds into the wait): the quick polls then move there."""
    from botocore.exceptions import WaiterError

    waiter = ec2_or_other.get_waiter(waiter_name)
    schedule = schedule_for(waiter_name, ceiling=delay)
    stats = WaitStats(waiter_name)

    def attempt() -> bool | None:
        try:
            waiter.wait(WaiterConfig={"Delay": 1, "MaxAttempts": 1}, **kwargs)
            return True
        except WaiterError as e:
            reason = str(e.kwargs.get("reason", ""))
            if "Max attempts exceeded" not in reason:
                raise BakeError(f"{what}: {reason}") from None
        return None

    def expired() -> bool:
        raise BakeError(f"{what}: not done after {timeout:.0f}s" + (f" ({hint})" if hint else ""))

    def pending(elapsed: float) -> PollSchedule | None:
        estimate = on_poll(elapsed) if on_poll else None
        return replace(schedule, expected=estimate) if estimate is not None else None

    wait_until(attempt, schedule, cancel, timeout=timeout, on_timeout=expired, stats=stats,
               on_pending=pending, last_look=True)
    return stats
