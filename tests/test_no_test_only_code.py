"""No public function, method or class of core/ is used only by the tests (issue 23).

A name defined in core/ counts as used when the program refers to it outside its own definition: in core/, ui/,
pages/, app.py or pyproject.toml (the ``tfe`` entry point). References from tests/ do not count, and neither do
references from bench/: a benchmark measures what the program runs, so a function only a benchmark calls is code the
program does not need (the issue's ``LoadedBackbone.infer`` "only by bench"). Names are matched as identifiers (a
call, an attribute, an import), so two definitions sharing a name count as used when either is; the test can miss
dead code that shares a name with live code, never flag live code.

Not checked, because something other than a reference in the source calls them: dunder methods; functions under a
decorator (FastAPI routes, ``@property``, ``@torch.inference_mode`` ...: the decorator or framework decides); methods
a base class or protocol names (``forward`` of a torch module, the Alembic migrations' ``upgrade``/``downgrade``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: where the program lives: a reference from here makes a name used
PROGRAM = ["core", "ui", "pages", "app.py"]
#: names the runtime calls through a base class or protocol, never by name in this code
CALLED_BY_FRAMEWORK = {"forward", "upgrade", "downgrade", "run_migrations_offline", "run_migrations_online"}


def _python_files(places: list[str]) -> list[Path]:
    files = []
    for place in places:
        path = ROOT / place
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def definitions() -> list[tuple[str, Path, int]]:
    """(name, file, line) of every public top-level function and class in core/ and every public method of their
    classes, less what the module docstring says is not checked."""
    found = []
    for path in _python_files(["core"]):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            members = [node] + ([child for child in node.body] if isinstance(node, ast.ClassDef) else [])
            for member in members:
                if not isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                if member.name.startswith("_") or member.name in CALLED_BY_FRAMEWORK:
                    continue
                if member is not node and member.decorator_list:
                    continue
                if member is node and isinstance(node, ast.FunctionDef) and node.decorator_list:
                    continue
                found.append((member.name, path, member.lineno))
    return found


def references(places: list[str]) -> dict[str, set[tuple[Path, int]]]:
    """{identifier: {(file, line)}} of every name, attribute and imported name used in ``places``."""
    used: dict[str, set[tuple[Path, int]]] = {}
    for path in _python_files(places):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Name):
                name = node.id
            elif isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.alias):
                name = node.name.rpartition(".")[2]
            else:
                continue
            used.setdefault(name, set()).add((path, getattr(node, "lineno", 0)))
    entry_points = (ROOT / "pyproject.toml").read_text()
    for name in re.findall(r'"[\w.]+:(\w+)"', entry_points):
        used.setdefault(name, set()).add((ROOT / "pyproject.toml", 0))
    return used


def unused_by_the_program() -> list[str]:
    program = references(PROGRAM)
    unused = []
    for name, path, line in definitions():
        elsewhere = {where for where in program.get(name, set()) if where != (path, line)}
        if not elsewhere:
            unused.append(f"{path.relative_to(ROOT)}:{line} {name}")
    return unused


def test_the_check_finds_a_function_only_tests_call():
    tests = references(["tests"])
    assert "unused_by_the_program" in tests  # this very file calls it ...
    assert "unused_by_the_program" not in references(PROGRAM)  # ... and the program does not


def test_no_function_in_core_is_used_only_by_tests_or_benchmarks():
    assert unused_by_the_program() == []
