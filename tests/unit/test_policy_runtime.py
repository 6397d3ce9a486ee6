"""policies.runtime: policies and inventory reloaded on change, never replaced by a broken set."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from identity.verify import Verdict
from policies.bundle import PACK_DIR, SCHEMA_FILE, BundleError
from policies.engine import DEFAULT_DENY, PolicyEngine
from policies.requests import request_for
from policies.runtime import PolicyRuntime
from tests.factories import access_doc, event_of, inventory_data, write_inventory

INTERVAL = 5.0
OK = Verdict(True, "ok", "k")
EXPORT_WITHOUT_MFA = access_doc(action="export", mfa=False, ts="2026-03-04T10:00:00Z")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    target = tmp_path / "pack"
    for maturity in ("stable", "incubating"):
        shutil.copytree(PACK_DIR / maturity, target / maturity)
    shutil.copy(PACK_DIR / SCHEMA_FILE, target / SCHEMA_FILE)
    return target


@pytest.fixture
def inventory_path(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "inventory.yaml")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(pack: Path, inventory_path: Path, clock: Clock) -> PolicyRuntime:
    return PolicyRuntime(pack, inventory_path=inventory_path, check_interval=INTERVAL, clock=clock)


def touch_later(path: Path) -> None:
    """Move the modification time on: edits within one clock tick keep their mtime."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    touch_later(path)


def decision_for(engine: PolicyEngine, document: dict[str, Any]) -> tuple[bool, tuple[str, ...]]:
    event = event_of(document)
    [decision] = engine.decide_many([request_for(event, OK, engine.inventory)])
    return decision.allowed, decision.policy_ids


def export_decision(engine: PolicyEngine) -> tuple[bool, tuple[str, ...]]:
    return decision_for(engine, EXPORT_WITHOUT_MFA)


MFA_RULE = "unless { context.mfa }"
LOOSENED = "unless { context.mfa || context.principal_known }"


def test_starts_with_the_files_on_disk(runtime: PolicyRuntime, pack: Path) -> None:
    engine = runtime.current()
    assert engine is runtime.engine
    assert {p.maturity for p in engine.bundle.policies} == {"stable"}
    assert engine.inventory.roles_of("bob") == ("analyst",)
    assert export_decision(engine) == (False, ("export-requires-mfa",))


def test_policy_edit_takes_effect_after_the_interval(
    runtime: PolicyRuntime, pack: Path, clock: Clock
) -> None:
    before = runtime.current()
    edit(pack / "stable/access/policy.cedar", MFA_RULE, LOOSENED)
    clock.advance(INTERVAL - 0.1)
    assert runtime.current() is before  # not checked yet
    clock.advance(0.2)
    after = runtime.current()
    assert after is not before
    assert after.revision != before.revision
    assert after.bundle.revision != before.bundle.revision
    assert export_decision(after) == (True, ("export-by-analysts",))


def test_no_change_keeps_the_same_engine_and_its_cache(runtime: PolicyRuntime, clock: Clock) -> None:
    engine = runtime.current()
    export_decision(engine)
    for _ in range(3):
        clock.advance(INTERVAL * 2)
        assert runtime.current() is engine
    export_decision(engine)
    assert (engine.evaluated, engine.cache_hits) == (1, 1)


def test_files_are_checked_at_most_once_per_interval(
    runtime: PolicyRuntime, pack: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps = 0
    real = runtime._file_stamp

    def counting() -> tuple[tuple[str, int], ...]:
        nonlocal stamps
        stamps += 1
        return real()

    monkeypatch.setattr(runtime, "_file_stamp", counting)
    for _ in range(100):  # 50 seconds, a call every half second
        clock.advance(INTERVAL / 10)
        runtime.current()
    assert stamps == 10


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        (MFA_RULE, "unless { context.mfaa }", "mfaa"),  # valid Cedar, fails the schema
        (MFA_RULE, "unless { context.mfa ", "policy.cedar"),  # does not parse
        ('@controls("nist-800-207:tenet-6, nist-800-207:tenet-3', '@controls("made-up:1', "made-up:1"),
    ],
    ids=["schema-typo", "syntax-error", "unknown-control"],
)
def test_broken_edit_keeps_the_old_engine(
    runtime: PolicyRuntime,
    pack: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    old: str,
    new: str,
    complaint: str,
) -> None:
    before = runtime.current()
    edit(pack / "stable/access/policy.cedar", old, new)
    clock.advance(INTERVAL)
    with caplog.at_level(logging.ERROR, logger="policies.runtime"):
        assert runtime.current() is before
    assert export_decision(before) == (False, ("export-requires-mfa",))
    [record] = caplog.records
    assert before.revision in record.getMessage()
    assert complaint in record.getMessage()
    # the broken files are not retried on every check...
    caplog.clear()
    clock.advance(INTERVAL)
    assert runtime.current() is before
    assert caplog.records == []


def test_fixing_a_broken_edit_loads_the_fix(runtime: PolicyRuntime, pack: Path, clock: Clock) -> None:
    before = runtime.current()
    path = pack / "stable/access/policy.cedar"
    edit(path, MFA_RULE, "unless { context.mfaa }")
    clock.advance(INTERVAL)
    assert runtime.current() is before
    edit(path, "unless { context.mfaa }", LOOSENED)
    clock.advance(INTERVAL)
    fixed = runtime.current()
    assert fixed is not before
    assert export_decision(fixed) == (True, ("export-by-analysts",))


def test_inventory_edit_changes_the_revision(
    runtime: PolicyRuntime, inventory_path: Path, clock: Clock
) -> None:
    before = runtime.current()
    data = inventory_data()
    data["principals"] = [p for p in data["principals"] if p["id"] != "bob"]
    write_inventory(inventory_path, data)
    touch_later(inventory_path)
    clock.advance(INTERVAL)
    after = runtime.current()
    assert after.revision != before.revision
    assert after.bundle.revision == before.bundle.revision
    assert after.inventory.roles_of("bob") == ()
    read = access_doc(action="read")
    assert decision_for(before, read) == (True, ("read-by-analysts",))
    assert decision_for(after, read) == (False, (DEFAULT_DENY,))


def test_broken_inventory_keeps_the_old_engine(
    runtime: PolicyRuntime, inventory_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    before = runtime.current()
    inventory_path.write_text("principals:\n  - id: bob\n    kind: robot\n")
    touch_later(inventory_path)
    clock.advance(INTERVAL)
    with caplog.at_level(logging.ERROR, logger="policies.runtime"):
        assert runtime.current() is before
    assert str(inventory_path) in caplog.text


def test_deleted_inventory_keeps_the_old_engine(
    runtime: PolicyRuntime, inventory_path: Path, clock: Clock
) -> None:
    before = runtime.current()
    inventory_path.unlink()
    clock.advance(INTERVAL)
    assert runtime.current() is before
    assert before.inventory.roles_of("bob") == ("analyst",)


def test_added_policy_family_is_picked_up(runtime: PolicyRuntime, pack: Path, clock: Clock) -> None:
    before = runtime.current()
    family = pack / "stable/audit"
    family.mkdir()
    (family / "policy.cedar").write_text(
        '@id("auditors-read")\n@severity("low")\n@title("Auditors may read")\n'
        '@controls("nist-800-207:tenet-6")\n'
        'permit (principal in Role::"auditor", action == Action::"read", resource);\n'
    )
    clock.advance(INTERVAL)
    after = runtime.current()
    assert after.bundle.info("auditors-read") is not None
    assert after.revision != before.revision


def test_removed_policy_family_is_dropped(runtime: PolicyRuntime, pack: Path, clock: Clock) -> None:
    runtime.current()
    shutil.rmtree(pack / "stable/access")
    clock.advance(INTERVAL)
    assert runtime.current().bundle.info("export-requires-mfa") is None


def test_schema_edit_is_picked_up(runtime: PolicyRuntime, pack: Path, clock: Clock) -> None:
    before = runtime.current()
    edit(pack / SCHEMA_FILE, "entity Endpoint;", "entity Endpoint;\nentity Notebook;")
    clock.advance(INTERVAL)
    assert runtime.current().bundle.revision != before.bundle.revision


def test_incubating_files_are_watched_only_when_loaded(
    pack: Path, inventory_path: Path, clock: Clock
) -> None:
    stable_only = PolicyRuntime(pack, inventory_path=inventory_path, check_interval=INTERVAL, clock=clock)
    both = PolicyRuntime(
        pack, ("stable", "incubating"), inventory_path=inventory_path, check_interval=INTERVAL, clock=clock
    )
    engines = stable_only.current(), both.current()
    assert both.current().bundle.info("deploy-outside-business-hours") is not None
    edit(pack / "incubating/change-windows/policy.cedar", '@severity("medium")', '@severity("high")')
    clock.advance(INTERVAL)
    assert stable_only.current() is engines[0]
    assert both.current() is not engines[1]


def test_a_broken_pack_at_start_up_is_an_error(pack: Path, clock: Clock) -> None:
    edit(pack / "stable/access/policy.cedar", MFA_RULE, "unless { context.mfaa }")
    with pytest.raises(BundleError, match=r"stable/access/policy\.cedar:\d+: .*mfaa"):
        PolicyRuntime(pack, clock=clock)


def test_without_an_inventory_nobody_holds_a_role(pack: Path, clock: Clock) -> None:
    engine = PolicyRuntime(pack, clock=clock).current()
    assert engine.inventory.principals == {}
    assert export_decision(engine)[0] is False
