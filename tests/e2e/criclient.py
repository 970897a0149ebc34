"""An independent CRI client for the tests: grpcio and upstream's message definitions
(``cri_api.proto``, compiled here by grpcio-tools), speaking ``runtime.v1`` to containerd's
socket exactly as the kubelet does. It shares no code with ``bake.cri``, the client the bake
runs on the builder, so the two check each other."""

from __future__ import annotations

import importlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc

PROTO = Path(__file__).with_name("cri_api.proto")
SOCKET = "/run/containerd/containerd.sock"


def _compiled():
    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp(prefix="cri-proto-"))
    argv = ["protoc", f"-I{PROTO.parent}", f"--python_out={out}", f"--grpc_python_out={out}", PROTO.name]
    if protoc.main(argv) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {PROTO}")
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("cri_api_pb2"), importlib.import_module("cri_api_pb2_grpc")
    finally:
        sys.path.remove(str(out))


@dataclass(frozen=True)
class Status:
    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    pinned: bool


class CriClient:
    def __init__(self, socket: str = SOCKET):
        self.pb, grpc_mod = _compiled()
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.images = grpc_mod.ImageServiceStub(self.channel)
        self.runtime = grpc_mod.RuntimeServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def version(self) -> str:
        return self.runtime.Version(self.pb.VersionRequest(version="v1"), timeout=10).runtime_version

    def status(self, ref: str) -> Status | None:
        """ImageStatus: None when the CRI answers "not present" (the kubelet would pull)."""
        req = self.pb.ImageStatusRequest(image=self.pb.ImageSpec(image=ref))
        res = self.images.ImageStatus(req, timeout=10)
        if not res.HasField("image"):
            return None
        img = res.image
        return Status(img.id, tuple(img.repo_tags), tuple(img.repo_digests), img.pinned)

    def list_ids(self) -> set[str]:
        return {img.id for img in self.images.ListImages(self.pb.ListImagesRequest(), timeout=30).images}
