"""The example workflows pass GitHub's workflow schema (check-jsonschema's vendored copy) and
zizmor's security audit, offline and as its auditor persona (every audit, every confidence),
with no finding above informational. Each inline suppression
carries its reason on the line above. A negative control proves the linter really runs here: the
same workflow with a floating tag and kept credentials is refused.

Both tools come from the test extra in pyproject.toml (scripts/dev.sh setup installs them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "github-actions"
WORKFLOWS = sorted(EXAMPLES.glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    # Next to this interpreter (the venv), else on PATH; missing is a failure, never a skip.
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is not installed: `pip install -e '.[test]'` (scripts/dev.sh setup) installs it"
    return str(path)


def zizmor(*files: Path) -> tuple[list[dict], str]:
    # The auditor persona: every audit at every confidence, a superset of the default run.
    p = subprocess.run([tool("zizmor"), "--offline", "--persona", "auditor", "--format", "json", *map(str, files)],
                       capture_output=True, text=True, timeout=120)
    # zizmor exits non-zero when it finds something; its JSON on stdout says what.
    assert p.stdout.strip(), f"zizmor printed nothing (exit {p.returncode}): {p.stderr[-2000:]}"
    return json.loads(p.stdout), p.stderr


def above_informational(findings: list[dict]) -> list[str]:
    return [f"{f['ident']} ({f['determinations']['severity']}): {f['desc']}"
            for f in findings if f["determinations"]["severity"] not in ("Informational", "Unknown")]


def test_there_are_workflows_to_lint() -> None:
    assert [p.name for p in WORKFLOWS] == ["main.yml", "pull-request.yml", "scheduled.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_github_workflow_schema(workflow: Path) -> None:
    p = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_zizmor_offline_finds_nothing_above_informational(workflow: Path) -> None:
    findings, _ = zizmor(workflow)
    assert above_informational(findings) == []


def test_every_suppression_is_justified() -> None:
    for workflow in WORKFLOWS:
        lines = workflow.read_text().splitlines()
        for i, line in enumerate(lines):
            if "zizmor: ignore" in line:
                assert re.search(r"zizmor: ignore\[[a-z-]+\]", line), line
                above = lines[i - 1].strip()
                assert above.startswith("# ") and len(above) > 30, f"{workflow.name}:{i + 1}: say why above it"


def test_zizmor_refuses_a_floating_tag_and_kept_credentials(tmp_path: Path) -> None:
    """The control: without it, a broken install or a wrong flag could make the test above pass."""
    text = (EXAMPLES / "main.yml").read_text()
    bad = re.sub(r"actions/checkout@[0-9a-f]{40} # \S+", "actions/checkout@v4", text)
    bad = bad.replace("persist-credentials: false", "fetch-depth: 1")  # the token stays in .git/config
    assert bad != text
    (tmp_path / "main.yml").write_text(bad)
    idents = {f["ident"] for f in zizmor(tmp_path / "main.yml")[0]}
    assert {"unpinned-uses", "artipacked"} <= idents, idents
