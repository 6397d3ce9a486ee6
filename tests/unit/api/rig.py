"""A decision service over the test inventory, keyring and IdP, journaling into a temp dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from api.auth import Authenticator, Caller
from api.journal import Journal
from api.questions import ITEM, Item
from api.records import DecisionRecord
from api.service import DecisionService
from identity.verify import IdentityVerifier
from policies.bundle import PACK_DIR
from policies.runtime import PolicyRuntime
from tests.clock import FakeClock
from tests.factories import (
    TokenIssuer,
    key_entries,
    make_keyring,
    make_token_verifier,
    with_principals,
    write_inventory,
)

API_KEY_SECRET = "api-key-secret-for-tests-0001"


@dataclass
class Rig:
    service: DecisionService
    auth: Authenticator
    journal: Journal
    idp: TokenIssuer
    clock: FakeClock

    def caller(self, header: str) -> Caller:
        return self.auth.authenticate(header, self.service.engine.inventory, self.clock.wall())

    def bearer(self, sub: str, **options: Any) -> str:
        options.setdefault("at", self.clock.wall())
        return "Bearer " + self.idp.token(sub, **options)

    def ask(self, header: str, *items: dict[str, Any]) -> list[Any]:
        parsed: list[Item] = [ITEM.validate_python(i) for i in items]
        return self.service.decide(self.caller(header), parsed)

    def journaled(self) -> list[DecisionRecord]:
        batch = self.journal.read(10_000, self.journal.position())
        return [DecisionRecord.from_json(orjson.loads(line)) for line in batch.lines]


def question(
    principal: str = "svc-checkout",
    action: str = "infer",
    resource: tuple[str, str] = ("model", "fraud-v3"),
    kind: str = "service",
    **context: Any,
) -> dict[str, Any]:
    return {
        "principal": {"id": principal, "kind": kind},
        "action": action,
        "resource": {"kind": resource[0], "id": resource[1]},
        "context": context,
    }


def build_rig(directory: Path, clock: FakeClock, policies_dir: Path = PACK_DIR) -> Rig:
    idp = TokenIssuer()
    inventory = write_inventory(
        directory / "inventory.yaml",
        with_principals(
            {"id": "support-bot", "kind": "service", "roles": ["delegate"]},
            {"id": "api-checkout", "kind": "service", "roles": ["inference-client"]},
        ),
    )
    entries = [
        *key_entries(),
        {"key_id": "api-checkout", "alg": "hmac-sha256", "secret": API_KEY_SECRET, "sources": ["api"]},
    ]
    keyring = make_keyring(directory, entries)
    tokens = make_token_verifier(directory, idp)
    identity = IdentityVerifier(keyring, tokens=tokens)
    runtime = PolicyRuntime(policies_dir, inventory_path=inventory, check_interval=0.0, clock=clock)
    journal = Journal(directory / "journal")
    service = DecisionService(runtime, identity, journal, wall_clock=clock.wall)
    return Rig(service, Authenticator(tokens, keyring), journal, idp, clock)
