"""The package's modules import each other without cycles, lazy (function-level) imports included."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinydiff"


def imports() -> dict[str, set[str]]:
    """module -> the tinydiff modules it imports anywhere in its source (relative imports; those made for
    type checkers alone, under `if TYPE_CHECKING:`, never run)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        module = path.stem
        graph[module] = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in typing_only:
                if node.module:
                    graph[module].add(node.module.split(".")[0])
                else:  # from . import a, b
                    graph[module].update(alias.name for alias in node.names)
    return graph


def test_no_import_cycles():
    graph = imports()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target == module or target not in graph:
                continue
            assert state.get(target) != "open", "import cycle: " + " -> ".join(path + [target])
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state and module != "__init__":
            visit(module, [module])
