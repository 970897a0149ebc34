"""bake.registry: resolving references against real docker-registry processes (and one fake)."""

from __future__ import annotations

import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3.util.ssl_
from registry_support import AUTH_PASSWORD, AUTH_USER, Pki, require
from registry_fake import MANIFEST_DIGEST, FakeRegistry

from bake.cancel import CancelToken
from bake.errors import BakeError, Cancelled, ExitCode
from bake.model.config import RegistryAuth
from bake.model.refs import parse_reference
from bake.progress import MASK, NullReporter
from bake.model.images import Credential, ResolvedImage
from bake.registry import CredentialEnvError, RegistryClient, RegistryError
from bake_sandbox.process import free_port
from bake_sandbox.registry import LocalRegistry, write_htpasswd

SAME_DIGEST_LEN = len("sha256:") + 64


def plain(reg: LocalRegistry | FakeRegistry, **kw) -> RegistryClient:
    return RegistryClient(insecure={reg.address}, **kw)


# -- a plain-http registry --------------------------------------------------------------------


def test_resolve_returns_the_digest_skopeo_pushed(registry: LocalRegistry, push_image) -> None:
    pushed = push_image(registry, "team/app:v1", [5000, 700], seed=11)
    ref = parse_reference(f"{registry.address}/team/app:v1")
    with plain(registry) as client:
        got = client.resolve(ref)
    assert got == ResolvedImage(ref=ref, digest=pushed, credential=None)
    assert got.pinned == f"{registry.address}/team/app@{pushed}"


def test_a_moved_tag_resolves_to_its_new_digest(registry: LocalRegistry, push_image) -> None:
    ref = parse_reference(f"{registry.address}/team/moving:v1")
    first = push_image(registry, "team/moving:v1", [100], seed=1)
    with plain(registry) as client:
        assert client.resolve(ref).digest == first
        second = push_image(registry, "team/moving:v1", [100], seed=2)
        assert second != first
        assert client.resolve(ref).digest == second


def test_multi_arch_resolves_to_the_index_digest(registry: LocalRegistry, push_image) -> None:
    index = push_image(registry, "team/multi:v1", [100], seed=3, platforms=[("linux", "amd64"), ("linux", "arm64")])
    single = push_image(registry, "team/multi:amd64", [100], seed=3)  # same bytes as the amd64 entry
    with plain(registry) as client:
        assert client.resolve(parse_reference(f"{registry.address}/team/multi:v1")).digest == index
        assert index != single


def test_compressed_size_is_the_platform_manifests_layers_and_config(registry: LocalRegistry, push_image) -> None:
    index = push_image(registry, "team/sized:v1", [50_000, 7_000], seed=4, platforms=[("linux", "amd64"), ("linux", "arm64")])
    single = push_image(registry, "team/sized:amd64", [50_000, 7_000], seed=4)  # the amd64 entry's bytes
    with plain(registry) as client:
        multi = client.resolve(parse_reference(f"{registry.address}/team/sized:v1"))
        one = client.resolve(parse_reference(f"{registry.address}/team/sized:amd64"))
        manifest = client._session().get(client.manifest_url(one.ref, single), timeout=10,
                                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()
        expected = sum(x["size"] for x in manifest["layers"]) + manifest["config"]["size"]
        assert expected > 57_000  # two tar layers of that many random bytes, and a config
        assert client.compressed_size(one, "amd64") == expected
        assert multi.digest == index and client.compressed_size(multi, "amd64") == expected
        # no manifest for the builder's architecture: the largest (the pull would fail anyway)
        assert client.compressed_size(multi, "s390x") >= expected


def test_a_pinned_digest_is_confirmed(registry: LocalRegistry, push_image) -> None:
    pushed = push_image(registry, "team/pinned:v1", [100], seed=4)
    with plain(registry) as client:
        for text in (f"{registry.address}/team/pinned@{pushed}", f"{registry.address}/team/pinned:v1@{pushed}"):
            assert client.resolve(parse_reference(text)).digest == pushed
        absent = "sha256:" + "ab" * 32
        with pytest.raises(RegistryError) as exc:
            client.resolve(parse_reference(f"{registry.address}/team/pinned@{absent}"))
    assert exc.value.status == 404
    assert f"team/pinned@{absent}" in str(exc.value)


def test_a_missing_tag_names_the_image_and_the_registry_answer(registry: LocalRegistry, push_image) -> None:
    push_image(registry, "team/app2:v1", [100], seed=5)
    text = f"{registry.address}/team/app2:nope"
    with plain(registry) as client, pytest.raises(RegistryError) as exc:
        client.resolve(parse_reference(text))
    message = str(exc.value)
    assert message.startswith(f"{text}: ")
    assert "MANIFEST_UNKNOWN: manifest unknown" in message
    assert "no such image or tag" in message
    assert (exc.value.status, exc.value.code, exc.value.image) == (404, "MANIFEST_UNKNOWN", text)
    assert exc.value.exit_code == ExitCode.BAKE_FAILED


def test_resolve_all_keeps_order_and_reports_every_failure(registry: LocalRegistry, push_image) -> None:
    digests = [push_image(registry, f"team/many{i}:v1", [200], seed=100 + i) for i in range(6)]
    refs = [parse_reference(f"{registry.address}/team/many{i}:v1") for i in reversed(range(6))]
    with plain(registry) as client:
        got = client.resolve_all(refs + refs[:1], concurrency=4)
        assert [g.digest for g in got] == list(reversed(digests)) + [digests[5]]
        assert [g.ref for g in got] == refs + refs[:1]
        bad = [parse_reference(f"{registry.address}/team/many0:x"), parse_reference(f"{registry.address}/team/many1:y")]
        with pytest.raises(RegistryError) as exc:
            client.resolve_all([refs[0], *bad])
    assert "2 images" in str(exc.value)
    assert all(b.original in str(exc.value) for b in bad)
    assert [e.image for e in exc.value.errors] == [b.original for b in bad]  # type: ignore[attr-defined]


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_registry_needs_its_ca_trusted(
    tls_registry: LocalRegistry, pki: Pki, push_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = push_image(tls_registry, "team/tls:v1", [100], seed=6, cert_dir=pki.cert_dir)
    ref = parse_reference(f"{tls_registry.address}/team/tls:v1")
    reporter = NullReporter()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    with RegistryClient(reporter=reporter, retries=3, backoff=0.01) as client, pytest.raises(RegistryError) as exc:
        client.resolve(ref)
    assert "certificate" in str(exc.value) and str(exc.value).startswith(ref.original)
    assert not [e for e in reporter.events if e.status == "retry"]  # not worth retrying
    with RegistryClient(verify=str(pki.ca_cert)) as client:
        assert client.resolve(ref).digest == pushed
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_cert))
    with RegistryClient() as client:  # https by default; the bundle from the environment
        assert client.resolve(ref).digest == pushed


def test_the_configured_bundle_is_the_one_used_and_named(
    tls_registry: LocalRegistry, pki: Pki, push_image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry's CA is only in the configured bundle: not in the system store the
    # environment names. requests before 2.32.3 has no build_connection_pool_key_attributes:
    # bake.http_trust's override is never called there and urllib3 verifies against the system
    # store instead, so the first resolve fails (seen with requests 2.32.2, see issue 20).
    system = "/etc/ssl/certs/ca-certificates.crt"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", system)
    pushed = push_image(tls_registry, "team/bundle:v1", [100], seed=8, cert_dir=pki.cert_dir)
    ref = parse_reference(f"{tls_registry.address}/team/bundle:v1")
    with RegistryClient(verify=str(pki.ca_cert), retries=0) as client:
        assert client.resolve(ref).digest == pushed
    lacking = tmp_path / "other-ca.pem"  # a valid bundle without the registry's CA
    other, _ = Pki.issue(pki, "not-a-ca", ["DNS:not-a-ca.invalid"])
    lacking.write_bytes(other.read_bytes())
    for verify, named in ((str(lacking), str(lacking)), (True, system)):
        with RegistryClient(verify=verify, retries=0) as client, pytest.raises(RegistryError) as exc:
            client.resolve(ref)
        assert "certificate" in str(exc.value) and f"(CA bundle {named})" in str(exc.value), str(exc.value)


def test_a_requests_without_the_hook_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from requests.adapters import HTTPAdapter

    monkeypatch.delattr(HTTPAdapter, "build_connection_pool_key_attributes")
    with pytest.raises(BakeError, match=r"needs 2\.32\.3"):
        with RegistryClient() as client:
            client._session()


class CountingContext(ssl.SSLContext):
    """urllib3's SSLContext, counting the CA bundles loaded into it."""

    loads = 0

    def load_verify_locations(self, *args, **kwargs):  # type: ignore[override]
        type(self).loads += 1
        return super().load_verify_locations(*args, **kwargs)


def test_tls_connections_load_the_ca_bundle_once(
    tls_registry: LocalRegistry, pki: Pki, push_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four threads resolve at once, each on its own connection: requests would load the bundle
    # into a new context for every one (about 30 ms of CPU each); bake.http_trust loads it once.
    pushed = {f"team/shared:v{i}": push_image(tls_registry, f"team/shared:v{i}", [100], seed=20 + i,
                                               cert_dir=pki.cert_dir) for i in range(4)}
    refs = [parse_reference(f"{tls_registry.address}/{name}") for name in pushed]
    monkeypatch.setattr(urllib3.util.ssl_, "SSLContext", CountingContext)
    monkeypatch.setattr(CountingContext, "loads", 0)
    with RegistryClient(verify=str(pki.ca_cert)) as client:
        # Each of the four threads holds its reference until all four have one: a thread that
        # finished early would take a second one, and fewer connections would prove less.
        barrier, resolve = threading.Barrier(4, timeout=60), client.resolve
        monkeypatch.setattr(client, "resolve", lambda ref: (barrier.wait(), resolve(ref))[1])
        got = client.resolve_all(refs, concurrency=4)
        assert len(client._sessions) == 4  # one connection per thread, as before
    assert [g.digest for g in got] == list(pushed.values())
    assert CountingContext.loads == 1


def test_tls_shared_context_still_checks_the_host_name(tmp_path: Path, pki: Pki, push_image) -> None:
    cert, key = pki.issue("elsewhere", ["DNS:elsewhere.invalid"])  # signed by the trusted CA, another name
    require("docker-registry")
    with LocalRegistry(tmp_path / "reg", tls=(cert, key)) as reg:
        ref = parse_reference(f"{reg.address}/team/app:v1")
        with RegistryClient(verify=str(pki.ca_cert), retries=0) as client, pytest.raises(RegistryError) as exc:
            client.resolve(ref)
    assert "certificate" in str(exc.value) and "127.0.0.1" in str(exc.value)


# -- Basic auth (htpasswd) ---------------------------------------------------------------------


@pytest.fixture
def auth_ref(auth_registry: LocalRegistry, pki: Pki, push_image, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_cert))
    digest = push_image(auth_registry, "team/private:v1", [300], seed=7,
                        creds=(AUTH_USER, AUTH_PASSWORD), cert_dir=pki.cert_dir)
    return parse_reference(f"{auth_registry.address}/team/private:v1"), digest


def _auth(ref) -> dict[str, RegistryAuth]:
    return {ref.registry: RegistryAuth(username_env="REG_USER", password_env="REG_PASS")}


def test_basic_auth_with_configured_credentials(auth_ref) -> None:
    ref, digest = auth_ref
    reporter = NullReporter()
    env = {"REG_USER": AUTH_USER, "REG_PASS": AUTH_PASSWORD}
    with RegistryClient(_auth(ref), environ=env, reporter=reporter) as client:
        got = client.resolve(ref)
        assert client.resolve(ref).digest == digest  # the cached Authorization header still works
    assert got.digest == digest
    assert got.credential == Credential(registry=ref.registry, username=AUTH_USER, password=AUTH_PASSWORD)
    assert AUTH_PASSWORD not in repr(got) and AUTH_PASSWORD not in str(got.credential)
    reporter.emit("warn", f"pulling with {AUTH_PASSWORD}")
    assert reporter.events[-1].message == f"pulling with {MASK}"


def test_wrong_credentials_are_refused_clearly(auth_ref) -> None:
    ref, _ = auth_ref
    env = {"REG_USER": AUTH_USER, "REG_PASS": "not-the-password"}
    with RegistryClient(_auth(ref), environ=env) as client, pytest.raises(RegistryError) as exc:
        client.resolve(ref)
    assert str(exc.value).startswith(f"{ref.original}: the registry refused the credentials (asked as 'alice')")
    assert "UNAUTHORIZED" in str(exc.value) and exc.value.status == 401
    assert "not-the-password" not in str(exc.value)


def test_no_credentials_configured_says_how_to_add_them(auth_ref) -> None:
    ref, _ = auth_ref
    with RegistryClient() as client, pytest.raises(RegistryError, match=r"requires credentials.*\[registries\.") as exc:
        client.resolve(ref)
    assert exc.value.status == 401


def test_a_missing_credential_variable_is_named(auth_ref) -> None:
    ref, _ = auth_ref
    with RegistryClient(_auth(ref), environ={"REG_USER": AUTH_USER}) as client:
        with pytest.raises(CredentialEnvError, match=r"\$REG_PASS, which is not set") as exc:
            client.resolve(ref)
        with pytest.raises(CredentialEnvError, match=r"\$REG_USER, which is empty"):
            RegistryClient(_auth(ref), environ={"REG_USER": "", "REG_PASS": "x"}).credential_for(ref)
    assert exc.value.exit_code == ExitCode.USAGE


# -- a registry that is down, retries and cancellation ----------------------------------------


def test_a_registry_that_is_down_is_retried_then_reported() -> None:
    port = free_port()
    ref = parse_reference(f"127.0.0.1:{port}/team/app:v1")
    reporter = NullReporter()
    with RegistryClient(insecure={ref.registry}, reporter=reporter, retries=2, backoff=0.01) as client:
        with pytest.raises(RegistryError) as exc:
            client.resolve(ref)
    assert str(exc.value).startswith(ref.original)
    assert "connection refused after 3 attempts" in str(exc.value)
    retries = [e for e in reporter.events if e.status == "retry"]
    assert len(retries) == 2 and all(e.image == ref.original for e in retries)
    assert "connection refused; retrying in 0.0s" in retries[0].message


def test_cancel_interrupts_the_backoff() -> None:
    ref = parse_reference(f"127.0.0.1:{free_port()}/team/app:v1")
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel, args=(15,)).start()
    start = time.monotonic()
    with RegistryClient(insecure={ref.registry}, cancel=cancel, retries=5, backoff=30) as client:
        with pytest.raises(Cancelled) as exc:
            client.resolve(ref)
    assert time.monotonic() - start < 5
    assert exc.value.signum == 15


# -- Bearer tokens, 5xx/429 and odd answers: a unit-level fake (see fake_registry.py) ----------


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    yield reg
    reg.stop()


def test_bearer_token_flow_anonymous(fake: FakeRegistry) -> None:
    ref = parse_reference(f"{fake.address}/team/app:v1")
    reporter = NullReporter()
    with plain(fake, reporter=reporter) as client:
        assert client.resolve(ref) == ResolvedImage(ref=ref, digest=MANIFEST_DIGEST, credential=None)
        assert client.resolve(ref).digest == MANIFEST_DIGEST
    tokens = fake.requests_to("/token")
    assert len(tokens) == 1  # cached for the second resolve
    assert "Authorization" not in tokens[0][2]
    assert reporter.redact(f"x {fake.token} y") == f"x {MASK} y"
    manifests = fake.requests_to("/v2/")
    assert [m[0] for m in manifests] == ["HEAD", "HEAD", "HEAD"]  # 401, with the token, cached token
    assert manifests[1][2]["Authorization"] == f"Bearer {fake.token}"


def test_bearer_token_with_configured_credentials(fake: FakeRegistry) -> None:
    fake.token_user = ("bob", "hunter2-long")
    ref = parse_reference(f"{fake.address}/team/app:v1")
    auth = {ref.registry: RegistryAuth(username_env="U", password_env="P")}
    with plain(fake, registries=auth, environ={"U": "bob", "P": "hunter2-long"}) as client:
        got = client.resolve(ref)
    assert got.digest == MANIFEST_DIGEST and got.credential is not None and got.credential.username == "bob"
    with plain(fake, registries=auth, environ={"U": "bob", "P": "wrong-pass"}) as client:
        with pytest.raises(RegistryError, match=r"token service http://.*/token refused the credentials \(HTTP 401"):
            client.resolve(ref)


def test_5xx_and_429_are_retried(fake: FakeRegistry) -> None:
    fake.fail_first = [503, 500, 429]
    fake.retry_after = "0"
    ref = parse_reference(f"{fake.address}/team/app:v1")
    reporter = NullReporter()
    with plain(fake, reporter=reporter, retries=3, backoff=0.01) as client:
        assert client.resolve(ref).digest == MANIFEST_DIGEST
    retries = [e.message for e in reporter.events if e.status == "retry"]
    assert len(retries) == 3
    assert "HTTP 503 Service Unavailable; retrying" in retries[0]
    assert "HTTP 429" in retries[2]


def test_retries_run_out(fake: FakeRegistry) -> None:
    fake.fail_first = [503] * 5
    ref = parse_reference(f"{fake.address}/team/app:v1")
    with plain(fake, retries=1, backoff=0.01) as client, pytest.raises(RegistryError, match="HTTP 503.*after 2 attempts"):
        client.resolve(ref)


def test_head_without_digest_falls_back_to_get(fake: FakeRegistry) -> None:
    fake.head_digest = False
    with plain(fake) as client:
        assert client.resolve(parse_reference(f"{fake.address}/team/app:v1")).digest == MANIFEST_DIGEST
    assert [m[0] for m in fake.requests_to("/v2/") if "Authorization" in m[2]] == ["HEAD", "GET"]


def test_a_lying_digest_header_is_caught(fake: FakeRegistry) -> None:
    fake.lie_digest = True
    fake.bearer = False
    with plain(fake) as client:
        with pytest.raises(RegistryError, match="pinned"):  # HEAD by digest answers another digest
            client.resolve(parse_reference(f"{fake.address}/team/app@{MANIFEST_DIGEST}"))


def test_docker_hub_references_ask_registry_1() -> None:
    client = RegistryClient()
    assert client.manifest_url(parse_reference("python:3.12")) == (
        "https://registry-1.docker.io/v2/library/python/manifests/3.12"
    )
    hub = {"docker.io": RegistryAuth(username_env="U", password_env="P")}
    cred = RegistryClient(hub, environ={"U": "me", "P": "pat-123456"}).credential_for(parse_reference("me/app:1"))
    assert cred == Credential(registry="docker.io", username="me", password="pat-123456")


@pytest.mark.parametrize("written", ["python:3.12", "library/python:3.12", "docker.io/python:3.12",
                                     "docker.io/library/python:3.12", "index.docker.io/library/python:3.12"])
def test_docker_hub_spellings_ask_registry_1_for_library_python(
    written: str, tmp_path: Path, pki: Pki, push_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real docker-registry with a certificate for registry-1.docker.io stands in for Docker
    # Hub: connections to that name go to it (TLS still checks the name). Before issue 20,
    # `docker.io/python:3.12` asked for repository `python`, which Docker Hub does not have.
    require("docker-registry")
    cert, key = pki.issue("hub", ["DNS:registry-1.docker.io", "IP:127.0.0.1"])
    with LocalRegistry(tmp_path / "hub", tls=(cert, key)) as hub:
        pushed = push_image(hub, "library/python:3.12", [100], seed=31, cert_dir=pki.cert_dir)
        real = urllib3.util.connection.create_connection
        asked: list[tuple[str, int]] = []

        def aliased(address, *args, **kw):  # type: ignore[no-untyped-def]
            asked.append(address)
            if address[0] == "registry-1.docker.io":
                address = ("127.0.0.1", hub.port)
            return real(address, *args, **kw)

        monkeypatch.setattr(urllib3.connection.connection, "create_connection", aliased)
        with RegistryClient(verify=str(pki.ca_cert), retries=0) as client:
            got = client.resolve(parse_reference(written))
    assert got.digest == pushed and got.ref.repository == "library/python"
    assert asked and {a[0] for a in asked} == {"registry-1.docker.io"}


# -- ECR: GetAuthorizationToken from a moto server ---------------------------------------------

ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
MOTO_PASSWORD = "123456789012-auth-token"


class CountingSession:
    """A boto3 session that counts the clients made from it."""

    def __init__(self) -> None:
        import boto3

        self.session = boto3.session.Session()
        self.clients: list[tuple[str, str | None]] = []

    def client(self, name: str, region_name: str | None = None):
        self.clients.append((name, region_name))
        return self.session.client(name, region_name=region_name)


def test_ecr_credential_from_get_authorization_token(aws_env: str) -> None:
    reporter = NullReporter()
    session = CountingSession()
    client = RegistryClient(boto_session=session, reporter=reporter)
    ref = parse_reference(f"{ECR_HOST}/team/app:v1")
    cred = client.credential_for(ref)
    assert cred == Credential(registry=ECR_HOST, username="AWS", password=MOTO_PASSWORD)
    assert client.credential_for(parse_reference(f"{ECR_HOST}/other:v2")) is cred  # cached per registry
    other_region = parse_reference("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1")
    assert client.credential_for(other_region).registry == other_region.registry
    assert session.clients == [("ecr", "us-east-1"), ("ecr", "eu-west-1")]
    assert MOTO_PASSWORD not in repr(cred)
    reporter.emit("step", f"docker login -u AWS -p {MOTO_PASSWORD} {ECR_HOST}")
    assert MOTO_PASSWORD not in reporter.events[-1].message and MASK in reporter.events[-1].message


def test_ecr_without_aws_credentials_is_a_clear_error(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ref = parse_reference(f"{ECR_HOST}/team/app:v1")
    with pytest.raises(RegistryError, match=r"GetAuthorizationToken for account 123456789012 in us-east-1 failed"):
        RegistryClient().credential_for(ref)


@pytest.fixture
def ecr_lookalike(tmp_path: Path, pki: Pki, push_image, monkeypatch: pytest.MonkeyPatch):
    """A real registry named like ECR (port 443 on a spare loopback address), htpasswd AWS/moto token.

    The name resolves to that address in this process only (socket.getaddrinfo is patched),
    so /etc/hosts is left alone.
    """
    require("docker-registry", "htpasswd")
    addr = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}.{random.randint(1, 250)}"
    cert, key = pki.issue("ecr", [f"DNS:{ECR_HOST}", f"IP:{addr}"])
    htpasswd = write_htpasswd(tmp_path / "htpasswd", "AWS", MOTO_PASSWORD)
    with LocalRegistry(tmp_path / "ecr", host=addr, port=443, tls=(cert, key), htpasswd=htpasswd) as reg:
        digest = push_image(reg, "team/app:v1", [100], seed=9, creds=("AWS", MOTO_PASSWORD), cert_dir=pki.cert_dir)
        real = socket.getaddrinfo

        def getaddrinfo(host, *args, **kw):
            return real(addr if host == ECR_HOST else host, *args, **kw)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_cert))
        yield digest


def test_ecr_end_to_end(aws_env: str, ecr_lookalike: str) -> None:
    ref = parse_reference(f"{ECR_HOST}/team/app:v1")
    with RegistryClient() as client:
        got = client.resolve(ref)
    assert got.digest == ecr_lookalike
    assert got.credential == Credential(registry=ECR_HOST, username="AWS", password=MOTO_PASSWORD)


def test_importing_the_resolver_does_not_load_boto3() -> None:
    import subprocess
    import sys

    code = "import sys, bake.registry; print(sorted(m for m in ('boto3', 'botocore', 'cdktf') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]"



# -- a GPU pool's driver floor, from its validation image's config -----------------------------


def test_the_gpu_floor_comes_from_the_validation_images_config(registry: LocalRegistry, push_image) -> None:
    from bake.build import gpu_floor
    from bake.gpu import GpuError
    from bake.model.config import parse_config

    require_cuda = "cuda>=12.4 brand=tesla,driver>=535,driver<536 brand=nvidia,driver>=535,driver<536"
    # An index, as NVIDIA's images are: the builder's platform's manifest, then its config blob.
    push_image(registry, "nvidia/cuda:12.4.0-base", [100], seed=41, platforms=[("linux", "amd64"), ("linux", "arm64")],
               env=["PATH=/usr/local/cuda/bin", f"NVIDIA_REQUIRE_CUDA={require_cuda}"])
    push_image(registry, "plain/busybox:1", [100], seed=42)
    validate = f"{registry.address}/nvidia/cuda:12.4.0-base"

    def pool(image: str, **settings: object):
        table = {"base_ami": "ami-0123456789abcdef0", "images": [f"{registry.address}/plain/busybox:1"], "gpu": True,
                 "instance_type": "g4dn.xlarge", "gpu_settings": {"validate_image": image, **settings}}
        return parse_config({"pools": {"gpu": table}}, Path("bake.toml")).pools["gpu"]

    with plain(registry) as client:
        floor = gpu_floor(pool(validate), client, [], "amd64")
        assert (floor.minimum, floor.branches) == ("550.54.14", (("535", "536"),))
        assert floor.source == f"{validate}'s NVIDIA_REQUIRE_CUDA"
        # A configured floor wins, and asks the registry nothing (this one does not exist).
        configured = gpu_floor(pool("no.such.registry.invalid/x:1", min_driver_version=550), client, [], "amd64")
        assert (configured.minimum, configured.source) == ("550", "gpu_settings.min_driver_version")
        with pytest.raises(GpuError, match="pool gpu: the validation image .*busybox:1 declares no NVIDIA_REQUIRE_CUDA"):
            gpu_floor(pool(f"{registry.address}/plain/busybox:1"), client, [], "amd64")
