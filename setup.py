"""Vigil's build: the detectors compiled to C by mypyc, everything else Python.

The compiled modules are the same source that mypy checks in CI (strict), so a
compiled build behaves as the Python one, decision for decision and finding for
finding; only the per-event cost changes (bench/README.md). Their classes become
native classes: attribute access and calls between them skip the interpreter.

``VIGIL_PURE_PYTHON=1`` builds without compiling: for a platform without a C
compiler, and while editing these modules. An editable install puts each compiled
module beside its source, and Python imports the compiled one first; the test
suite refuses to run when a source is newer than its compiled module
(the root ``conftest.py``).
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = (
    "detectors/base.py",
    "detectors/registry.py",
    "detectors/findings.py",
    "detectors/state.py",
    "detectors/stage.py",
    "detectors/anomaly/robust_zscore.py",
    "detectors/drift/adwin.py",
    "detectors/drift/bernoulli_cusum.py",
    "detectors/drift/chi_square_window.py",
    "detectors/drift/model_day.py",
    "detectors/drift/normal_scores_cusum.py",
    "detectors/drift/seasonal_bernoulli_cusum.py",
    "detectors/drift/seasonal_cusum.py",
    "detectors/monitors/access.py",
    "detectors/monitors/bias.py",
    "detectors/monitors/budget.py",
    "detectors/monitors/describe.py",
    "detectors/monitors/labels.py",
    "detectors/monitors/model_streams.py",
    "detectors/monitors/performance.py",
    "detectors/monitors/supply_chain.py",
)
"""Modules compiled to C: the detect stage, which is most of the per-event work that
is Python's own (not pydantic's, orjson's or the engine's). Modules that define
pydantic models stay Python: their classes are built by a metaclass at import."""


def _extensions() -> list[object]:
    if os.environ.get("VIGIL_PURE_PYTHON"):
        return []
    from mypyc.build import mypycify

    # The build type-checks only what it compiles: every other import is taken as Any, and
    # no config file is read. The strict check of the whole project with its dependencies
    # installed is CI's mypy step; the build runs where they may not be installed (pip's
    # isolated build environment) and must not read all of river's sources when they are.
    options = ["--config-file=", "--follow-imports=skip", "--ignore-missing-imports", "--python-version=3.11"]
    return list(mypycify([*options, *COMPILED], opt_level="3"))


setup(ext_modules=_extensions())
