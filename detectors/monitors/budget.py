"""A shared cap on keyed state, so an unbounded key space cannot exhaust memory."""

from __future__ import annotations


class Budget:
    """Counts keys handed out; refuses new ones beyond ``limit`` (and counts refusals)."""

    __slots__ = ("limit", "refused", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            self.refused += 1
            return False
        self.used += 1
        return True
