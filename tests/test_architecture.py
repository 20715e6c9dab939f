"""The package layout is the architecture: imports follow the pipeline, there are no import cycles, and
no module grows past a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "slmlab"

# The pipeline order. A module may import its own level and earlier ones, never a later step. Level 0
# is what every step shares (settings, schemas, the run store, the model runtime); `demo` (generators)
# and `pipeline` (the main job) sit after every step and may use any of them.
LEVELS = {
    "config": 0,
    "schema": 0,
    "actions": 0,
    "runs": 0,
    "runtime": 0,
    "collect": 1,
    "curate": 2,
    "cluster": 3,
    "label": 4,
    "select": 5,
    "specialize": 6,
    "evaluate": 7,
    "route": 8,
    "savings": 9,
    "iterate": 10,
    "demo": 11,
    "pipeline": 12,
}
MAX_LINES = 550  # "no module over ~500 lines": readable end to end


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported slmlab module, at module level?) for every import in a file, also inside functions."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("slmlab"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [(n, id(node) in top) for n in [node.module, *names]]
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names if a.name.startswith("slmlab")]
    return found


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _level(module: str) -> int | None:
    parts = module.split(".")
    return LEVELS.get(parts[1]) if len(parts) > 1 else None


def test_every_top_level_module_has_a_place_in_the_pipeline():
    tops = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    assert tops <= set(LEVELS), f"give {sorted(tops - set(LEVELS))} a level in LEVELS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_step_imports_a_later_step(module):
    mine = _level(module)
    if mine is None:
        return
    later = sorted(
        {imp for imp, _ in _imports(MODULES[module]) if (lvl := _level(imp)) is not None and lvl > mine}
    )
    assert not later, f"{module} (level {mine}) imports later steps: {later}"


def test_no_import_cycles_between_modules():
    graph = {
        m: {imp for imp, top in _imports(p) if top and imp in MODULES and imp != m}
        for m, p in MODULES.items()
    }
    # Importing a package runs its __init__: an edge to "a.b.c" is also an edge to "a.b".
    for m, deps in graph.items():
        graph[m] = deps | {".".join(d.split(".")[:i]) for d in deps for i in range(2, d.count(".") + 1)} - {m}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in MODULES or nxt == node:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                # A package importing its own submodules (re-exports) is not a cycle of design.
                if not all(c.startswith(cycle[0] + ".") or cycle[0].startswith(c) for c in cycle):
                    raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_readable(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines: split it by concern (limit {MAX_LINES})"
