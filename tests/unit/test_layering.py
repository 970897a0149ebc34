"""The product and its stand-in: bake/ (and the rollout side) never import bake_sandbox.

The sandbox imports bake (it serves the product's demo and tests), never the other way: a user's
pipeline installs the product without moto and must not carry the sandbox's patches.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import bake

ROOT = Path(bake.__file__).resolve().parent.parent
PRODUCT = [ROOT / "bake", ROOT / "constructs", ROOT / "main.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _product_files() -> list[Path]:
    return [f for p in PRODUCT for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]


def test_no_product_file_imports_the_sandbox():
    files = _product_files()
    assert len(files) > 50, files  # the scan sees the product, not an empty folder
    offenders = {str(f.relative_to(ROOT)): sorted(n for n in _imports(f) if n.split(".")[0] in ("bake_sandbox", "moto"))
                 for f in files}
    assert {f: n for f, n in offenders.items() if n} == {}


def test_the_scan_sees_an_import_of_the_sandbox(tmp_path: Path):
    # Negative control: the same reader finds both spellings.
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from bake_sandbox.layout import Layout\n    import bake_sandbox\n")
    assert _imports(f) == {"bake_sandbox.layout", "bake_sandbox"}


def test_importing_every_product_module_loads_no_sandbox_module():
    modules = sorted(m.name for m in pkgutil.walk_packages(bake.__path__, "bake.") if m.name != "bake.__main__")
    assert len(modules) > 50
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bake_sandbox', 'moto')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
