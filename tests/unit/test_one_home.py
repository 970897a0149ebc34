"""One home for each fact (issue 23): the product code reads an image's root volume and
snapshots, an Auto Scaling group's launch source, the tool's AMIs by tag, the lock path, the
region and a UTC timestamp in one place each, and every wait runs through
``bake.polling.wait_until``. A second definition of any of them fails here, naming its file and
function (bake_sandbox/ is not product code)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import bake

ROOT = Path(bake.__file__).resolve().parent.parent
PRODUCT = [ROOT / "bake", ROOT / "constructs" / "nodepools", ROOT / "main.py"]


def _files() -> list[Path]:
    return [f for p in PRODUCT for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]


def _functions(files: list[Path], root: Path = ROOT) -> dict[str, str]:
    """``{"bake/x.py:name": source}`` for every function and method (nested ones included)."""
    out: dict[str, str] = {}
    for f in files:
        text = f.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[f"{f.relative_to(root)}:{node.name}"] = ast.get_source_segment(text, node) or ""
    return out


def _with(functions: dict[str, str], *needles: str) -> set[str]:
    """The functions whose source holds every one of ``needles`` (regular expressions)."""
    return {where for where, src in functions.items() if all(re.search(n, src) for n in needles)}


FUNCTIONS = _functions(_files())


def test_the_scan_sees_the_product():
    assert len(FUNCTIONS) > 500 and "bake/aws/images.py:describe" in FUNCTIONS


def test_an_images_root_volume_and_snapshots_are_read_in_the_image_view():
    assert _with(FUNCTIONS, r"RootDeviceName") == {"bake/aws/images.py:root_device"}
    # adopt copies the launch source's own root mapping (what the group launches with, its type
    # and IOPS too): a fact of the source, not of the image.
    assert _with(FUNCTIONS, r"""get\(["']VolumeSize["']\)""", r"RootDeviceName|root_device") == {
        "bake/aws/images.py:root_volume_gib", "bake/adopt.py:_block_devices"}
    # prune reads the snapshots a launch template version maps (a data-volume pool's cache): a
    # fact of the template, not of an image.
    assert _with(FUNCTIONS, r"BlockDeviceMappings", r"SnapshotId") == {
        "bake/aws/images.py:_snapshot_volumes", "bake/lifecycle/prune.py:images_in_use"}
    assert _with(FUNCTIONS, r"describe_images\(") == {"bake/aws/images.py:describe"}  # paginated ones: below


def test_an_asgs_launch_source_is_found_once():
    found = _with(FUNCTIONS, r"LaunchConfigurationName\b", r"LaunchTemplate")
    # prune lists every launch template version and configuration of the region (what still
    # uses an AMI), not a group's source.
    assert {w for w in found if not w.startswith("bake/aws/asg.py:")} == {"bake/lifecycle/prune.py:images_in_use"}
    assert _with(FUNCTIONS, r"describe_launch_configurations\(") == {"bake/aws/asg.py:launch_source"}
    assert _with(FUNCTIONS, r"describe_launch_template_versions\(") == {"bake/aws/asg.py:launch_source"}


def test_the_tools_resources_are_queried_by_tag_in_one_place():
    assert _with(FUNCTIONS, r"""["']tag:""") == {"bake/aws/images.py:tool_filters"}
    assert _with(FUNCTIONS, r"""["']describe_images["']""") == {"bake/aws/images.py:tool_images", "bake/aws/images.py:owned_images"}
    assert _with(FUNCTIONS, r"""["']describe_snapshots["']""") == {"bake/aws/images.py:tool_snapshots"}


def test_the_workspace_and_the_region_are_resolved_once():
    names = [w.split(":")[1] for w in FUNCTIONS]
    assert names.count("lock_path") == names.count("config_path") == names.count("resolve_region") == 1
    assert _with(FUNCTIONS, r"/ DEFAULT_LOCK_NAME") == {"bake/model/workspace.py:lock_path"}
    assert _with(FUNCTIONS, r"environ(\.get\(|\[)(CONFIG_ENV|LOCK_ENV|.BAKE_)") == {
        "bake/model/workspace.py:config_path", "bake/model/workspace.py:lock_path", "bake/model/workspace.py:resolve"}
    assert _with(FUNCTIONS, r"\.region_name\b") == {"bake/aws/__init__.py:chain_region"}


def test_utc_timestamps_are_made_by_one_helper():
    found = _with(FUNCTIONS, r"timezone\.utc|\.strftime\(|\.isoformat\(|utcnow|\.fromisoformat\(")
    assert {w.split(":")[0] for w in found} == {"bake/model/times.py"}, found


def test_every_wait_goes_through_wait_until():
    assert _with(FUNCTIONS, r"time\.sleep\(") == set()
    # A token's sleep: wait_until's, and the two retries with exponential backoff (a count of
    # attempts, not a wait for a state): a registry request and an image's pull.
    assert _with(FUNCTIONS, r"\.sleep\(") == {
        "bake/polling.py:wait_until", "bake/registry.py:_retrying", "bake/steps/pull.py:pull_one"}


def test_the_scan_finds_a_second_definition(tmp_path):
    # Negative control: a copy of the root volume's reading in another file is seen.
    f = tmp_path / "bake" / "x.py"
    f.parent.mkdir()
    f.write_text('def size(image):\n    return image["RootDeviceName"]\n')
    copies = {**FUNCTIONS, **_functions([f], tmp_path)}
    assert _with(copies, r"RootDeviceName") == {"bake/aws/images.py:root_device", "bake/x.py:size"}
