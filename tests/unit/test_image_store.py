"""The CRI's answer read from containerd's image store through ctr (bake/image_store.py), for
builders with no interpreter to run the CRI client (Bottlerocket). The listing's shape is ctr
2.1's; tests/e2e/test_bottlerocket_bake.py reads a real one, and compares it with the CRI's."""

from __future__ import annotations

import json

import pytest

from bake.errors import BakeError
from bake.image_store import (
    Record, answer, lookup, parse_listing, parse_server_version, platform_manifest, split_documents,
)
from bake.runtimes import Found, StoreContainerd, runtime_for
from bake.ssh import Result

IDX, MAN, CFG = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64
OTHER_MAN, OTHER_CFG = "sha256:" + "4" * 64, "sha256:" + "5" * 64
PIN = "io.cri-containerd.image=managed,io.cri-containerd.pinned=pinned"

LISTING = f"""REF                                             TYPE                                       DIGEST  SIZE     PLATFORMS   LABELS
docker.io/library/python:3.12                   application/vnd.oci.image.index.v1+json    {IDX}   51.2 MiB linux/amd64,linux/arm64 {PIN}
docker.io/library/python@{IDX}                  application/vnd.oci.image.index.v1+json    {IDX}   51.2 MiB linux/amd64,linux/arm64 {PIN}
{CFG}                                           application/vnd.oci.image.index.v1+json    {IDX}   51.2 MiB linux/amd64,linux/arm64 {PIN}
registry.local/app:1                            application/vnd.oci.image.manifest.v1+json {OTHER_MAN} 3.0 KiB linux/amd64 -
"""

INDEX = {"manifests": [{"digest": "sha256:" + "9" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
                       {"digest": MAN, "platform": {"os": "linux", "architecture": "amd64"}}]}


def test_the_listing_gives_each_name_its_target_and_labels():
    records = parse_listing(LISTING)
    assert records["docker.io/library/python:3.12"] == Record(IDX, frozenset(PIN.split(",")))
    assert records["registry.local/app:1"] == Record(OTHER_MAN, frozenset())
    assert len(records) == 4  # the header is not a name


def test_the_server_version_is_the_servers_not_the_clients():
    text = "Client:\n  Version:  v1.7.27\n  Go version: go1.23\n\nServer:\n  Version:  v2.1.4\n  Revision: abc\n"
    assert parse_server_version(text) == "2.1.4"
    with pytest.raises(BakeError, match="no server version"):
        parse_server_version("Client:\n  Version:  v2.1.4\n")  # containerd not answering


def test_documents_split_by_digest_and_an_unreadable_one_is_left_out():
    text = f"--- {IDX}\n{json.dumps(INDEX)}\n\n--- {MAN}\nctr: not found\n\n"
    assert split_documents(text) == {IDX: INDEX}


def test_an_index_gives_the_builders_platform_manifest():
    assert platform_manifest(INDEX, "amd64") == MAN
    assert platform_manifest(INDEX, "s390x") is None


def test_the_answer_finds_names_ids_and_digests_as_the_cri_would():
    records = parse_listing(LISTING)
    configs = {IDX: CFG, OTHER_MAN: OTHER_CFG}
    got = answer(records, configs, ["docker.io/library/python:3.12", CFG, "registry.local/app:1",
                                    "docker.io/library/python:3.13", "sha256:" + "6" * 64])
    python = Found(CFG, (f"docker.io/library/python@{IDX}",), True)
    assert got["docker.io/library/python:3.12"] == python
    assert got[CFG] == python  # the image id, by the config's digest
    assert got["registry.local/app:1"] == Found(OTHER_CFG, (), False)  # not pinned, no digested name
    assert got["docker.io/library/python:3.13"] is None and got["sha256:" + "6" * 64] is None


def test_a_target_whose_config_is_unknown_is_not_found():
    """Content missing from the store (a pull that did not finish): the CRI would not report it."""
    assert answer(parse_listing(LISTING), {}, ["docker.io/library/python:3.12"]) == {"docker.io/library/python:3.12": None}


class Scripted:
    """A connection answering each command by the first of ``replies`` whose key it contains."""

    def __init__(self, replies: dict[str, str]):
        self.replies, self.commands = replies, []

    def run(self, command: str, **kw) -> Result:
        self.commands.append(command)
        out = next(v for k, v in self.replies.items() if k in command)
        return Result(command=command, stdout=out, stderr="", exited=0)


def test_lookup_reads_the_listing_then_the_index_then_the_platform_manifest():
    sep = "--- bake-image-store ---\n"
    conn = Scripted({
        "images ls": f"Client:\n Version: v2.1.4\nServer:\n Version: v2.1.4\n{sep}aarch64\n{sep}{LISTING}",
        f"content get {IDX}": f"--- {IDX}\n{json.dumps(INDEX)}\n",
        "content get sha256:9999": f"--- {'sha256:' + '9' * 64}\n{json.dumps({'config': {'digest': CFG}})}\n",
    })
    got = lookup(conn, "ctr -n k8s.io", ["docker.io/library/python:3.12"])  # type: ignore[arg-type]
    assert (got.runtime, got.version) == ("containerd", "2.1.4")
    assert got.images["docker.io/library/python:3.12"].id == CFG  # the arm64 manifest's config (uname -m)
    assert len(conn.commands) == 3 and all(c.startswith("sudo -n sh -c ") for c in conn.commands)


def test_a_bottlerocket_pool_asks_the_store_and_keeps_doing_so_after_the_version_is_known():
    found = runtime_for("containerd", "bottlerocket")
    assert isinstance(found, StoreContainerd) and "ctr" in found.verifier
    assert isinstance(found.generation("1.7.27"), StoreContainerd)
    assert not isinstance(runtime_for("containerd"), StoreContainerd)
