"""The layout's rules that code can check: the shared package stands below the apps, and files are written whole."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ingestflow.atomic_files import atomic_path, write_atomic

PACKAGE = Path(__file__).resolve().parents[1] / "ingestflow"
LAYERS_ABOVE = {"api", "flows", "tasks", "deployments"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_shared_package_imports_no_layer_above_it() -> None:
    offenders = {str(p.relative_to(PACKAGE)): sorted(_imported_roots(p) & LAYERS_ABOVE) for p in PACKAGE.rglob("*.py")}
    assert {name: roots for name, roots in offenders.items() if roots} == {}


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "chunks.json"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and sorted(p.name for p in target.parent.iterdir()) == ["chunks.json"]
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second  # two writers of one file never share a temporary
        first.write_text("a")
        second.write_text("b")
    assert target.read_text() == "a"  # the outer block ends last: its file is the one left
