"""The sandbox builder's containerd from a test's side: it is stopped between bakes (as on an EKS
AL2023 AMI), so a test that looks at what a bake left starts it for the look and stops it again."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from bake_sandbox import node_containerd


@contextmanager
def node_runtime(sandbox) -> Iterator[None]:  # noqa: ANN001
    with node_containerd.running(sandbox.layout):
        yield


def node_ctr(sandbox, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:  # noqa: ANN001
    """``ctr ARGS`` against the builder's containerd (its own ctr), started for the call."""
    ctr = str(node_containerd.bin_dir(sandbox.layout) / "ctr")
    with node_runtime(sandbox):
        return subprocess.run([ctr, "--address", node_containerd.SOCKET, *args], capture_output=True, text=True,
                              check=check, timeout=timeout)


def k8s_ctr(sandbox, *args: str) -> str:  # noqa: ANN001
    """``ctr -n k8s.io ARGS`` against the builder's containerd: its output."""
    return node_ctr(sandbox, "-n", "k8s.io", *args).stdout
