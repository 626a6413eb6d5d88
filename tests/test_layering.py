"""The import graph: every import points down the layers, and no module imports itself
back round a cycle. Parses the source (ast), imports nothing: cheap.

Layers, bottom to top (README "Layout"):
  1 the data contract: edge order, splits, errors, normalisation, files (no TensorFlow)
  2 data_pipelines: simulators, readers, storage, tf.data
  3 the nri_tf model library
  4 trainers
  5 the applications, nri_tf.cli
The ``python -m`` shims (`ENTRY_POINTS`) sit above everything and nothing imports them.
Function-local imports count like any other: hiding one in a function hides no edge.
"""

from __future__ import annotations

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("data_pipelines", "nri_tf", "trainers")
CONTRACT = {"data_pipelines.contract", "data_pipelines.errors", "data_pipelines.normalisation",
            "data_pipelines.files", "data_pipelines.tf_startup"}
# python -m data_pipelines.generate is no shim: its command line lives in the data layer.
ENTRY_POINTS = {"nri_tf.train", "nri_tf.evaluate", "nri_tf.export", "nri_tf.experiments", "nri_tf.refit"}
LAYER_NAMES = {1: "data contract", 2: "data_pipelines", 3: "nri_tf model library", 4: "trainers",
               5: "nri_tf.cli", 6: "entry point"}


def project_modules() -> dict[str, str]:
    """module name -> file path of every module of the three packages."""
    modules = {}
    for package in PACKAGES:
        for directory, _, names in os.walk(os.path.join(REPO, package)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                    modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = project_modules()


def layer(module: str) -> int:
    if module in ENTRY_POINTS:
        return 6
    if module in CONTRACT:
        return 1
    if module == "nri_tf.cli" or module.startswith("nri_tf.cli."):
        return 5
    return {"data_pipelines": 2, "nri_tf": 3, "trainers": 4}[module.split(".")[0]]


def imported_modules(path: str) -> set[str]:
    """The project modules ``path`` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from package import name` imports the submodule package.name when there is one.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES)
    return found


GRAPH = {module: imported_modules(path) for module, path in MODULES.items()}


def test_the_layers_cover_the_packages():
    assert {"data_pipelines.contract", "nri_tf.graph", "trainers.loop", "nri_tf.cli.train"} <= set(MODULES)
    assert ENTRY_POINTS | CONTRACT <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    upward = sorted(target for target in GRAPH[module] if layer(target) > layer(module))
    assert not upward, (f"{module} ({LAYER_NAMES[layer(module)]}) imports "
                        + ", ".join(f"{t} ({LAYER_NAMES[layer(t)]})" for t in upward))


def test_nothing_imports_an_entry_point():
    assert not sorted((module, target) for module, targets in GRAPH.items()
                      for target in targets & ENTRY_POINTS if module != target)


@pytest.mark.parametrize("module", sorted(CONTRACT - {"data_pipelines.tf_startup"}))
def test_the_contract_is_free_of_tensorflow(module):
    tree = ast.parse(open(MODULES[module]).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"tensorflow", "keras", "tf_keras", "tensorflow_probability"}


def test_no_import_cycles():
    """Depth-first search for a back edge; the message names the whole cycle."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def local_imports(path: str) -> list[int]:
    """Line numbers of the imports inside functions (or methods) of ``path``."""
    tree = ast.parse(open(path).read())
    return sorted({node.lineno for function in ast.walk(tree)
                   if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))})


@pytest.mark.parametrize("module", sorted(MODULES))
def test_function_local_imports_say_why(module):
    """An import inside a function keeps ``--help`` fast or a heavy dependency away; a
    comment on its line, or on the import lines just above it, says which."""
    lines = open(MODULES[module]).read().splitlines()
    unexplained = []
    for number in local_imports(MODULES[module]):
        index = number - 1        # walk up over the import group (imports, comments, blank lines)
        while index >= 0 and "#" not in lines[index] and (
                not lines[index].strip() or lines[index].lstrip().startswith(("import ", "from "))):
            index -= 1
        if index < 0 or "#" not in lines[index]:
            unexplained.append(number)
    assert not unexplained, f"{module}: function-local imports without a comment at lines {unexplained}"
