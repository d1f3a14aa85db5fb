"""The suite's own layout: test modules stand alone.

Shared builders, payloads and constants live in ``tests/factories.py`` (and, for suites that run the site
in other processes, helper modules such as ``tests/demo_site.py``), fixtures in ``conftest.py`` files. A test
module that imports another test module, or a ``conftest.py``, makes one file's edit break another's tests
and runs the imported module's autouse fixtures where nobody asked for them; this test keeps it that way.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
#: Every Python file of the suite, the test app's migrations aside (generated code).
MODULES = sorted(path for path in TESTS.rglob("*.py") if "migrations" not in path.relative_to(TESTS).parts)
#: pytest imports the modules a module lists here as plugins, which spreads their fixtures over the run.
PLUGINS = "pytest_plugins"
#: A dotted path into the suite, as settings name a class or view (``"tests.test_x.Provider"``).
DOTTED = re.compile(r"^tests(?:\.\w+)+$")


def module_name(path: Path) -> str:
    return ".".join(("tests", *path.relative_to(TESTS).with_suffix("").parts)).removesuffix(".__init__")


def is_test_module(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith("test_")


def is_conftest(name: str) -> bool:
    return name.rsplit(".", 1)[-1] == "conftest"


def imported_modules(source: str, module_of: str, *, package: bool = False) -> list[tuple[int, str]]:
    """Every module the source of module ``module_of`` imports (at any depth, relative imports resolved),
    with its line; ``package``: the source is the package's ``__init__``."""
    package_name = module_of if package else module_of.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_name.rsplit(".", node.level - 1)[0] if node.level > 1 else package_name
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # ``from tests import test_x`` / ``from . import test_x`` import the module by its name.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == PLUGINS for t in node.targets):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            found += [(node.lineno, v.value) for v in values if isinstance(v, ast.Constant)]
    return found


def dotted_strings(source: str) -> list[tuple[int, str]]:
    """String constants that name something in the suite by dotted path (a class, a view)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.match(node.value):
            found.append((node.lineno, node.value))
    return found


def test_the_suite_has_modules_to_check():
    names = {module_name(path) for path in MODULES}
    assert {"tests.factories", "tests.conftest", "tests.test_layout", "tests.browser.test_flows"} <= names
    assert "tests.concurrency.test_races" in names and "tests.multiprocess.test_across_processes" in names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(TESTS)))
def test_no_module_imports_a_test_module_or_a_conftest(path):
    """Builders come from ``tests.factories`` and helper modules, fixtures from ``conftest.py`` by name."""
    wrong = [
        f"line {line}: {module}"
        for line, module in imported_modules(
            path.read_text(), module_name(path), package=path.name == "__init__.py"
        )
        if module.startswith("tests.") and (is_test_module(module) or is_conftest(module))
    ]
    assert not wrong, f"{path.relative_to(TESTS)} imports test modules or conftest files: {wrong}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(TESTS)))
def test_dotted_paths_name_no_other_test_module(path):
    """A setting that names a class by dotted path (an identity provider, a middleware, a view) may name
    one in its own module or a helper module, never in another test module."""
    own = module_name(path)
    wrong = []
    for line, dotted in dotted_strings(path.read_text()):
        parts = dotted.split(".")
        # The modules the path goes through to the thing it names (its last part).
        modules = [".".join(parts[: i + 1]) for i in range(1, len(parts) - 1)]
        if any((is_test_module(m) or is_conftest(m)) and m != own for m in modules):
            wrong.append(f"line {line}: {dotted!r}")
    assert not wrong, f"{path.relative_to(TESTS)} names another test module: {wrong}"


def test_the_check_sees_the_imports_it_forbids():
    """The checks above are not vacuous: each spelling of a test-module import is found."""
    source = (
        "from tests.test_purchase import build_shop\n"
        "from .test_flows import pay\n"
        "from . import conftest\n"
        "def f():\n"
        "    import tests.test_views\n"
        'STUB = "tests.test_views.StubIdentityProvider"\n'
        'pytest_plugins = ["tests.test_grants"]\n'
    )
    modules = {module for _line, module in imported_modules(source, "tests.browser.test_sample")}
    expected = {"tests.test_purchase", "tests.browser.test_flows", "tests.browser.conftest"}
    assert expected | {"tests.test_views", "tests.test_grants"} <= modules
    dotted = [value for _line, value in dotted_strings(source)]
    assert ".".join(("tests", "test_views", "StubIdentityProvider")) in dotted
