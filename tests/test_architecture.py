"""The package's layering, read from its import statements (docs/architecture.rst).

Every ``import`` and ``from ... import`` of ``he2rna_sklearn`` (function-level ones too) is an
arrow from one unit to another: a unit is a subpackage (``features``) or a top-level module
(``metrics``, ``_io``). Arrows go down the layers only, modules import no cycle, and no
module reaches into another unit's private submodule or private name. And no module is over
450 lines unless its docstring says why.
"""

import ast
import pathlib

import pytest

import he2rna_sklearn

ROOT = pathlib.Path(he2rna_sklearn.__file__).parent
PACKAGE = ROOT.name

#: The layers, bottom up. A unit imports only units of lower layers.
LAYERS = [
    {"_version", "_io", "_torch", "_parallel", "exceptions"},  # foundation
    {"slides", "bags", "metrics", "datasets", "_hub"},  # inputs, containers, hub folders
    {"features", "model"},  # stages that turn them into features, and models
    {"evaluation", "spatial", "plotting", "persistence"},  # outputs
    {"_demo"},
    {"cli"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _modules(root=ROOT):
    """Module name -> (path, is a package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _imports(modules):
    """(importer, imported module, imported name or None, line) for every import."""
    found = []
    for name, (path, is_package) in modules.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                if target.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in modules:  # ``from . import _interop``: a module
                        found.append((name, full, None, node.lineno))
                    else:
                        found.append((name, target, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        found.append((name, alias.name, None, node.lineno))
    return found


def _unit(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def _upward(imports):
    """Arrows from a unit to one of its own layer or above."""
    return [
        f"{src}:{line} imports {dst} ({_unit(src)} is layer {LAYER[_unit(src)]}, "
        f"{_unit(dst)} is layer {LAYER[_unit(dst)]})"
        for src, dst, _, line in imports
        if _unit(src) and _unit(dst) and _unit(src) != _unit(dst)
        if LAYER[_unit(dst)] >= LAYER[_unit(src)]
    ]


def _private_crossings(imports):
    """Imports of another unit's private submodule or private name."""
    crossing = []
    for src, dst, name, line in imports:
        if _unit(src) is None or _unit(src) == _unit(dst):
            continue
        inner = dst.split(".")[2:]  # below the unit: a subpackage's private module
        if any(part.startswith("_") for part in inner):
            crossing.append(f"{src}:{line} imports from private module {dst}")
        if name and name.startswith("_") and not name.startswith("__"):
            crossing.append(f"{src}:{line} imports private name {dst}.{name}")
    return crossing


def _cycles(imports):
    """Import cycles between modules (a module may import its own package)."""
    graph = {}
    for src, dst, _, _ in imports:
        if not src.startswith(dst + "."):
            graph.setdefault(src, set()).add(dst)
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


#: The most lines a module may have, unless its docstring says why in a paragraph that
#: begins with :data:`JUSTIFIED`.
MAX_LINES = 450
JUSTIFIED = f"Over {MAX_LINES} lines:"


def _long_modules(modules, max_lines=MAX_LINES):
    """Modules over ``max_lines`` lines whose docstring does not say why."""
    long = []
    for name, (path, _) in modules.items():
        text = path.read_text()
        n_lines = len(text.splitlines())
        if n_lines > max_lines and JUSTIFIED not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{name}: {n_lines} lines")
    return long


MODULES = _modules()
IMPORTS = _imports(MODULES)


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in MODULES} - {None}
    assert units == set(LAYER), "add the new unit to LAYERS (and to docs/architecture.rst)"


def test_imports_go_down_the_layers():
    assert not _upward(IMPORTS), "\n".join(_upward(IMPORTS))


def test_model_does_not_import_features():
    assert not [i for i in IMPORTS if _unit(i[0]) == "model" and _unit(i[1]) == "features"]


def test_no_private_name_crosses_units():
    assert not _private_crossings(IMPORTS), "\n".join(_private_crossings(IMPORTS))


def test_no_import_cycle():
    assert not _cycles(IMPORTS)


def test_no_module_is_long_without_saying_why():
    long = _long_modules(MODULES)
    assert not long, (
        f"split these modules by job, or say why not in a docstring paragraph beginning "
        f"{JUSTIFIED!r}:\n" + "\n".join(long)
    )


def test_the_length_check_fails_on_a_long_module(tmp_path):
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    body = "x = 1\n" * MAX_LINES
    (package / "_short.py").write_text('"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1))
    (package / "_long.py").write_text('"""Long."""\n' + body)
    (package / "_said.py").write_text(f'"""Long.\n\n{JUSTIFIED} a table.\n"""\n' + body)
    assert _long_modules(_modules(package)) == [f"{PACKAGE}._long: {MAX_LINES + 1} lines"]


@pytest.mark.parametrize(
    "source, check",
    [
        ("from ..cli._inputs import CLIError", _private_crossings),
        ("from ..datasets import _TCGA", _private_crossings),
        ("def f():\n    from ..features import read_bag", _upward),
        ("from . import _b", _cycles),
    ],
)
def test_each_check_fails_on_a_package_built_to_break_it(tmp_path, source, check):
    package = tmp_path / PACKAGE
    for unit in ("cli", "datasets", "features", "model"):
        (package / unit).mkdir(parents=True)
        (package / unit / "__init__.py").write_text("")
        (package / unit / "_inputs.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "model" / "_a.py").write_text(source + "\n")
    (package / "model" / "_b.py").write_text("from . import _a\n")
    imports = _imports(_modules(package))
    assert check(imports)
    assert not check([i for i in imports if i[0] != f"{PACKAGE}.model._a"])
