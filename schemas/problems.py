"""One way to say what is wrong with a configuration file."""

from __future__ import annotations

from pydantic import ValidationError


def describe(error: ValidationError) -> str:
    """``where: what`` for every problem, ``; ``-separated, without echoing the input
    (which may be a secret)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in error.errors(include_input=False, include_url=False)
    )
