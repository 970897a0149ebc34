"""A requests adapter whose connections share one TLS context per CA bundle.

requests hands urllib3 the CA bundle's path, and urllib3 loads it into a fresh SSLContext for
every new connection: about 30 ms of CPU for the system or certifi bundle (measured here), and
the digest look-ups open one connection per thread and registry, so eight images resolved at
once spent a quarter of a second loading the same certificates. ``SharedTrust`` loads each
bundle once; verification is unchanged (the bundle requests would have used, CERT_REQUIRED,
the host name matched by urllib3).

It overrides ``HTTPAdapter.build_connection_pool_key_attributes``, which requests has from
2.32.3 on (pyproject requires it). On an older requests the override would never be called
while ``cert_verify`` still cleared the bundle, and urllib3 would fall back to the system
store: the configured bundle silently ignored. ``SharedTrust`` refuses to be made there.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context


class TrustStore:
    """The loaded contexts, by bundle path; shared by every session of one client (thread-safe)."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context(self, bundle: str) -> ssl.SSLContext:
        with self._lock:
            if bundle not in self._contexts:
                ctx = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
                if os.path.isdir(bundle):
                    ctx.load_verify_locations(capath=bundle)
                else:
                    ctx.load_verify_locations(cafile=bundle)
                self._contexts[bundle] = ctx
            return self._contexts[bundle]


def _bundle(url: str, verify: Any) -> str | None:
    """The CA bundle requests would verify ``url`` against, or None (plain http, verify off)."""
    if not verify or not url.lower().startswith("https"):
        return None
    return DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)


def bundle_in_use(session: Any, url: str, verify: Any) -> str | None:
    """The CA bundle a request of ``session`` to ``url`` is verified against: ``verify``'s path,
    else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, else requests' own (certifi); None when nothing is
    verified. What an error names, so that a user sees which bundle lacked the CA."""
    settings = session.merge_environment_settings(url, {}, None, verify, None)
    return _bundle(url, settings["verify"])


class SharedTrust(HTTPAdapter):
    def __init__(self, store: TrustStore):
        if not hasattr(HTTPAdapter, "build_connection_pool_key_attributes"):
            import requests

            from bake.errors import BakeError

            raise BakeError(f"requests {requests.__version__} is too old: eks-image-bake needs 2.32.3 or later "
                            "(pip install 'requests>=2.32.3'); with it, CA bundles would be ignored")
        self._store = store
        super().__init__()

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> tuple[dict, dict]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        if bundle := _bundle(request.url, verify):
            pool.pop("ca_certs", None)
            pool.pop("ca_cert_dir", None)
            pool["ssl_context"] = self._store.context(bundle)
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        if _bundle(url, verify):
            conn.ca_certs = conn.ca_cert_dir = None  # the pool's shared context holds them
