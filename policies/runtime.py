"""The engine in force, reloaded when the policy files or the inventory change.

Workers run for weeks; governance teams change policies and the inventory without
restarting them. At most every ``check_interval`` seconds the files' modification
times are compared; on a change the new bundle is loaded and validated before it
replaces the old one. A bundle that fails to load is logged and ignored (the old
one stays in force) until the files change again: a typo must never open access.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from policies.bundle import SCHEMA_FILE, BundleError, load_bundle, policy_files, validate_bundle
from policies.engine import PolicyEngine
from policies.inventory import InventoryError, load_inventory

log = logging.getLogger(__name__)


class PolicyRuntime:
    def __init__(
        self,
        policies_dir: Path,
        maturities: tuple[str, ...] = ("stable",),
        inventory_path: Path | None = None,
        check_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policies_dir = policies_dir
        self.maturities = maturities
        self.inventory_path = inventory_path
        self.check_interval = check_interval
        self.clock = clock
        self._stamp = self._file_stamp()
        self.engine = self._load()
        log.info("policies in force: %s", self.engine.describe())
        self._next_check = clock() + check_interval

    def current(self) -> PolicyEngine:
        now = self.clock()
        if now < self._next_check:
            return self.engine
        self._next_check = now + self.check_interval
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.engine = self._load()
                log.info("policies reloaded: %s", self.engine.describe())
            except (BundleError, InventoryError, OSError) as error:
                log.error("policy reload failed, revision %s stays in force: %s", self.engine.revision, error)
        return self.engine

    def _load(self) -> PolicyEngine:
        bundle = load_bundle(self.policies_dir, self.maturities)
        problems = validate_bundle(bundle)
        if problems:
            raise BundleError("; ".join(problems))
        return PolicyEngine(bundle, load_inventory(self.inventory_path))

    def _file_stamp(self) -> tuple[tuple[str, int], ...]:
        paths = [*policy_files(self.policies_dir, self.maturities), self.policies_dir / SCHEMA_FILE]
        if self.inventory_path is not None:
            paths.append(self.inventory_path)
        return tuple((str(p), p.stat().st_mtime_ns if p.exists() else -1) for p in paths)
