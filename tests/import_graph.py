"""The package's own import graph: loops, imports made inside functions, and module sizes.

Run ``python -m tests.import_graph`` for a report; ``tests/test_architecture.py`` holds the limits.

An import inside a function still makes a dependency, so loops are found over every import of the
package's own modules, wherever it is written (imports under ``if TYPE_CHECKING:`` are left out: they
never run).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "wagtail_klarna_paywall"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


@dataclass
class Graph:
    modules: dict[str, Path]
    imports: list[Import] = field(default_factory=list)

    def edges(self) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {name: set() for name in self.modules}
        for imp in self.imports:
            edges[imp.importer].add(imp.imported)
        return edges

    def function_level(self) -> list[Import]:
        return [imp for imp in self.imports if imp.in_function]

    def loops(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan), each sorted."""
        edges = self.edges()
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        counter = [0]

        def visit(node: str) -> None:
            index[node] = low[node] = counter[0]
            counter[0] += 1
            stack.append(node)
            on_stack.add(node)
            for other in sorted(edges[node]):
                if other not in index:
                    visit(other)
                    low[node] = min(low[node], low[other])
                elif other in on_stack:
                    low[node] = min(low[node], index[other])
            if low[node] == index[node]:
                component = []
                while True:
                    other = stack.pop()
                    on_stack.discard(other)
                    component.append(other)
                    if other == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

        for node in sorted(edges):
            if node not in index:
                visit(node)
        return found


def module_files(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def build(root: Path = ROOT) -> Graph:
    modules = module_files(root)
    graph = Graph(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        _Visitor(graph, name, package).visit(ast.parse(path.read_text(encoding="utf-8")))
    return graph


class _Visitor(ast.NodeVisitor):
    def __init__(self, graph: Graph, module: str, package: str) -> None:
        self.graph, self.module, self.package = graph, module, package
        self.depth = 0

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        targets = []
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            targets.append(submodule if submodule in self.graph.modules else source)
        self._add(node, targets)

    def _add(self, node: ast.stmt, names: list[str]) -> None:
        for name in dict.fromkeys(names):
            if not name.startswith(PACKAGE):
                continue
            target = _resolve(name, self.graph.modules)
            if target and target != self.module:
                self.graph.imports.append(Import(self.module, target, node.lineno, self.depth > 0))


def line_counts(root: Path = ROOT) -> dict[str, int]:
    return {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in module_files(root).items()
    }


#: Imports inside functions that Wagtail's own patterns call for, and the only ones allowed to close a loop:
#: a page model's routes reach their views lazily (the views read the models), as Wagtail's contrib apps do.
LAZY_BY_DESIGN = {(f"{PACKAGE}.models.pages", f"{PACKAGE}.purchase.views")}


def without_lazy_by_design(graph: Graph) -> Graph:
    return Graph(
        graph.modules, [imp for imp in graph.imports if (imp.importer, imp.imported) not in LAZY_BY_DESIGN]
    )


def _print_loops(loops: list[list[str]]) -> None:
    for loop in loops:
        print(f"  {len(loop)} modules: {', '.join(loop)}")
    if not loops:
        print("  none")


def main() -> int:
    graph = build()
    print("Import loops, leaving out the page routes' lazy import of their views:")
    _print_loops(without_lazy_by_design(graph).loops())
    print("The same, counting that one lazy import too:")
    _print_loops(graph.loops())
    print("Function-level imports of the package's own modules:")
    for imp in graph.function_level():
        print(f"  {imp.importer}:{imp.line} -> {imp.imported}")
    print("Largest modules:")
    for name, count in sorted(line_counts().items(), key=lambda item: -item[1])[:5]:
        print(f"  {count:5d} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
