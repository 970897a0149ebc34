"""The README and docs/ as a reader follows them: every relative link and #anchor lands on a file
and a heading that exist, every page is one link from the README, and the README stays short.

Anchors are computed as GitHub renders headings (lower case, punctuation dropped, spaces to
hyphens, a repeated heading suffixed -1, -2, ...); headings and links inside fenced code blocks
do not count, as GitHub does not render them."""

from __future__ import annotations

import re
from pathlib import Path

from support.cli import ROOT

README = ROOT / "README.md"
README_MAX_LINES = 300

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); a target has no spaces (titles are not used here).
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`[^`]*`")


def prose(text: str) -> list[str]:
    """The lines GitHub renders as markdown, not as code: fenced blocks blanked out."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose(path.read_text()):
        m = _HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link outside code."""
    found = []
    for number, line in enumerate(prose(path.read_text()), 1):
        for m in _LINK.finditer(_INLINE_CODE.sub("", line)):
            found.append((number, m.group(1)))
    return found


def broken(path: Path) -> list[str]:
    """Each relative link of ``path`` whose file or #anchor does not exist, as FILE:LINE: TARGET."""
    bad = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{path.name}:{number}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{path.name}:{number}: {target} (no such heading in {dest.name})")
    return bad


def pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_and_anchor_resolves():
    bad = [b for page in pages() for b in broken(page)]
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path: Path):
    # Negative control: the checker above would pass on anything if it found no links.
    (tmp_path / "other.md").write_text("# Other page\n\n## The builder's disk\n\n## Notes\n\n## Notes\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Local `section`: one\n\n"
        "[fine](other.md) [fine](other.md#the-builders-disk) [fine](#local-section-one)\n"
        "[fine, the second Notes](other.md#notes-1) [outside](https://example.com/x.md#nope)\n"
        "[gone](missing.md) [no heading](other.md#the-builder-disk) [no local](#nowhere)\n"
        "`[in code](also-missing.md)`\n"
        "```\n[in a fence](fenced-missing.md)\n# not a heading\n```\n"
        "[not a heading](#not-a-heading)\n")
    assert broken(page) == [
        "page.md:7: missing.md (no such file)",
        "page.md:7: other.md#the-builder-disk (no such heading in other.md)",
        "page.md:7: #nowhere (no such heading in page.md)",
        "page.md:13: #not-a-heading (no such heading in page.md)",
    ]


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for _, t in links(README) if t.partition("#")[0]}
    missing = [p.name for p in pages()[1:] if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_readme_is_short_and_opens_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    # scripts/dev.sh and .ci/run point at these two lines: the demo and the test suite.
    assert lines[2] == "```sh"
    assert lines[3].startswith("bash scripts/dev.sh demo ")
    assert lines[4].startswith("bash scripts/dev.sh test ")
    dev = (ROOT / "scripts" / "dev.sh").read_text()
    assert re.search(r"^\s*demo\)", dev, flags=re.MULTILINE) and re.search(r"^\s*test\)", dev, flags=re.MULTILINE)


# The pages that hold what the README used to: each of their sections is one link from the README
# (README -> section), so nothing the README had is more than two clicks away.
FROM_THE_README = ("configuration", "bake", "rollout", "pipeline", "sandbox", "testing", "faults",
                   "benchmarks", "limits", "layout")


def test_every_section_moved_out_of_the_readme_is_linked_from_it():
    linked = {t for _, t in links(README)}
    missing = []
    for name in FROM_THE_README:
        page = ROOT / "docs" / f"{name}.md"
        text = prose(page.read_text())
        sections = [slug(m.group(2)) for line in text if (m := _HEADING.match(line)) and len(m.group(1)) == 2]
        missing += [f"docs/{name}.md#{s}" for s in sections if f"docs/{name}.md#{s}" not in linked]
    assert not missing, f"sections the README does not link: {missing}"
