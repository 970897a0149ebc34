"""Resolve image references to digests by asking their registries, before anything is launched.

Step 1 of a bake: every image of a pool is looked up in its registry, so that a missing tag
or refused credentials fail the bake in seconds, not after a builder instance has booted, and
so that the lock file records the exact digest the node will have.

The lookup is the distribution API's ``HEAD /v2/REPO/manifests/REFERENCE`` (``GET`` when the
registry does not answer HEAD with a digest). The digest returned is the top-level one, an
image index's for a multi-arch image, which is what containerd and docker record on a pull.

Credentials: ECR registries get a token from ``ecr:GetAuthorizationToken`` for the image's own
account and region; registries named in ``[registries]`` of bake.toml get the user name and
password from the environment variables it names; others are asked anonymously. Basic and
Bearer (token service) challenges are both answered. Every password and token is registered
with the reporter, which masks it in every line it writes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import requests

from bake.cancel import CancelToken
from bake.errors import BakeError, ExitCode
from bake.http_trust import SharedTrust, TrustStore, bundle_in_use
from bake.model.config import RegistryAuth
from bake.model.images import Credential, ResolvedImage
from bake.model.refs import DOCKER_HUB, ImageRef
from bake.progress import NullReporter, Reporter

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST))
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
USER_AGENT = "eks-image-bake/0.1"
# Other names Docker Hub credentials are commonly configured under.
DOCKER_HUB_ALIASES = ("docker.io", "registry-1.docker.io", "index.docker.io")
ECR_REFRESH_MARGIN = 300.0  # seconds: renew an ECR token this long before it expires
ECR_FALLBACK_TTL = 3600.0  # seconds, when ECR's expiresAt is missing or already past
TOKEN_DEFAULT_TTL = 60.0  # seconds, as the token spec says when expires_in is absent
RETRY_AFTER_MAX = 60.0


class RegistryError(BakeError):
    """A registry refused, did not know or could not be asked about an image.

    The message names the image as the user wrote it and what the registry answered.
    """

    def __init__(self, image: str, reason: str, status: int | None = None, code: str | None = None):
        super().__init__(f"{image}: {reason}")
        self.image = image
        self.reason = reason
        self.status = status
        self.code = code


class CredentialEnvError(RegistryError):
    """bake.toml names an environment variable for a registry credential that is not set."""

    exit_code = ExitCode.USAGE


class _Transient(Exception):
    """An answer worth asking again: connection trouble, a timeout, 429 or 5xx."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RegistryClient:
    """Resolves references to digests. Thread-safe; ``resolve_all`` asks in parallel."""

    def __init__(
        self,
        registries: Mapping[str, RegistryAuth] | None = None,
        boto_session: Any = None,
        reporter: Reporter | None = None,
        cancel: CancelToken | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        environ: Mapping[str, str] = os.environ,
        insecure: Iterable[str] = (),
        verify: bool | str = True,
    ):
        """``insecure``: registries (``HOST[:PORT]``) asked over plain http, for tests only.

        ``verify``: True checks TLS against requests' bundle (``REQUESTS_CA_BUNDLE`` when set,
        which the sandbox points at the system store), or the path of a CA bundle.
        """
        self.registries = dict(registries or {})
        self.reporter = reporter or NullReporter()
        self.cancel = cancel or CancelToken()
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.environ = environ
        self.insecure = frozenset(insecure)
        self.verify = verify
        self._boto_session = boto_session
        self._lock = threading.Lock()
        self._ecr_lock = threading.Lock()
        self._ecr: dict[str, tuple[Credential, float]] = {}  # registry -> (credential, expiry)
        self._auth: dict[tuple[str, str], tuple[str, float]] = {}  # (registry, repo) -> (header, expiry)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._trust = TrustStore()  # one TLS context per CA bundle for every thread's session
        self._threads: ThreadPoolExecutor | None = None

    # -- public API -----------------------------------------------------------------------

    def resolve(self, ref: ImageRef) -> ResolvedImage:
        """The digest ``ref`` names now (or, when it pins one, that digest once confirmed)."""
        self.cancel.check()
        url = self.manifest_url(ref)
        resp = self._send(ref, "HEAD", url)
        digest = resp.headers.get("Docker-Content-Digest", "").strip()
        if resp.status_code != 200 or not SHA256_DIGEST.match(digest):
            # A registry that answers HEAD badly or without a digest: GET the manifest itself.
            # (A HEAD error has no body either; the GET's carries the registry's error code.)
            resp = self._send(ref, "GET", url)
            if resp.status_code != 200:
                raise self._error(ref, resp)
            digest = self._body_digest(ref, resp)
        if ref.digest and digest != ref.digest:
            raise RegistryError(
                ref.original, f"the registry returned a manifest with digest {digest}, not the pinned one"
            )
        return ResolvedImage(ref=ref, digest=digest, credential=self._credential_used(ref))

    def resolve_all(self, refs: Sequence[ImageRef], concurrency: int = 8) -> list[ResolvedImage]:
        """Resolve every reference, in parallel, in order. Every failure is reported at once."""
        if not refs:
            return []
        unique = list(dict.fromkeys(refs))
        pool = self._pool(concurrency)
        futures = {ref: pool.submit(self.resolve, ref) for ref in unique}
        done: dict[ImageRef, ResolvedImage] = {}
        errors: list[RegistryError] = []
        try:
            for ref, fut in futures.items():
                try:
                    done[ref] = fut.result()
                except RegistryError as e:
                    errors.append(e)
        except BaseException:
            for fut in futures.values():
                fut.cancel()
            wait(futures.values())
            raise
        if len(errors) == 1:
            raise errors[0]
        if errors:
            err = RegistryError(
                f"{len(errors)} images", "could not be resolved:\n  " + "\n  ".join(str(e) for e in errors)
            )
            err.errors = errors  # type: ignore[attr-defined]
            raise err
        return [done[ref] for ref in refs]

    def credential_for(self, ref: ImageRef) -> Credential | None:
        """The credential to use for ``ref``'s registry: ECR's, configured, or None (anonymous)."""
        if ref.ecr:
            return self._ecr_credential(ref)
        auth = self._configured(ref)
        if auth is None:
            return None
        values = []
        for key, var in (("username_env", auth.username_env), ("password_env", auth.password_env)):
            value = self.environ.get(var)
            if not value:
                raise CredentialEnvError(
                    ref.original,
                    f"registries.\"{ref.registry}\".{key} names ${var}, which is "
                    f"{'empty' if value == '' else 'not set'} in the environment",
                )
            values.append(value)
        self.reporter.add_secret(values[1])
        return Credential(registry=ref.registry, username=values[0], password=values[1])

    def manifest_url(self, ref: ImageRef, reference: str | None = None) -> str:
        scheme = "http" if ref.registry in self.insecure else "https"
        return f"{scheme}://{ref.api_host}/v2/{ref.repository}/manifests/{reference or ref.reference}"

    def compressed_sizes(self, images: Sequence[ResolvedImage], arch: str, concurrency: int = 8) -> list[int]:
        """``compressed_size`` of every image, in parallel, in order."""
        return list(self._pool(concurrency).map(lambda image: self.compressed_size(image, arch), images))

    def _pool(self, concurrency: int) -> ThreadPoolExecutor:
        """The client's threads, made on first use (at most ``concurrency``, the first caller's):
        look-ups after the digests reuse them, hence their sessions and open connections."""
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="registry")
            return self._threads

    def compressed_size(self, image: ResolvedImage, arch: str) -> int:
        """Bytes a pull of ``image`` downloads on a linux/``arch`` builder: its manifest's layers
        and config (for an index, the platform's manifest; without one, the largest)."""
        ref = image.ref

        def size(m: dict[str, Any]) -> int:
            return sum(int(x.get("size", 0)) for x in m.get("layers", [])) + int(m.get("config", {}).get("size", 0))

        body = self._manifest(ref, image.digest)
        entries = body.get("manifests")
        if not entries:
            return size(body)
        return max(size(self._manifest(ref, e["digest"])) for e in _platform_entries(entries, arch))

    def image_config(self, image: ResolvedImage, arch: str) -> dict[str, Any]:
        """The image's config (for an index, linux/``arch``'s): its ``config.Env``, labels...
        One blob GET after the manifests; the bytes are checked against the digest."""
        ref = image.ref
        body = self._manifest(ref, image.digest)
        if entries := body.get("manifests"):
            body = self._manifest(ref, _platform_entries(entries, arch)[0]["digest"])
        digest = str(body.get("config", {}).get("digest", ""))
        scheme = "http" if ref.registry in self.insecure else "https"
        resp = self._send(ref, "GET", f"{scheme}://{ref.api_host}/v2/{ref.repository}/blobs/{digest}")
        if resp.status_code != 200:
            raise self._error(ref, resp)
        algorithm, _, expected = digest.partition(":")
        try:
            ok = hashlib.new(algorithm, resp.content).hexdigest() == expected
        except ValueError:
            ok = False
        if not ok:
            raise RegistryError(ref.original, f"the image config's bytes do not hash to {digest!r}")
        try:
            return dict(resp.json())
        except ValueError:
            raise RegistryError(ref.original, f"the image config {digest} is not JSON") from None

    def _manifest(self, ref: ImageRef, digest: str) -> dict[str, Any]:
        resp = self._send(ref, "GET", self.manifest_url(ref, digest))
        if resp.status_code != 200:
            raise self._error(ref, resp)
        try:
            return dict(resp.json())
        except ValueError:
            raise RegistryError(ref.original, f"manifest {digest} is not JSON") from None

    def close(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- credentials ----------------------------------------------------------------------

    def _configured(self, ref: ImageRef) -> RegistryAuth | None:
        names = [ref.registry, ref.api_host]
        if ref.registry == DOCKER_HUB:
            names += DOCKER_HUB_ALIASES
        return next((self.registries[n] for n in names if n in self.registries), None)

    def _credential_used(self, ref: ImageRef) -> Credential | None:
        """What the builder needs: ECR's token always; a configured credential when there is one."""
        if ref.ecr:
            return self._ecr_credential(ref)
        return self.credential_for(ref) if self._configured(ref) else None

    def _ecr_credential(self, ref: ImageRef) -> Credential:
        account, region = ref.ecr  # type: ignore[misc]
        with self._ecr_lock:  # one GetAuthorizationToken per registry, even from many threads
            cached = self._ecr.get(ref.registry)
            if cached and cached[1] - ECR_REFRESH_MARGIN > time.time():
                return cached[0]
            session = self._boto_session
            if session is None:
                import boto3  # lazily: `python -m bake --help` should not pay for it

                session = self._boto_session = boto3.session.Session()
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                client = session.client("ecr", region_name=region)
                data = client.get_authorization_token(registryIds=[account])["authorizationData"][0]
            except ClientError as e:
                from bake.iam.refusal import message

                err = e.response.get("Error", {})
                raise RegistryError(
                    ref.original,
                    f"ecr:GetAuthorizationToken for account {account} in {region} failed: "
                    f"{message(e) or str(err.get('Code', '?')) + ': ' + str(err.get('Message', ''))}",
                    code=err.get("Code"),
                ) from None
            except BotoCoreError as e:
                raise RegistryError(
                    ref.original, f"ecr:GetAuthorizationToken for account {account} in {region} failed: {e}"
                ) from None
            try:
                user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            except (KeyError, ValueError) as e:
                raise RegistryError(ref.original, f"ECR returned an authorization token that does not decode: {e}") from None
            self.reporter.add_secret(data["authorizationToken"])
            self.reporter.add_secret(password)
            expires = data.get("expiresAt")
            expiry = expires.timestamp() if hasattr(expires, "timestamp") else 0.0
            if expiry - ECR_REFRESH_MARGIN <= time.time():
                # Already "expired" on arrival (a skewed clock; moto says 2015): asking again
                # would give the same answer, so keep it for the usual lifetime's share.
                expiry = time.time() + ECR_FALLBACK_TTL
            cred = Credential(registry=ref.registry, username=user, password=password)
            self._ecr[ref.registry] = (cred, expiry)
            return cred

    # -- HTTP -----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["User-Agent"] = USER_AGENT
            s.mount("https://", SharedTrust(self._trust))
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def _send(self, ref: ImageRef, method: str, url: str) -> requests.Response:
        """One request with authentication: answer a 401 challenge once, then report a refusal."""
        key = (ref.registry, ref.repository)
        with self._lock:
            cached = self._auth.get(key)
        header = cached[0] if cached and cached[1] > time.monotonic() else None
        resp = self._retrying(ref, method, url, header)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        header, expiry, cred = self._answer(ref, challenge)
        resp = self._retrying(ref, method, url, header)
        if resp.status_code == 401:
            who = f"as {cred.username!r}" if cred else "anonymously"
            if method == "HEAD":  # a HEAD answer has no body: GET the registry's error code
                detail = self._retrying(ref, "GET", url, header)
                resp = detail if detail.status_code == 401 else resp
            raise self._error(ref, resp, f"the registry refused the credentials (asked {who})")
        with self._lock:
            self._auth[key] = (header, expiry)
        return resp

    def _answer(self, ref: ImageRef, challenge: str) -> tuple[str, float, Credential | None]:
        scheme, params = _parse_challenge(challenge)
        cred = self.credential_for(ref)
        if scheme == "basic":
            if cred is None:
                raise RegistryError(
                    ref.original,
                    f"{ref.registry} requires credentials (HTTP 401, Basic) and none are configured: "
                    f"add [registries.\"{ref.registry}\"] with username_env and password_env to bake.toml",
                    status=401,
                )
            token = base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()
            self.reporter.add_secret(token)
            return f"Basic {token}", time.monotonic() + 3600, cred
        if scheme == "bearer" and params.get("realm"):
            token, ttl = self._token(ref, params, cred)
            return f"Bearer {token}", time.monotonic() + max(ttl - 10, 1), cred
        raise RegistryError(
            ref.original, f"{ref.registry} answered HTTP 401 with a challenge this tool cannot answer: {challenge!r}", status=401
        )

    def _token(self, ref: ImageRef, params: dict[str, str], cred: Credential | None) -> tuple[str, float]:
        """Fetch a Bearer token from the registry's token service (the realm)."""
        realm = params["realm"]
        if cred and not realm.startswith("https://") and ref.registry not in self.insecure:
            raise RegistryError(ref.original, f"the token service {realm} is not https; credentials are not sent to it")
        query = {"scope": params.get("scope") or f"repository:{ref.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        auth = (cred.username, cred.password) if cred else None
        resp = self._retrying(ref, "GET", realm, None, params=query, auth=auth)
        if resp.status_code != 200:
            what = "refused the credentials" if resp.status_code in (401, 403) and cred else "refused a token"
            raise self._error(ref, resp, f"the token service {realm} {what}")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
            ttl = float(body.get("expires_in") or TOKEN_DEFAULT_TTL)
        except (ValueError, AttributeError, TypeError):
            token, ttl = None, 0.0
        if not token or not isinstance(token, str):
            raise RegistryError(ref.original, f"the token service {realm} answered without a token", status=200)
        self.reporter.add_secret(token)
        return token, ttl

    def _retrying(
        self, ref: ImageRef, method: str, url: str, authorization: str | None, **kw: Any
    ) -> requests.Response:
        headers = {"Accept": ACCEPT}
        if authorization:
            headers["Authorization"] = authorization
        for attempt in range(self.retries + 1):
            self.cancel.check()
            try:
                resp = self._session().request(
                    method, url, headers=headers, timeout=self.timeout, verify=self.verify,
                    allow_redirects=True, **kw,
                )
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise _Transient(_status_reason(resp), _retry_after(resp))
                return resp
            except requests.exceptions.SSLError as e:
                # Not worth retrying: an untrusted certificate stays untrusted. Which bundle was
                # asked is half the answer (REQUESTS_CA_BUNDLE, `verify`, or certifi's own).
                bundle = bundle_in_use(self._session(), url, self.verify)
                raise RegistryError(ref.original, f"{method} {url}: {_describe(e)} (CA bundle {bundle})") from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
                why = _Transient(_describe(e, self.timeout))
            except _Transient as e:
                why = e
            if attempt == self.retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise RegistryError(ref.original, f"{method} {url}: {why.reason}{tries}")
            delay = self.backoff * (2**attempt)
            if why.retry_after is not None:
                delay = max(delay, min(why.retry_after, RETRY_AFTER_MAX))
            self.reporter.emit(
                "image", f"{ref.registry}: {why.reason}; retrying in {delay:.1f}s",
                image=ref.original, status="retry",
            )
            self.cancel.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _body_digest(self, ref: ImageRef, resp: requests.Response) -> str:
        body = resp.content
        algorithm = (ref.digest or "sha256:").split(":", 1)[0]
        if algorithm != "sha256":
            try:
                computed = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
            except ValueError:
                raise RegistryError(ref.original, f"digest algorithm {algorithm!r} is not supported") from None
        else:
            computed = f"sha256:{hashlib.sha256(body).hexdigest()}"
        header = resp.headers.get("Docker-Content-Digest", "").strip()
        if header.startswith("sha256:") and computed.startswith("sha256:") and header != computed:
            raise RegistryError(
                ref.original, f"the manifest's bytes hash to {computed}, but the registry says {header}"
            )
        return computed

    def _error(self, ref: ImageRef, resp: requests.Response, what: str | None = None) -> RegistryError:
        code, detail = _registry_error(resp)
        status = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
        answer = f"{status}: {code}: {detail}" if code else status
        if what is None:
            what = {
                401: "the registry asks for credentials",
                403: "access denied",
                404: "no such image or tag",
            }.get(resp.status_code, f"{resp.request.method} {resp.url} failed")
        return RegistryError(ref.original, f"{what} ({answer})", status=resp.status_code, code=code)


def _platform_entries(entries: list[dict[str, Any]], arch: str) -> list[dict[str, Any]]:
    """An index's manifests a linux/``arch`` builder would pull: the platform's, else every
    linux one, else all (a pull would then fail anyway)."""
    linux = [e for e in entries if e.get("platform", {}).get("os", "linux") == "linux"]
    match = [e for e in linux if e.get("platform", {}).get("architecture") == arch]
    return match[:1] or linux or entries


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v1 if v1 or not v2 else v2 for k, v1, v2 in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest)}
    return scheme.lower(), params


def _registry_error(resp: requests.Response) -> tuple[str | None, str]:
    """The first error of the registry's JSON body: (code, message)."""
    try:
        errors = resp.json().get("errors") or []
        first = errors[0]
        return str(first.get("code")), str(first.get("message") or "")
    except (ValueError, AttributeError, IndexError, TypeError):
        text = (resp.text or "").strip()[:200] if resp.request.method != "HEAD" else ""
        return None, text


def _status_reason(resp: requests.Response) -> str:
    code, detail = _registry_error(resp)
    answer = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
    return f"{answer}: {code}: {detail}" if code else answer


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _describe(exc: BaseException, timeout: float | None = None) -> str:
    """A short cause for a connection failure ("connection refused"), not urllib3's paragraph."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {e.verify_message}"
        if isinstance(e, socket.gaierror):
            return f"cannot resolve the host name ({e.strerror})"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
        if type(e).__name__ == "NameResolutionError":
            return "cannot resolve the host name"
        for nxt in (getattr(e, "reason", None), e.__cause__, e.__context__, *e.args):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out after {timeout:.0f}s" if timeout else "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {exc}"
    return str(exc)[:300]
