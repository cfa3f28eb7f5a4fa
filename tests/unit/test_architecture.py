"""The shape of the code, checked: no import cycles; the core imports no plugin and no backend library;
plugins reach each other only through public names (seams), never another plugin's private ones."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"ml_framework": REPO / "framework", "ml_framework.plugins": REPO / "plugins"}
BACKEND_LIBRARIES = {"feast", "bentoml", "_bentoml_impl", "_bentoml_sdk", "lightgbm", "torch", "alibi_detect",
                     "pandas", "numpy", "pyarrow", "pandera", "scipy", "redis", "sklearn", "dask", "distributed"}


def _modules() -> dict[str, Path]:
    mods = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([package] + parts)] = path
    return mods


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(sub) for sub in ast.walk(node))
    out = []
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            out.append((target, [a.name for a in node.names], node.lineno))
    return out


def _owner(name: str) -> str | None:
    """The module of MODULES that `name` (a module, or module.attribute) refers to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _plugin_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if module.startswith("ml_framework.plugins.") and len(parts) > 2 else None


def test_no_import_cycles():
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target, names, _ in _imports(module, path):
            for name in [target] + [f"{target}.{n}" for n in names]:
                owner = _owner(name)
                if owner and owner != module and not module.startswith(owner + "."):
                    edges[module].add(owner)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_core_imports_no_plugin_and_no_backend_library():
    offences = []
    for module, path in MODULES.items():
        if module.startswith("ml_framework.plugins"):
            continue
        for target, _, line in _imports(module, path):
            if target.startswith("ml_framework.plugins") or target.split(".")[0] in BACKEND_LIBRARIES:
                offences.append(f"{path.relative_to(REPO)}:{line}: imports {target}")
    assert offences == []


def test_plugins_use_only_public_names_of_other_plugins():
    offences = []
    for module, path in MODULES.items():
        mine = _plugin_of(module)
        if mine is None:
            continue
        for target, names, line in _imports(module, path):
            owner = _owner(target)
            theirs = _plugin_of(owner) if owner else None
            if theirs is None or theirs == mine or theirs == "compat":
                continue
            private = [n for n in names if n.startswith("_")] + [p for p in target.split(".") if p.startswith("_")]
            if private:
                offences.append(f"{path.relative_to(REPO)}:{line}: imports private {', '.join(private)} of plugin {theirs}")
        # `module._private` through an imported module object of another plugin
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if _owner(full) == full and _plugin_of(full) not in (None, mine):
                        aliases[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and _owner(alias.name) == alias.name and _plugin_of(alias.name) not in (None, mine):
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_")):
                offences.append(f"{path.relative_to(REPO)}:{node.lineno}: uses private {node.attr} of {aliases[node.value.id]}")
    assert offences == [], "\n".join(offences)
