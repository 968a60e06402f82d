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


# The package's own layers, bottom up: a module imports from its layer or those below, never above. The stores
# know nothing of what reads them, nor does notify (the webhooks' outbox and delivery); the stages' logic and
# answering read the stores; the pipeline declares the stages (their versions come from their modules); jobs run
# the pipeline; the shell (CLI, client, health, the embedded stack, the worker's preloads) starts and reaches
# everything. Modules of the package's root not named here are its base (settings, database, errors, models,
# text, type detection, references).
SUBSYSTEM_LAYERS = [{"stores", "notify"}, {"audio", "parsing", "redaction", "answering"}, {"pipeline"}, {"jobs"},
                    {"shell"}]


def _layer(parts: tuple[str, ...]) -> int:
    name = parts[0].removesuffix(".py")
    return next((i + 1 for i, layer in enumerate(SUBSYSTEM_LAYERS) if name in layer), 0)


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update([node.module] if node.module != "ingestflow" else
                         [f"ingestflow.{alias.name}" for alias in node.names])
    return found


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = {}
    for path in PACKAGE.rglob("*.py"):
        own = _layer(path.relative_to(PACKAGE).parts)
        above = sorted(m for m in _imported_modules(path)
                       if m.startswith("ingestflow.") and _layer(tuple(m.split(".")[1:2])) > own)
        if above:
            upward[str(path.relative_to(PACKAGE))] = above
    assert upward == {}


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
