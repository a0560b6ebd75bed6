"""The floors of gradest, read from the code's own imports (those inside functions included).

Each module belongs to one floor; a floor may import only the floors named in `MAY_IMPORT`
(docs/design.md draws them). Besides:

* no import cycle between modules, counting imports inside functions;
* nothing inside the package imports the package facade ``gradest`` itself (``import gradest``
  then ``gradest.train``): it imports the module that defines the name, so that the facade's
  lazy attributes never close a cycle (benchmarks and tools are users of the package: they may);
* no module above ``gradest/backends/`` imports a framework (torch, jax, ...); developer tools
  and the hand-written references of ``benchmarks/`` that declare ``FRAMEWORK = "<name>"``
  are the exceptions.

Plugin discovery by ``importlib.import_module("gradest.estimators")`` is a string, not an
import: it is not counted.

The checker runs on any copy of the tree (``import_graph(root)``), so the test below that plants
a violation in a copy proves that the rules can fail.
"""
from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: source folder -> the package its modules are installed as (pyproject's package-dir)
FOLDERS = {"gradest": "gradest", "estimators": "gradest.estimators", "tasks": "gradest.tasks",
           "reports": "gradest.reports", "benchmarks": "benchmarks", "tools": "tools"}

#: the ground floor: the contracts and the pieces plugins are written with
GROUND = ("gradest.estimator", "gradest.task", "gradest.distributions", "gradest.noise", "gradest.validation",
          "gradest.relaxations", "gradest.labels", "gradest.registry", "gradest.plugins", "gradest.cache",
          "gradest.compiled", "gradest.backends")

#: floor -> the floors its modules may import
MAY_IMPORT = {
    "ground": {"ground"},
    "estimators": {"ground", "estimators"},
    "tasks": {"ground", "tasks"},
    "harness": {"ground", "harness"},
    "facade": {"ground", "harness", "kinds"},
    "kinds": {"ground", "harness", "kinds"},
    "presets": {"ground", "harness", "kinds", "presets"},
    "reports": {"ground", "harness", "kinds", "presets", "reports"},
    "cli": {"ground", "harness", "kinds", "presets", "reports", "cli", "facade"},
    "benchmarks": {"ground", "harness", "kinds", "benchmarks", "facade"},
    "tools": None,  # developer tools may import anything
}

FRAMEWORKS = ("torch", "jax", "jaxlib", "optax", "flax", "functorch", "mlx")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def floor_of(module: str) -> str:
    """The floor of a module of the tree."""
    if module == "gradest":
        return "facade"
    if any(_within(module, g) for g in GROUND):
        return "ground"
    for prefix, floor in (("gradest.estimators", "estimators"), ("gradest.tasks", "tasks"),
                          ("gradest.kinds", "kinds"), ("gradest.presets", "presets"),
                          ("gradest.reports", "reports"), ("gradest.cli", "cli"),
                          ("benchmarks", "benchmarks"), ("tools", "tools")):
        if _within(module, prefix):
            return floor
    return "harness"


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every Python file of the tree's source folders."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(root / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _imported(module: str, path: Path, node) -> list[str]:
    """The dotted names an import statement asks for (a name may be a module or an attribute)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's package
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, bool]]:
    """(module -> modules of the tree it imports, module -> frameworks it imports,
    module -> whether it declares ``FRAMEWORK``)."""
    known = modules(root)
    edges, frameworks, declares = {}, {}, {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out, fw = set(), set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = _imported(module, path, node)
            if isinstance(node, ast.ImportFrom):
                base, attributes = names[-1], names[:-1]
                # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
                targets = [a for a in attributes if a in known] or [base]
                if any(a not in known for a in attributes) and base in known:
                    targets.append(base)
            else:
                targets = names
            for target in targets:
                top = target.split(".")[0]
                if top in FRAMEWORKS:
                    fw.add(top)
                    continue
                # the longest prefix that is a module of the tree
                parts = target.split(".")
                while parts and ".".join(parts) not in known:
                    parts.pop()
                if parts and ".".join(parts) != module:
                    out.add(".".join(parts))
        edges[module], frameworks[module] = out, fw
        declares[module] = any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "FRAMEWORK"
                                                                  for t in n.targets) for n in tree.body)
    return edges, frameworks, declares


def floor_violations(root: Path) -> list[str]:
    """Every import that breaks a rule of the module docstring, as readable lines."""
    edges, frameworks, declares = import_graph(root)
    problems = []
    for module in sorted(edges):
        floor = floor_of(module)
        allowed = MAY_IMPORT[floor]
        for target in sorted(edges[module]):
            if target == "gradest" and _within(module, "gradest"):
                if module != "gradest":
                    problems.append(f"{module} imports the package facade `gradest`: import the module that "
                                    f"defines the name instead")
                continue
            if allowed is not None and floor_of(target) not in allowed:
                problems.append(f"{module} ({floor}) imports {target} ({floor_of(target)}): "
                                f"{floor} may import only {', '.join(sorted(allowed))}")
        if frameworks[module] and floor not in ("tools",) and not _within(module, "gradest.backends") \
                and not (floor == "benchmarks" and declares[module]):
            problems.append(f"{module} imports {', '.join(sorted(frameworks[module]))}: only gradest/backends/, "
                            f"tools/ and benchmark references that declare FRAMEWORK may")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                found.append(_cycle_in(sorted(component), edges))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _cycle_in(component: list[str], edges) -> list[str]:
    """A closed path through the component's first module (breadth-first, shortest)."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return component


@functools.lru_cache(maxsize=None)
def _violations_of_the_tree() -> frozenset:
    return frozenset(floor_violations(ROOT))


def test_the_floors_hold():
    problems = sorted(_violations_of_the_tree())
    assert not problems, "the floors of docs/design.md are broken:\n" + "\n".join(problems)


def test_every_module_is_read():
    found = modules(ROOT)
    assert "gradest.estimator" in found and "gradest.estimators.reinforce" in found
    assert "gradest.reports" in found and "gradest.tasks.bandit" in found
    assert floor_of("gradest.estimators.reinforce") == "estimators"
    assert floor_of("gradest.backends.torch") == "ground"
    assert floor_of("gradest.sweep.run") == "harness"


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for folder in FOLDERS:
        if (ROOT / folder).exists():
            shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("file, planted, expected", [
    ("estimators/reinforce.py", "\ndef _planted():\n    from gradest.sweep import run\n",
     "gradest.estimators.reinforce (estimators) imports gradest.sweep.run (harness)"),
    ("tasks/bandit.py", "\nfrom gradest.estimators import reinforce\n",
     "gradest.tasks.bandit (tasks) imports gradest.estimators.reinforce (estimators)"),
    ("gradest/training.py", "\ndef _planted():\n    import gradest.reports\n",
     "gradest.training (harness) imports gradest.reports (reports)"),
    ("gradest/noise.py", "\ndef _planted():\n    from gradest.training import train\n",
     "gradest.noise (ground) imports gradest.training (harness)"),
    ("gradest/labels.py", "\ndef _planted():\n    import torch\n", "gradest.labels imports torch"),
    ("gradest/validation.py", "\ndef _planted():\n    import gradest\n",
     "gradest.validation imports the package facade `gradest`"),
    ("gradest/labels.py", "\ndef _planted():\n    from gradest import validation\n", "import cycle: "),
])
def test_a_planted_violation_fails(tmp_path, file, planted, expected):
    root = _copy_tree(tmp_path)
    if "import cycle" in expected:  # labels -> validation -> labels
        (root / "gradest/validation.py").write_text((root / "gradest/validation.py").read_text()
                                                    + "\ndef _planted_back():\n    from gradest import labels\n")
    (root / file).write_text((root / file).read_text() + planted)
    new = set(floor_violations(root)) - _violations_of_the_tree()  # the copy is the tree but for the plant
    assert any(expected in line for line in new), f"no violation like {expected!r} among {sorted(new)}"
