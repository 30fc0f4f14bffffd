"""The package's shape, checked from its source: no import cycles, config a leaf, edges kept.

Every module of `hotncold/` is parsed (never imported) and every import of a hotncold module is
an edge: at module level, inside functions, under `if TYPE_CHECKING:`, and the "module:Class"
strings the registries import by name. Importing `hotncold.a.b` also runs `hotncold/a/__init__`,
so it is an edge to `hotncold.a` too, unless `hotncold.a` is a package of the importing module
itself (a package always initialises before its own modules). A cycle anywhere fails the test
and is printed; since imports inside functions count, none can dodge one.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "hotncold"
REGISTRY_ENTRY = re.compile(r"^(hotncold(?:\.\w+)+):\w+$")

CONFIG_LEAF = {"hotncold", "hotncold.config", "hotncold.config.schemas", "hotncold.config.errors"}
COMMANDS = {"__main__", "status", "merge", "prm_server", "push", "prefetch", "doctor", "rescore"}
"""The modules at the top of hotncold/: each is a `python -m` command (with `analyze/` and
`train_prm/`, packages whose __main__ is one)."""
HYDRA_EDGE = {
    "hotncold.__main__",
    "hotncold.prm_server",
    "hotncold.rescore",
    "hotncold.train_prm.__main__",
    "hotncold.config.hydra",
    "hotncold.cluster.sweep",
    "hotncold.cluster.sweep_grids",
    "hotncold.cluster.hydra_private",
    "hotncold.cluster.prefetch",
    "hotncold.doctor",
}
"""The only modules that import Hydra: the commands, the registration, the sweep tools."""
LAZY_IMPORTS: set[tuple[str, str]] = set()
"""Imports of hotncold modules inside functions, (importer, imported), each for a reason given
here: only to put off loading a heavy library, never to dodge a cycle. None is needed today."""


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)
    """hotncold modules named by its import statements (and registry strings)."""
    lazy: set[str] = field(default_factory=set)
    """The ones imported inside a function."""
    external: set[str] = field(default_factory=set)
    """Other top-level modules and packages it imports (`vllm`, `hydra._internal...`)."""

    @property
    def package(self) -> str:
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]

    @property
    def ancestors(self) -> set[str]:
        parts = self.name.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}


def modules_of(package: Path) -> dict[str, Module]:
    """Every module under the folder of package `package` (its name is the folder's name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        found[name] = Module(name, path, ast.parse(path.read_text(), filename=str(path)))
    for module in found.values():
        _read_imports(module, found, package.name)
    return found


def _read_imports(module: Module, known: dict[str, Module], root: str) -> None:
    functions = [
        n for n in ast.walk(module.tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    inside = {id(n) for f in functions for n in ast.walk(f)}
    for node in ast.walk(module.tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package upwards
                up = module.package.split(".")[: len(module.package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            entry = REGISTRY_ENTRY.match(node.value)
            if entry and entry.group(1) in known:
                targets = [entry.group(1)]
        for target in targets:
            if target == root or target.startswith(root + "."):
                module.imports.add(target)
                if id(node) in inside:
                    module.lazy.add(target)
            else:
                module.external.add(target)


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """module -> the modules importing it runs, the implicit package __init__s included."""
    graph: dict[str, set[str]] = {}
    for module in modules.values():
        edges = set()
        for target in module.imports:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in modules and step != module.name and step not in module.ancestors:
                    edges.add(step)
        graph[module.name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path back to its start) for every strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(sorted(group), graph) for group in groups]


def _path_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A cycle from the group's first module back to itself (breadth-first, so the shortest)."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return group


@pytest.fixture(scope="module")
def package() -> dict[str, Module]:
    return modules_of(PACKAGE)


def test_no_module_imports_itself_back_through_others(package):
    found = cycles(import_graph(package))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_cycle_check_sees_function_level_implicit_and_registry_imports(tmp_path):
    """The check itself: a synthetic package with one cycle of each kind it must catch."""
    pkg = tmp_path / "hotncold"
    files = {
        "__init__.py": "",
        # a cycle through an import inside a function
        "a.py": "def f():\n    from hotncold import b\n",
        "b.py": "import hotncold.a\n",
        # a cycle through a package's __init__: importing hotncold.p.x runs hotncold/p/__init__
        "p/__init__.py": "from hotncold.c import thing\n",
        "p/x.py": "",
        "c.py": "from hotncold.p.x import y\nthing = 1\n",
        # a cycle through a registry's "module:Class" string, imported by name
        "r.py": 'REGISTRY = {"k": "hotncold.s:Impl"}\n',
        "s.py": "import typing\nif typing.TYPE_CHECKING:\n    from hotncold.r import R\n",
        # no cycle: a package's own modules import their package freely
        "q/__init__.py": "from hotncold.q.z import z\n",
        "q/z.py": "from hotncold.q.w import w\nz = 1\n",
        "q/w.py": "w = 1\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    found = {frozenset(c) for c in cycles(import_graph(modules_of(pkg)))}
    assert found == {
        frozenset({"hotncold.a", "hotncold.b"}),
        frozenset({"hotncold.p", "hotncold.c"}),
        frozenset({"hotncold.r", "hotncold.s"}),
    }


def test_config_schemas_are_a_leaf(package):
    leaf = [m for m in package.values() if m.name in CONFIG_LEAF]
    assert {m.name for m in leaf} == CONFIG_LEAF
    for module in leaf:
        assert module.imports <= CONFIG_LEAF, f"{module.name} imports {module.imports}"
        assert not {e for e in module.external if e.split(".")[0] in ("hydra", "omegaconf")}
    # the trainer's schemas stand on the leaf alone
    assert package["hotncold.train_prm.config"].imports <= CONFIG_LEAF


def test_only_commands_sit_at_the_top_of_the_package(package):
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == COMMANDS
    commands = [f"hotncold.{name}" for name in COMMANDS] + [
        f"{m.package}.__main__" for m in package.values() if m.path.name == "__main__.py"
    ]
    for name in commands:
        module = package[name]
        command = "hotncold" if name == "hotncold.__main__" else name.removesuffix(".__main__")
        doc = ast.get_docstring(module.tree) or ""
        assert doc.startswith(f"command: `python -m {command}"), f"{name}: {doc[:60]!r}"
        assert 'if __name__ == "__main__":' in module.path.read_text(), name


def test_hydra_stays_at_the_edges(package):
    for module in package.values():
        hydra = {e for e in module.external if e.split(".")[0] == "hydra"}
        if module.name not in HYDRA_EDGE:
            assert not hydra, f"{module.name} imports {hydra}"
        private = {e for e in hydra if e.startswith("hydra._internal")}
        if module.name != "hotncold.cluster.hydra_private":
            assert not private, f"{module.name} uses Hydra's private API: {private}"
        if "hotncold.config.hydra" in module.imports:
            assert module.name in HYDRA_EDGE, f"{module.name} registers the Hydra schemas"


def test_vllm_is_imported_by_the_engine_alone(package):
    users = {m.name for m in package.values() if any(e.split(".")[0] == "vllm" for e in m.external)}
    assert users == {"hotncold.engine.vllm_engine"}


def test_test_helpers_are_never_used_by_a_run(package):
    users = {
        m.name
        for m in package.values()
        if any(t.startswith("hotncold.testing") for t in m.imports)
        and not m.name.startswith("hotncold.testing")
    }
    # the doctor's smoke run builds tiny models to run every engine path; no run imports it
    assert users == {"hotncold.diagnostics.smoke"}
    runs = {"hotncold.experiment.run", "hotncold.__main__", "hotncold.prm_server"}
    assert not any("hotncold.diagnostics" in package[name].imports for name in runs)


def test_imports_inside_functions_are_the_known_lazy_ones(package):
    lazy = {(m.name, target) for m in package.values() for target in m.lazy}
    assert lazy == LAZY_IMPORTS


def test_checking_a_config_loads_no_model_library():
    """Validation runs before anything loads: its imports pull in no engine, model or data
    library (the components' rules live apart from what they configure)."""
    code = (
        "import sys\n"
        "from hotncold.config import Config\n"
        "from hotncold.experiment.validate import validate\n"
        "validate(Config())\n"
        "heavy = ('vllm', 'torch', 'transformers', 'sympy', 'datasets', 'pandas', 'hydra')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
