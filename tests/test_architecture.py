"""The package's shape: no import loops, few imports inside functions, modules a reader can hold in mind.

The graph comes from ``tests/import_graph.py`` (``python -m tests.import_graph`` prints it).
"""

from __future__ import annotations

from tests import import_graph

P = import_graph.PACKAGE

MAX_FUNCTION_LEVEL_IMPORTS = 5
MAX_MODULE_LINES = 600


def test_no_import_loop_of_more_than_two_modules():
    graph = import_graph.without_lazy_by_design(import_graph.build())
    assert [loop for loop in graph.loops() if len(loop) > 2] == []


def test_few_imports_inside_functions():
    inside = import_graph.build().function_level()
    assert len(inside) <= MAX_FUNCTION_LEVEL_IMPORTS, "\n".join(
        f"{imp.importer}:{imp.line} -> {imp.imported}" for imp in inside
    )


def test_no_module_over_600_lines():
    assert {name: n for name, n in import_graph.line_counts().items() if n > MAX_MODULE_LINES} == {}


def test_the_graph_sees_loops_and_function_level_imports(tmp_path):
    """The tool itself: a loop closed inside a function is still a loop, TYPE_CHECKING imports are not."""
    package = tmp_path / P
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from . import c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\nfrom .a import x\n"
    )
    graph = import_graph.build(tmp_path)
    assert graph.loops() == [[f"{P}.a", f"{P}.b", f"{P}.c"]]
    assert [(imp.importer, imp.imported) for imp in graph.function_level()] == [(f"{P}.b", f"{P}.c")]
