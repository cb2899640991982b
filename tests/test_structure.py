"""The house, measured from the code: no import circles, backends shaped like third-party
plugins (nothing private of the core, no other backend, no environment switches), and no
function-local imports in the core except optional dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"qcnn": ROOT / "qcnn", "qcnn_numpy": ROOT / "backends" / "qcnn_numpy",
            "qcnn_numba": ROOT / "backends" / "qcnn_numba", "qcnn_cffi": ROOT / "backends" / "qcnn_cffi"}
BACKENDS = ("qcnn_numpy", "qcnn_numba", "qcnn_cffi")
#: Imports that may stay inside functions: optional dependencies, and the lazy load of a backend.
OPTIONAL = ("onnx", "onnxruntime", "torch", "openvino", "matplotlib", "PIL", "pytest", "ncnn", "pnnx", "numba")


def _modules() -> dict[str, Path]:
    mods = {}
    for top, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [top, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, bool, ast.stmt]]:
    """(absolute module imported, at module level?, node) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    top_level = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top_level, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.append((full if full in MODULES else base, id(node) in top_level, node))
    return out


def _graph() -> dict[str, set[str]]:
    """Module -> modules its import statements load (a package's __init__ included, unless it
    is an ancestor of the importer, which is being initialised already)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, _, _ in _imports(name, path):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in MODULES and dep != name and not name.startswith(dep + "."):
                    graph[name].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_the_house():
    assert {"qcnn.plugin._contract", "qcnn.model._spec", "qcnn_cffi.qconv", "qcnn_numba.layers"} <= set(MODULES)
    assert "qcnn.model" in _graph()["qcnn.plugin._contract"]


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_use_only_the_public_core_and_no_other_backend(backend):
    bad = []
    for name, path in MODULES.items():
        if not name.startswith(backend):
            continue
        for target, _, node in _imports(name, path):
            top = target.split(".")[0]
            private = any(p.startswith("_") for p in target.split(".")[1:])
            if (top == "qcnn" and private) or (top in BACKENDS and top != backend):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert bad == []


def _environ_reads(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
    return lines


#: Where a backend may look at the environment: its build, and its load-time choices.
ENV_ALLOWED = {"qcnn_cffi._build", "qcnn_numba.plugin"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_read_no_environment_switches(backend):
    reads = [f"{MODULES[m].relative_to(ROOT)}:{line}" for m in MODULES if m.startswith(backend)
             and m not in ENV_ALLOWED for line in _environ_reads(MODULES[m])]
    assert reads == []


def test_core_has_no_function_local_imports():
    bad = []
    for name, path in MODULES.items():
        if not name.startswith("qcnn.") and name != "qcnn":
            continue
        for target, top_level, node in _imports(name, path):
            if not top_level and target.split(".")[0] not in OPTIONAL and not isinstance(
                    getattr(node, "parent", None), ast.If):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target} inside a function")
    assert bad == []
