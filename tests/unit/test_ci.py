"""CI is detected one way (tests/support/ci.py), and CI sets it itself."""

from __future__ import annotations

import re

import pytest

from support.ci import in_ci, unavailable
from support.cli import ROOT


@pytest.mark.parametrize("value,expected", [("true", True), ("TRUE", True), ("1", True), ("yes", True),
                                            ("", False), ("false", False), ("0", False)])
def test_ci_values(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_a_missing_component_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        unavailable("terraform is not installed")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        unavailable("terraform is not installed")


def test_ci_run_sets_ci_itself():
    assert re.search(r"^export CI=true$", (ROOT / ".ci/run").read_text(), flags=re.MULTILINE)


def test_nothing_else_reads_ci():
    """One reader: a second one drifts (four places once read CI four ways)."""
    readers = []
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("bake").rglob("*.py"), ROOT / "main.py"]:
        if path.name == "ci.py" and path.parent.name == "support" or path.name == "test_ci.py":
            continue
        if re.search(r"""environ(\.get)?\s*[\(\[]\s*["']CI["']""", path.read_text()):
            readers.append(str(path.relative_to(ROOT)))
    assert readers == []


def test_the_two_parts_of_the_suite_cover_every_test_once():
    # scripts/dev.sh runs --part=sandbox and --part=rest at once: together they are the suite.
    from types import SimpleNamespace

    from support.parts import split

    items = [SimpleNamespace(nodeid="a", fixturenames=["tmp_path", "sandbox"]),
             SimpleNamespace(nodeid="b", fixturenames=["moto_server"]),
             SimpleNamespace(nodeid="c", fixturenames=["ec2", "sandbox"]),
             SimpleNamespace(nodeid="d", fixturenames=[])]
    sandbox, not_sandbox = split(items, "sandbox")
    rest, not_rest = split(items, "rest")
    assert [i.nodeid for i in sandbox] == ["a", "c"] and [i.nodeid for i in rest] == ["b", "d"]
    assert not_sandbox == rest and not_rest == sandbox
    assert split(items, "all") == (items, [])

