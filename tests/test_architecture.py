"""The package keeps the shape its layout promises: commands out of the library, imports at the
top of library modules, small modules, and a command line that starts without the heavy stack.

The layers themselves are import-linter contracts in pyproject.toml (``lint-imports``, run by
``make test``); these tests check what import-linter cannot see.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "melodex"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 450
HEAVY = ("torch", "numpy", "pandas", "pyarrow", "umap", "sklearn", "scipy", "matplotlib", "plotly", "soundfile", "av")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _imports_inside_functions(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines += [n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(set(lines))


@pytest.mark.parametrize("path", [p for p in MODULES if "commands" not in p.parts], ids=_relative)
def test_library_modules_import_at_the_top(path):
    """Deferred imports belong to commands/ only, where they keep --help instant."""
    lines = _imports_inside_functions(ast.parse(path.read_text()))
    assert not lines, f"{_relative(path)} imports inside functions at lines {lines}"


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_MODULE_LINES, f"{_relative(path)} has {n} lines (at most {MAX_MODULE_LINES})"


def test_every_command_module_has_add_arguments_and_run_and_a_docstring():
    from melodex.commands import COMMANDS, load

    for name in COMMANDS:
        module = load(name)
        assert callable(module.add_arguments) and callable(module.run), name
        assert module.__doc__ and "TODO" not in module.__doc__, f"{name}: no docstring for --help"


def test_no_library_module_defines_command_functions():
    """add_arguments/run live in commands/ and nowhere else."""
    for path in MODULES:
        if "commands" in path.parts:
            continue
        names = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert not names & {"add_arguments", "run"}, f"{_relative(path)} defines command functions"


def test_every_error_class_lives_in_errors_py():
    for path in MODULES:
        if path.name == "errors.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)} | {
                    b.attr for b in node.bases if isinstance(b, ast.Attribute)}
                assert not any(b.endswith("Error") for b in bases), \
                    f"{_relative(path)}: {node.name} is an error class outside melodex/errors.py"


def test_building_the_parser_imports_nothing_heavy():
    code = ("import sys; import melodex.cli as c; c.get_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"melodex --help imports {out.stdout.strip()}"


def test_the_public_names_still_import_from_melodex():
    import melodex

    for name in melodex.__all__:
        assert getattr(melodex, name) is not None, name


def test_no_import_cycle_among_melodex_modules():
    """Module by module, not only between sibling packages: no melodex module reaches itself.

    Imports under ``if TYPE_CHECKING:`` are left out: they never run."""

    grimp = pytest.importorskip("grimp")  # import-linter's own graph builder
    graph = grimp.build_graph("melodex", exclude_type_checking_imports=True)
    modules = sorted(m for m in graph.modules if m.startswith("melodex"))
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i.startswith("melodex") and i != m)
             for m in modules}
    cycles = [component for component in _strongly_connected(modules, edges) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the strongly connected components of a directed graph."""

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components
