"""The test suite on a compiled build (setup.py): fresh compiled modules, and their doctests.

An editable install puts each compiled module beside its source, and Python imports
the compiled one first. Two things follow:

- a source edited after the build would not be what the tests run, so the session
  stops at once when a source is newer than its compiled module;
- pytest's doctest collector imports a module from its ``.py`` file and refuses the
  compiled one it finds instead. The examples of a compiled module are read from its
  source here and run against the compiled code, which is what users run.
"""

from __future__ import annotations

import ast
import doctest
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent


def _compiled(source: Path) -> Path | None:
    """The module compiled from ``source``, if there is one beside it."""
    return next(source.parent.glob(f"{source.stem}.*.so"), None)


def pytest_sessionstart(session: pytest.Session) -> None:
    packages = [path for path in ROOT.iterdir() if (path / "__init__.py").exists()]
    for source in sorted(py for package in packages for py in package.rglob("*.py")):
        compiled = _compiled(source)
        if compiled is not None and source.stat().st_mtime > compiled.stat().st_mtime:
            pytest.exit(
                f"{source.relative_to(ROOT)} changed after it was compiled: rebuild with "
                "scripts/setup.sh dev, or delete the compiled modules (git clean -fX -- '*.so') "
                "to test the Python source",
                returncode=2,
            )


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Iterator[Any]:
    collected = yield
    if file_path.suffix != ".py" or _compiled(file_path) is None or not parent.config.option.doctestmodules:
        return collected
    return [CompiledModuleDoctests.from_parent(parent, path=file_path)]


class CompiledModuleDoctests(pytest.File):
    """The examples in a compiled module's docstrings, one item per docstring."""

    def collect(self) -> Iterator[pytest.Item]:
        name = ".".join(self.path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(name)
        parser = doctest.DocTestParser()
        for qualname, node in _documented(ast.parse(self.path.read_text()), name):
            text = ast.get_docstring(node, clean=False)
            if not text:
                continue
            line = getattr(node, "lineno", 1)
            test = parser.get_doctest(text, dict(vars(module)), qualname, str(self.path), line)
            if test.examples:
                yield CompiledDoctest.from_parent(self, name=qualname, test=test)


def _documented(node: ast.AST, qualname: str) -> Iterator[tuple[str, ast.AST]]:
    yield qualname, node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _documented(child, f"{qualname}.{child.name}")


class CompiledDoctest(pytest.Item):
    def __init__(self, *, test: doctest.DocTest, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test = test

    def runtest(self) -> None:
        flags = 0
        for flag in self.config.getini("doctest_optionflags"):
            flags |= doctest.OPTIONFLAGS_BY_NAME[flag]
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=flags)
        result = runner.run(self.test, out=report.append, clear_globs=False)
        if result.failed:
            raise DoctestFailedError("".join(report))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, DoctestFailedError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.test.lineno or 0, f"[doctest] {self.name}"


class DoctestFailedError(AssertionError):
    """A compiled module's example printed something other than its docstring shows."""
