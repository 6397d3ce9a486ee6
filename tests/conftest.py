"""Suite-wide settings.

Property tests run derandomized by default, so a CI run is reproducible: the same
examples every time (``HYPOTHESIS_PROFILE=explore`` searches afresh, for local runs).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
