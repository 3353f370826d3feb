"""The house of modules: every import among tfsuite's modules (module-level and lazy,
function-level ones alike) points down the declared layers, none forms a circle, task
packages import no other task, and no generic layer branches on a task's name."""

import ast
import os
import re

import tfsuite

PACKAGE = os.path.dirname(tfsuite.__file__)

# Bottom to top. A module belongs to the layer of its longest matching prefix; it may
# import modules of its own layer or of a lower one.
LAYERS = [
    ("foundation", ["tfsuite.errors", "tfsuite.io", "tfsuite.quiet", "tfsuite.packages"]),
    ("config", ["tfsuite.config"]),
    ("run directory layout", ["tfsuite.run_dir"]),
    ("building blocks", ["tfsuite.plots", "tfsuite.progress", "tfsuite.data", "tfsuite.models",
                         "tfsuite.training", "tfsuite.tensorflow_process", "tfsuite.backends",
                         "tfsuite.diagnosis"]),
    ("export", ["tfsuite.export"]),
    ("compression", ["tfsuite.compression"]),
    ("task seam", ["tfsuite.task"]),
    ("run skeleton", ["tfsuite.stages", "tfsuite.diagnosis.run", "tfsuite.diagnosis.lr_find"]),
    ("tasks", ["tfsuite.image_classification", "tfsuite.translation", "tfsuite.recommend",
               "tfsuite.rl", "tfsuite.language_model"]),
    ("composition root", ["tfsuite.tasks"]),
    ("Python API", ["tfsuite.api"]),
    ("command line", ["tfsuite.cli", "tfsuite.launch", "tfsuite.run", "tfsuite.__main__",
                      "tfsuite.doctor",
                      "tfsuite"]),
]
TASK_PACKAGES = LAYERS[8][1]


def _modules():
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = "tfsuite." + os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def _imports(modules):
    """{module: {imported tfsuite module: line}} from every import statement in the file."""
    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        edges = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name == "tfsuite" or name.startswith("tfsuite."):
                    target = resolve(name)
                    if target and target != module:
                        edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def _layer(module):
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix), prefix)
    assert best is not None, f"{module} is in no declared layer: add it to LAYERS"
    return best


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_lazy_imports_and_cycles():
    modules = _modules()
    graph = _imports(modules)
    # A function-level import the checker must see: the skeleton's lazy Trainer import.
    assert "tfsuite.training.trainer" in graph["tfsuite.stages"]
    assert _cycles({"a": {"b": 1}, "b": {"a": 2}, "c": {}}) == [["a", "b"]]
    assert _layer("tfsuite.translation.task")[0] > _layer("tfsuite.export.stage")[0]


def test_no_import_goes_up_a_layer():
    graph = _imports(_modules())
    upward = [f"{m} (layer {LAYERS[_layer(m)[0]][0]}) imports {t} (layer "
              f"{LAYERS[_layer(t)[0]][0]}) at line {line}"
              for m, edges in graph.items() for t, line in edges.items()
              if _layer(t)[0] > _layer(m)[0]]
    assert upward == []


def test_no_import_circles():
    assert _cycles(_imports(_modules())) == []


def test_task_packages_import_no_other_task():
    graph = _imports(_modules())
    crossing = [f"{m} imports {t}" for m, edges in graph.items() for t in edges
                if _layer(m)[2] in TASK_PACKAGES and _layer(t)[2] in TASK_PACKAGES
                and _layer(m)[2] != _layer(t)[2]]
    assert crossing == []


def test_generic_layers_name_no_task():
    branches = re.compile(r"config\.task ==|task == \"|config\.task in \(")
    hits = []
    for module, path in _modules().items():
        if _layer(module)[2] in TASK_PACKAGES or module == "tfsuite.tasks":
            continue
        with open(path, encoding="utf-8") as f:
            hits += [f"{module}:{n}: {line.strip()}" for n, line in enumerate(f, 1)
                     if branches.search(line)]
    assert hits == []
