"""The package's layers: imports point down the stack only (docs: README, Layout).

Every import of a `clustermass` module, at module level or inside a function, is checked
against one ordered list of layers; an import of a higher layer fails with its file and line.
Modules inside one layer may import each other; the leaves import only `errors` and outside
libraries.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clustermass"

#: The stack, top first: a module may import its own layer and any layer below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__", "cli"),
    ("jobs",),
    ("pipeline",),
    ("results",),
    ("mock",),
    ("model",),
    ("images",),
    ("catalogs",),
    ("plots",),
    ("db",),
    ("config", "sky", "cosmology", "profiles"),
    ("errors",),
)
#: The leaves: single modules that import nothing of the package but `errors`.
LEAVES = ("config", "sky", "cosmology", "profiles", "errors")

RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def part_of(module: str) -> str:
    """The layer name of a dotted `clustermass...` module ('clustermass.db.engine' -> 'db')."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every `clustermass` import in the file, wherever it stands."""
    rel = path.relative_to(root.parent).with_suffix("").parts
    package = rel if path.name == "__init__.py" else rel[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            if module == "clustermass":  # `from clustermass import sky`: each name is a module
                found += [(node.lineno, f"clustermass.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, m) for line, m in found if m == "clustermass" or m.startswith("clustermass.")]


def violations(root: Path = PACKAGE) -> list[str]:
    """'file:line: A imports B' for every import against the stack, and unknown layers."""
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        me = rel.parts[1].removesuffix(".py")
        if me == "__init__":
            continue
        if me not in RANK:
            out.append(f"{rel}:1: {me} is in no layer of the stack")
            continue
        for line, module in imported(path, root):
            other = part_of(module)
            if other == me or other == "__init__":
                continue
            if other not in RANK:
                out.append(f"{rel}:{line}: imports {module}, which is in no layer of the stack")
            elif me in LEAVES and other != "errors":
                out.append(f"{rel}:{line}: the leaf {me} imports {module} (leaves import only errors)")
            elif RANK[other] < RANK[me]:
                out.append(f"{rel}:{line}: {me} imports {module}, a layer above it")
    return out


def folder_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Layer -> the other layers it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        me = path.relative_to(root.parent).parts[1].removesuffix(".py")
        for _, module in imported(path, root):
            other = part_of(module)
            if other not in (me, "", "__init__"):
                graph.setdefault(me, set()).add(other)
    return graph


def test_imports_point_down_the_stack():
    found = violations()
    assert not found, "imports against the layering (README, Layout):\n" + "\n".join(found)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph (its nodes in order, the first repeated last), or None."""
    seen: dict[str, int] = {}  # 1 on the path, 2 finished

    def visit(node: str, path: list[str]) -> list[str] | None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in seen and (cycle := visit(nxt, path + [node])):
                return cycle
        seen[node] = 2
        return None

    for node in sorted(graph):
        if node not in seen and (cycle := visit(node, [])):
            return cycle
    return None


def module_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (`from pkg import mod` counts as mod)."""
    files = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for me, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names]
            graph.setdefault(me, set()).update(n for n in names if n in files and n != me)
    return graph


def test_no_cycles_between_layers():
    cycle = find_cycle(folder_graph())
    assert cycle is None, "cycle between layers: " + " -> ".join(cycle or [])


def test_no_cycles_between_modules():
    cycle = find_cycle(module_graph())
    assert cycle is None, "cycle between modules: " + " -> ".join(cycle or [])


def test_cycle_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_checker_sees_function_level_backward_imports(tmp_path):
    pkg = tmp_path / "clustermass"
    (pkg / "db").mkdir(parents=True)
    (pkg / "db" / "engine.py").write_text("def f():\n    from clustermass.cli import app\n")
    (pkg / "config.py").write_text("from clustermass.db import urls\n")
    (pkg / "sky.py").write_text("from . import errors\n")
    found = violations(pkg)
    assert found == [
        "clustermass/config.py:1: the leaf config imports clustermass.db (leaves import only errors)",
        "clustermass/db/engine.py:2: db imports clustermass.cli, a layer above it",
    ]


#: The longest a CLI command function may be, signature and docstring included (lines): a
#: command parses, calls one job (clustermass/jobs/) and renders its summary.
MAX_COMMAND_LINES = 45


def command_lengths(root: Path = PACKAGE / "cli") -> dict[str, int]:
    """'file:function' -> lines of every function registered as a command (`@....command(...)`)."""
    out: dict[str, int] = {}
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
                for d in node.decorator_list
            ):
                out[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1  # type: ignore[operator]
    return out


def test_cli_commands_are_thin():
    lengths = command_lengths()
    assert len(lengths) >= 20  # every command is seen
    long = {name: n for name, n in lengths.items() if n > MAX_COMMAND_LINES}
    assert not long, f"commands longer than {MAX_COMMAND_LINES} lines (move the work into clustermass/jobs/): {long}"
