"""Layers that only point down: schemas <- teacher_cache <- tasks <- students <- reports <- flows.

An AST scan of every module of the six packages (module- and function-level imports, `import x` and
`from x import y`, relative imports resolved) fails on an import of a higher layer, on a cycle between
project modules, and on Prefect imported outside flows/. Each failure names file:line and the import.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("schemas", "teacher_cache", "tasks", "students", "reports", "flows")
PREFECT = ("prefect", "prefect_dask", "prefect_ray")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the layer packages (a package is its __init__)."""
    found = {}
    for pkg in LAYERS:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = f.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return found


def imports(name: str, file: Path, known: set[str]) -> list[tuple[int, str, str]]:
    """(line, the import as written, the module it loads) for every import in the file, at any depth.
    `from a.b import c` loads a.b.c when that is a module, else a.b."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, f"import {a.name}", a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            written = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            targets = {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
            out += [(node.lineno, written, t) for t in sorted(targets)]
    return sorted(out)


def layer(module: str) -> int | None:
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself), Tarjan's."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(comp) > 1 or v in edges.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def violations(root: Path) -> list[str]:
    """Every upward import, cycle and Prefect import outside flows/, as `file:line: import ... (why)`."""
    mods = modules(root)
    problems, edges, where = [], {}, {}
    for name, file in mods.items():
        rel = file.relative_to(root)
        for line, written, target in imports(name, file, set(mods)):
            at = f"{rel}:{line}: {written}"
            if target.split(".")[0] in PREFECT and layer(name) != LAYERS.index("flows"):
                problems.append(f"{at} (prefect outside flows/)")
            if layer(target) is not None and layer(target) > layer(name):
                problems.append(f"{at} ({LAYERS[layer(name)]} may not import {LAYERS[layer(target)]})")
            if target in mods and target != name:
                edges.setdefault(name, set()).add(target)
                where.setdefault((name, target), at)
    for comp in cycles(edges):
        members = set(comp)
        links = [where[(a, b)] for a in comp for b in sorted(edges.get(a, ())) if b in members]
        problems.append(f"import cycle between {', '.join(comp)}: " + "; ".join(links))
    return problems


def test_layers_only_point_down():
    problems = violations(ROOT)
    assert not problems, "\n".join(problems)


def plant(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for pkg in LAYERS:
        (root / pkg).mkdir(exist_ok=True)
        (root / pkg / "__init__.py").touch()
    return root


def test_the_scan_finds_an_upward_import_a_cycle_and_prefect(tmp_path):
    root = plant(tmp_path, {
        "tasks/low.py": "def f():\n    from students.high import g\n",  # upward, hidden in a function
        "students/high.py": "def g(): ...\n",
        "students/a.py": "from students import b\n",
        "students/b.py": "def h():\n    from .a import x\n",  # a relative import closing a cycle
        "reports/ui.py": "import prefect\n",
        "flows/ok.py": "import prefect\nfrom reports import ui\n",  # allowed: flows is the top
    })
    found = violations(root)
    assert any(p.startswith("tasks/low.py:2: from students.high import g (tasks may not import students)")
               for p in found), found
    assert any(p.startswith("import cycle between students.a, students.b:") and "students/b.py:2" in p
               for p in found), found
    assert any(p.startswith("reports/ui.py:1: import prefect (prefect outside flows/)") for p in found), found
    assert not any(p.startswith("flows/") for p in found), found
    assert len(found) == 3, found
