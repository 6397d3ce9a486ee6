"""The source a detectors module was built from, compiled (setup.py) or not.

A compiled module has no source for ``inspect`` to find; its ``.py`` file still lies
beside it and is what it was compiled from.
"""

from __future__ import annotations

import sys
from pathlib import Path


def module_source(name: str) -> str:
    """The text of the ``.py`` file of the imported module ``name``."""
    loaded = Path(str(sys.modules[name].__file__))
    return loaded.with_name(name.rsplit(".", 1)[-1] + ".py").read_text()
