"""The import contract of llmarch's layers, read from the source (AST) of every module of the package.

    core < catalog < calc < serving < reference < bench < report < cli

A module imports only from its own layer and the layers below it, counting imports inside functions (lazy
imports are still dependencies). The facade `llmarch/__init__.py` is for users: nothing inside the package
imports it. The calculators (core, catalog, calc, serving) never import torch, rich, typer or matplotlib, and
numpy/pandas only inside a function; torch is imported at module level only in reference/ and bench/; no two
sub-packages import each other. The CLI parses, calls the library and renders: it never imports the formula
modules (calc.params, calc.flops, calc.memory: it takes their numbers from records and estimates) nor a private
name (`_x`) of another layer, and it formats numbers only through `llmarch.report.format`.
A subprocess then imports every torch-free module found by walking the package and checks torch stays unloaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llmarch"
LAYERS = ("core", "catalog", "calc", "serving", "reference", "bench", "report", "cli")
#: Loose modules at the top and the layer each belongs to (_version is a leaf everybody may read).
TOP_MODULES = {"_version": "core", "__main__": "cli"}
CALCULATOR_LAYERS = ("core", "catalog", "calc", "serving")
NEVER_IN_CALCULATORS = ("torch", "fvcore", "rich", "typer", "matplotlib")
LAZY_ONLY_IN_CALCULATORS = ("numpy", "pandas")
TORCH_AT_MODULE_LEVEL = ("reference", "bench")
FORMULA_MODULES = ("llmarch.calc.params", "llmarch.calc.flops", "llmarch.calc.memory")


@dataclass(frozen=True)
class Import:
    module: str  # the module's full dotted name: llmarch.calc.cost, torch.nn, ...
    names: tuple[str, ...]  # names taken from it (from-imports), () for `import x`
    line: int
    lazy: bool  # inside a function, or under `if TYPE_CHECKING:` (not imported when the module is)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports_of(path: Path) -> list[Import]:
    """Every import statement of a file with its absolute module name (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True  # for annotations only: never imported at run time
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, (), child.lineno, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.append(Import(base, tuple(a.name for a in child.names), child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    return found


def layer_of(module: str) -> str | None:
    """The layer of an llmarch module name ('llmarch.calc.cost' -> 'calc'); 'facade' for the package itself."""
    parts = module.split(".")
    if parts[0] != "llmarch":
        return None
    if len(parts) == 1:
        return "facade"
    return TOP_MODULES.get(parts[1], parts[1])


def targets(imp: Import) -> list[str]:
    """The llmarch modules an import depends on: `from llmarch import calc` depends on llmarch.calc."""
    if imp.module == "llmarch" and imp.names:
        known = set(LAYERS) | set(TOP_MODULES)
        return [f"llmarch.{n}" if n in known else "llmarch" for n in imp.names]
    return [imp.module]


ALL_IMPORTS = {path: imports_of(path) for path in package_files()}


def _where(path: Path, imp: Import) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{imp.line} imports {imp.module}"


def test_the_walk_finds_every_layer() -> None:
    layers = {layer_of(module_name(p)) for p in ALL_IMPORTS}
    assert set(LAYERS) <= layers
    assert len(ALL_IMPORTS) > 40


def test_no_layer_imports_one_above_it_and_nothing_imports_the_facade() -> None:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    bad = []
    for path, imports in ALL_IMPORTS.items():
        own = layer_of(module_name(path))
        if own == "facade":
            continue
        for imp in imports:
            for target in targets(imp):
                theirs = layer_of(target)
                if theirs == "facade" or (theirs is not None and rank[theirs] > rank[own]):
                    bad.append(f"{_where(path, imp)} ({own} -> {theirs})")
    assert not bad, "\n".join(bad)


def test_calculators_never_import_torch_rich_typer_matplotlib_and_numpy_pandas_only_lazily() -> None:
    bad = []
    for path, imports in ALL_IMPORTS.items():
        if layer_of(module_name(path)) not in CALCULATOR_LAYERS:
            continue
        for imp in imports:
            root = imp.module.split(".")[0]
            if root in NEVER_IN_CALCULATORS or (root in LAZY_ONLY_IN_CALCULATORS and not imp.lazy):
                bad.append(_where(path, imp))
    assert not bad, "\n".join(bad)


def test_torch_at_module_level_only_in_reference_and_bench() -> None:
    bad = [
        _where(path, imp)
        for path, imports in ALL_IMPORTS.items()
        for imp in imports
        if imp.module.split(".")[0] in ("torch", "fvcore")
        and not imp.lazy
        and layer_of(module_name(path)) not in TORCH_AT_MODULE_LEVEL
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_sub_packages() -> None:
    graph: dict[str, set[str]] = {layer: set() for layer in LAYERS}
    for path, imports in ALL_IMPORTS.items():
        own = layer_of(module_name(path))
        for imp in imports:
            for target in targets(imp):
                theirs = layer_of(target)
                if own in graph and theirs in graph and theirs != own:
                    graph[own].add(theirs)
    state: dict[str, str] = {}

    def cycle_from(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*trail, node, nxt]
            if nxt not in state and (found := cycle_from(nxt, [*trail, node])):
                return found
        state[node] = "done"
        return None

    for layer in LAYERS:
        if layer not in state:
            cycle = cycle_from(layer, [])
            assert cycle is None, " -> ".join(cycle or ())


def _attributes_used(path: Path, aliases: dict[str, str]) -> list[tuple[str, str, int]]:
    """(module, attribute, line) for every `alias.attribute` where alias names an imported llmarch module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (aliases[node.value.id], node.attr, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
    ]


def test_the_cli_imports_no_formula_internals() -> None:
    bad = []
    for path, imports in ALL_IMPORTS.items():
        if layer_of(module_name(path)) != "cli":
            continue
        aliases: dict[str, str] = {}
        for imp in imports:
            modules = targets(imp)
            if imp.names and imp.module.startswith("llmarch."):
                # `from llmarch.calc import cost`: a sub-module; `from llmarch.calc.cost import x`: a name.
                for name in imp.names:
                    sub = f"{imp.module}.{name}"
                    if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists():
                        modules.append(sub)
                        aliases[name] = sub
            for module in modules:
                if module.startswith(FORMULA_MODULES):
                    bad.append(f"{_where(path, imp)}: take the number from a record or an estimate")
            if imp.module.startswith("llmarch.") and layer_of(imp.module) != "cli":
                private = [n for n in imp.names if n.startswith("_") and n != "__version__"]
                bad += [f"{_where(path, imp)}: private name {n}" for n in private]
                if imp.module.startswith("llmarch.core.units") and any(n.startswith("format_") for n in imp.names):
                    bad.append(f"{_where(path, imp)}: format through llmarch.report.format")
        for module, attribute, line in _attributes_used(path, aliases):
            if layer_of(module) != "cli" and attribute.startswith("_"):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} uses {module}.{attribute} (private)")
    assert not bad, "\n".join(bad)


def test_the_cli_draws_nothing_itself() -> None:
    """Plots are drawn in llmarch.report.plots (one home for figures); the CLI only calls them."""
    bad = [
        _where(path, imp)
        for path, imports in ALL_IMPORTS.items()
        if layer_of(module_name(path)) == "cli"
        for imp in imports
        if imp.module.split(".")[0] == "matplotlib"
    ]
    assert not bad, "\n".join(bad)


def torch_free_modules() -> list[str]:
    """Every module outside reference/ and bench/ (whose harness and kernels import torch), plus bench.counts."""
    names = [module_name(p) for p in package_files() if p.name != "__main__.py"]
    return sorted(
        n for n in names if layer_of(n) not in TORCH_AT_MODULE_LEVEL or n in ("llmarch.bench", "llmarch.bench.counts")
    )


def test_torch_free_modules_never_load_torch() -> None:
    """Importing every torch-free module (found by walking the package) leaves torch, and matplotlib, unloaded."""
    modules = torch_free_modules()
    assert "llmarch.calc.cost" in modules and "llmarch.report.document" in modules and "llmarch.cli" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'fvcore', 'matplotlib') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", modules


def test_readme_layout_names_every_sub_package() -> None:
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert set(packages) == set(LAYERS)
    missing = [name for name in packages if f"llmarch/{name}/" not in layout]
    assert not missing, f"README's Layout section leaves out {missing}"


def test_no_function_over_100_lines() -> None:
    """Issue 10's rule for the whole package: a function longer than 100 lines is split (signature included)."""
    long = []
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
                if length > 100:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "\n".join(long)
