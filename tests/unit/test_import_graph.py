"""The shape of the code: the import graph of ``workers`` and ``export``, and module sizes.

Every module is parsed (``ast``, nothing imported), and every import is an edge, also the
lazy ones inside functions and those under ``TYPE_CHECKING``. The checks:

1. no import circle between modules;
2. the subpackages depend on each other only as :data:`LAYERS` says (a layered DAG:
   ``core`` at the bottom, ``cli`` at the top);
3. ``export`` imports only ``workers.core`` and ``workers.inference``, and ``workers``
   never imports ``export`` (the offline commands reach the CLI through an entry point);
4. nothing that serves imports TensorFlow (or Keras, tf2onnx, scikit-learn);
5. a module over 400 lines says why in its first line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("workers", "export")
MAX_LINES = 400
LONG_REASON = "# Longer than 400 lines: "

LAYERS: dict[str, set[str]] = {
    "workers.core": set(),
    "workers.inference": {"workers.core"},
    "workers.process": {"workers.core", "workers.kafka"},
    "workers.kafka": {"workers.core"},
    "workers.lifecycle": {"workers.core", "workers.inference", "workers.kafka", "workers.process"},
    "workers.classify": {
        "workers.core",
        "workers.inference",
        "workers.kafka",
        "workers.lifecycle",
        "workers.process",
    },
    "workers.feedback": {
        "workers.core",
        "workers.inference",
        "workers.kafka",
        "workers.lifecycle",
        "workers.process",
    },
    "workers.clicks": {
        "workers.core",
        "workers.inference",
        "workers.kafka",
        "workers.process",
        "workers.feedback",
    },
    "workers.rollout": {  # online judgement of canaries from the feedback app's counts
        "workers.core",
        "workers.kafka",
        "workers.lifecycle",
        "workers.process",
        "workers.feedback",
    },
    "workers.serving": {
        "workers.core",
        "workers.inference",
        "workers.kafka",
        "workers.lifecycle",
        "workers.process",
        "workers.classify",
    },
    "workers.demo": {"workers.core", "workers.inference", "workers.kafka", "workers.process"},
    "workers.cli": {
        "workers.core",
        "workers.inference",
        "workers.kafka",
        "workers.lifecycle",
        "workers.classify",
        "workers.feedback",
        "workers.clicks",
        "workers.serving",
        "workers.process",
        "workers.demo",
        "workers.rollout",
    },
    "export.errors": {"workers.core"},
    "export.data": {"export.errors", "workers.core", "workers.inference"},
    "export.training": {"export.errors", "export.data", "workers.core", "workers.inference"},
    "export.evaluation": {
        "export.errors",
        "export.data",
        "export.training",
        "workers.core",
        "workers.inference",
    },
    "export.standard": {  # standard taxonomies: alignment, review sheet, bundle mapping
        "export.errors",
        "export.data",
        "export.training",
        "workers.core",
        "workers.inference",
    },
    "export": {  # export's top-level modules: the pipeline and the commands
        "export.errors",
        "export.data",
        "export.training",
        "export.evaluation",
        "workers.core",
        "workers.inference",
    },
}
SERVING = ("workers.core", "workers.inference", "workers.kafka", "workers.classify",
           "workers.lifecycle", "workers.feedback", "workers.process",
           "workers.serving", "workers.clicks")  # fmt: skip
HEAVY = ("tensorflow", "keras", "tf2onnx", "sklearn")


@cache
def modules() -> dict[str, Path]:
    """Module name -> file, for every module of the two packages."""
    out: dict[str, Path] = {}
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every module name ``name`` imports (absolute names; relative ones resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of the two packages it imports."""
    known = modules()
    out: dict[str, frozenset[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in _imported(name, path):
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        out[name] = frozenset(targets)
    return out


def external(name: str) -> set[str]:
    """Top-level names of the packages outside prodcat that ``name`` imports."""
    return {i.split(".")[0] for i in _imported(name, modules()[name])} - set(ROOTS)


def layer(name: str) -> str:
    """The subpackage a module belongs to (``export`` for export's top-level modules)."""
    parts = name.split(".")
    if (len(parts) >= 2 and (REPO / parts[0] / parts[1]).is_dir()) or name == "export.errors":
        return ".".join(parts[:2])
    return parts[0]


def test_the_graph_covers_both_packages() -> None:
    names = modules()
    assert "workers.core.events" in names and "export.training.train" in names
    assert sum(len(edges) for edges in graph().values()) > 100


def test_no_import_circle() -> None:
    """Tarjan's strongly connected components: every one is a single module."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_subpackages_depend_only_on_lower_layers(name: str) -> None:
    own = layer(name)
    if name in ("workers", "export"):
        return
    assert own in LAYERS, f"{name}: subpackage {own} is not in LAYERS"
    wrong = sorted(
        target
        for target in graph()[name]
        if layer(target) != own and layer(target) not in LAYERS[own] and target not in ROOTS
    )
    assert not wrong, f"{name} ({own}) imports {wrong}; {own} may import {sorted(LAYERS[own])}"


def test_export_imports_only_core_and_inference_and_workers_never_export() -> None:
    for name, targets in graph().items():
        for target in targets:
            if name.startswith("export"):
                assert target.startswith(("export", "workers.core", "workers.inference")), (
                    f"{name} imports {target}"
                )
            else:
                assert not target.startswith("export"), f"{name} imports {target}"


@pytest.mark.parametrize("name", sorted(n for n in modules() if n.startswith(SERVING)))
def test_serving_never_imports_tensorflow(name: str) -> None:
    heavy = external(name) & set(HEAVY)
    assert not heavy, f"{name} imports {sorted(heavy)}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_long_modules_say_why(name: str) -> None:
    lines = modules()[name].read_text(encoding="utf-8").splitlines()
    if len(lines) > MAX_LINES:
        assert lines[0].startswith(LONG_REASON), (
            f"{name} has {len(lines)} lines: split it, or start it with '{LONG_REASON}<why>'"
        )
