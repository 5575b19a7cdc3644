"""No import cycle in ``nnunet_lossplug``, the layers of ``nnunet_lossplug.nnunet`` import one way, and the trainer
package sits on top: its modules import only the public glue, losses and networks, and no library module imports it.

The graph is built from the source with ``ast``: an edge ``a -> b`` for every ``import b`` / ``from b import x``
in module ``a`` (``from pkg import mod`` points at the module ``pkg.mod``), at any depth (function-level
imports and ``TYPE_CHECKING`` blocks included: a cycle hidden in a function is still a cycle). The parent
packages Python imports implicitly are not edges: a package's ``__init__`` re-exporting its modules is not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "nnunet_lossplug"
ROOT = Path(__file__).resolve().parents[2]
#: layers of nnunet_lossplug.nnunet, each may import only those after it
LAYERS = ["trainer", "map_transport", "map_cache", "codecs", "safe_loading", "errors"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    paths = sorted(ROOT.joinpath(PACKAGE).rglob("*.py"))
    modules = {module_name(path): path for path in paths}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                           for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return path[path.index(successor):] + [successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_imports():
    graph = import_graph()
    assert "nnunet_lossplug.nnunet.map_cache.cache" in graph["nnunet_lossplug.nnunet.map_transport.transport"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == [PACKAGE, "nnunet"] else None


def test_layers_of_the_nnunet_glue_import_one_way():
    wrong = []
    for module, imported in import_graph().items():
        here = layer(module)
        for target in imported:
            there = layer(target)
            if here and there and here != there and LAYERS.index(there) < LAYERS.index(here):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "a layer imports one to its left (order: " + " -> ".join(LAYERS) + "):\n" + "\n".join(wrong)


TRAINERS = f"{PACKAGE}.trainers"
#: what a trainer declaration may import from the package: the public glue, the losses, the networks, other trainers
TRAINER_IMPORTS = (f"{PACKAGE}.nnunet", f"{PACKAGE}.losses", f"{PACKAGE}.networks", TRAINERS)
#: library layers below the trainers (the command line, the demo and the listing may import trainers)
BELOW_TRAINERS = ("maps", "losses", "networks", "nnunet", "evaluation")


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_trainer_modules_import_only_glue_losses_and_networks():
    graph = import_graph()
    trainer_modules = [m for m in graph if _within(m, TRAINERS)]
    assert f"{TRAINERS}.region_wise" in trainer_modules
    wrong = [f"{module} imports {target}" for module in trainer_modules for target in sorted(graph[module])
             if target not in TRAINER_IMPORTS and not _within(target, TRAINERS)]
    assert not wrong, "a trainer module reaches past the public glue (nnunet_lossplug.nnunet):\n" + "\n".join(wrong)


def test_no_library_layer_imports_the_trainers():
    graph = import_graph()
    wrong = [f"{module} imports {target}" for module, imported in graph.items() for target in sorted(imported)
             if any(_within(module, f"{PACKAGE}.{layer}") for layer in BELOW_TRAINERS) and _within(target, TRAINERS)]
    assert not wrong, "trainers are declarations on top of the library:\n" + "\n".join(wrong)
