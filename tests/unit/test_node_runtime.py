"""The builder's runtime, per generation, on recorded answers: the state probe, the generation a
version picks, the compressed layers a node's containerd would not keep, the pin decision and
the snapshotter setting."""

from __future__ import annotations

import pytest

from bake import cache
from bake.gpu import merge_containerd_toml
from bake.model.config import PoolConfig
from bake.runtimes import Answer, Containerd, Containerd2, Docker, Found
from bake.steps.runtime import parse_probe

M1, M2, C1, C2, L1, L2, L3 = (f"sha256:{c * 64}" for c in "1234567")

@pytest.mark.parametrize("text, expected", [
    ("inactive\ndisabled\ncontainerd github.com/containerd/containerd/v2 2.1.9 abc\n", (False, False, "2.1.9")),
    ("active\nenabled\ncontainerd github.com/containerd/containerd v1.7.24 61f9fd88\n", (True, True, "v1.7.24")),
    ("active\nenabled\n27.5.1\n", (True, True, "27.5.1")),
    ("inactive\ndisabled\n", (False, False, "")),  # not installed yet / no version answer
    ("failed\nmasked\n", (False, False, "")),
])
def test_the_probe_reads_state_enablement_and_version(text, expected):
    assert parse_probe(text) == expected

@pytest.mark.parametrize("version, cls, config", [
    ("2.1.9", Containerd2, 3), ("v2.0.0", Containerd2, 3), ("v1.7.24", Containerd, 2), ("1.6.20", Containerd, 2),
    ("", Containerd, 2),  # unknown: the 1.x behaviour, which 2.x also accepts
])
def test_a_containerd_version_picks_its_generation(version, cls, config):
    found = Containerd("/run/x.sock").generation(version)
    assert type(found) is cls and found.config_version == config and found.socket == "/run/x.sock"
    assert found.version == version and found.restart_command() == "systemctl restart containerd"

def test_docker_is_one_generation():
    assert type(Docker().generation("27.5.1")) is Docker and Docker().config_version is None

def _labels(**extra: dict[str, str]) -> dict[str, dict[str, str]]:
    gc = "containerd.io/gc.ref."
    out = {
        M1: {f"{gc}content.config": C1, f"{gc}content.l.0": L1, f"{gc}content.l.1": L2},
        C1: {f"{gc}snapshot.overlayfs": "sha256:chain1"},
        L1: {}, L2: {},
        M2: {f"{gc}content.config": C2, f"{gc}content.l.0": L3},
        C2: {},  # not unpacked
        L3: {},
    }
    out.update(extra)
    return out

def test_the_layers_of_unpacked_images_are_what_a_node_discards():
    refs = cache.layer_references([M1], _labels())
    assert refs.layers == sorted([L1, L2])
    assert refs.labels == {M1: ["containerd.io/gc.ref.content.l.0", "containerd.io/gc.ref.content.l.1"]}

def test_an_image_that_was_not_unpacked_keeps_its_layers():
    assert cache.layer_references([M2], _labels()) == cache.LayerReferences([], {})

def test_a_layer_already_gone_is_not_removed_again_but_its_label_goes():
    labels = _labels()
    del labels[L2]
    refs = cache.layer_references([M1], labels)
    assert refs.layers == [L1] and len(refs.labels[M1]) == 2

def _answer(version: str, pinned: bool) -> Answer:
    return Answer("containerd", version, {"a:1": Found("sha256:i", (), pinned)})

@pytest.mark.parametrize("version, pinned, outcome", [
    ("2.1.9", True, None),
    ("1.6.20", True, None),  # the CRI's answer decides, whatever the version
    ("2.1.9", False, "fatal"),  # should honour pins and does not
    ("1.7.24", False, "fatal"),
    ("1.6.20", False, "warn"),  # predates pinning: a warning with the GC advice
    ("1.7.2", False, "warn"),
])
def test_the_cris_answer_decides_the_pin_check(version, pinned, outcome):
    answer = _answer(version, pinned)
    unpinned = [] if pinned else ["a:1"]
    problem = Containerd().pin_problem(answer, unpinned)
    if outcome is None:
        assert problem is None
    else:
        message, fatal = problem
        assert fatal is (outcome == "fatal") and version in message
        assert ("imageGCHighThresholdPercent" in message) is (outcome == "warn")

def test_an_absent_config_becomes_the_generations_version():
    assert merge_containerd_toml(None, "/usr/bin/nvidia-container-runtime", empty_version=3).startswith("version = 3")
    v3 = merge_containerd_toml("", "/x", empty_version=3)
    assert "[plugins.\"io.containerd.cri.v1.runtime\".containerd]" in v3 and 'default_runtime_name = "nvidia"' in v3
    assert merge_containerd_toml(None, "/x").startswith("version = 2")

def _pool(**kw: object) -> PoolConfig:
    return PoolConfig(name="p", base_ami="ami-0123456789abcdef0", images=["python:3.12"], **kw)

def test_overlayfs_is_the_default_and_the_only_snapshotter_a_bake_fills():
    assert _pool().snapshotter == "overlayfs" and _pool(snapshotter="overlayfs").snapshotter == "overlayfs"

@pytest.mark.parametrize("name, says", [("soci", "FastImagePull"), ("stargz", "lazily"), ("native", "overlayfs")])
def test_a_snapshotter_the_bake_cannot_fill_is_refused_naming_why(name, says):
    with pytest.raises(Exception) as e:
        _pool(snapshotter=name)
    assert says in str(e.value) and "pull every image again" in str(e.value)

def test_a_snapshotter_on_a_docker_pool_is_refused():
    with pytest.raises(Exception) as e:
        _pool(runtime="docker", snapshotter="overlayfs")
    assert "containerd setting" in str(e.value)

def test_plan_exits_2_naming_the_snapshotter_key(tmp_path):
    from support.cli import run_bake

    cfg = tmp_path / "bake.toml"
    cfg.write_text('region = "us-east-1"\n[pools.gpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["python:3.12"]\n'
                   'snapshotter = "soci"\n')
    for command in ("plan", "build"):
        r = run_bake(command, "--config", str(cfg))
        assert r.returncode == 2, r.stderr
        assert "snapshotter" in r.stderr and "soci" in r.stderr and "gpu" in r.stderr
    assert not (tmp_path / "amis.lock.json").exists()
