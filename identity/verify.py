"""Verify who sent an event. Every event gets a ``Verdict``; none is exempt.

Checks, in order, the first failure naming the reason:

1. signature: present, key known, algorithm matches the key, key may speak for the
   event's ``source`` and ``principal``, key valid at the event's time, signature
   matches the canonical form (constant-time for HMAC);
2. bearer token, when the event carries one and a JWKS is configured;
3. freshness: event time within ``max_skew`` of arrival, unless the key may backfill and
   the event is from the past (verdict reason ``backfill``);
4. replay: the ``event_id`` was not seen before at another place in the log. A backfilled
   event is remembered from its arrival rather than from its own (old) time, so the
   replay window covers it as long as it covers a live event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from identity.freshness import Position, ReplayGuard, is_stale
from identity.keyring import Keyring
from identity.tokens import TokenResult, TokenVerifier
from schemas.events import Event

IDENTITY_CONTROLS = (
    "nist-800-207:tenet-6",
    "nist-800-207:tenet-3",
    "nist-ai-rmf:MEASURE-2.7",
    "eu-ai-act:art-15",
)
"""What a failed identity check evidences: authentication enforced before access."""

BACKFILL = "backfill"
"""Verdict reason of a verified event older than the skew, signed by a key that may backfill."""
NO_TOKEN = TokenResult(False, "none")
UNCHECKED_TOKEN = TokenResult(False, "unchecked")


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    reason: str
    key_id: str = ""
    token: TokenResult = NO_TOKEN

    @property
    def token_verified(self) -> bool:
        return self.token.ok


def verify(event: Event, canonical: bytes, keyring: Keyring) -> Verdict:
    """The signature check alone (step 1)."""
    signature = event.signature
    if signature is None:
        return Verdict(False, "unsigned")
    key_id = signature.key_id
    entry = keyring.get(key_id)
    if entry is None:
        return Verdict(False, "unknown_key", key_id)
    if entry.alg != signature.alg:
        return Verdict(False, "alg_mismatch", key_id)
    if event.source not in entry.sources:
        return Verdict(False, "key_not_for_source", key_id)
    if not entry.speaks_for(event.principal.id):
        return Verdict(False, "key_not_for_principal", key_id)
    if not entry.valid_at(event.ts):
        return Verdict(False, "key_expired", key_id)
    if not keyring.check(key_id)(canonical, signature.value):
        return Verdict(False, "bad_signature", key_id)
    return Verdict(True, "ok", key_id)


class IdentityVerifier:
    def __init__(
        self,
        keyring: Keyring,
        tokens: TokenVerifier | None = None,
        replay: ReplayGuard | None = None,
        max_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        self.keyring = keyring
        self.tokens = tokens
        self.replay = replay if replay is not None else ReplayGuard()
        self.max_skew = max_skew

    def verify(self, event: Event, canonical: bytes, position: Position, arrival: datetime | None) -> Verdict:
        return self.verify_many([(event, canonical, position, arrival)])[0]

    def verify_many(self, items: Sequence[tuple[Event, bytes, Position, datetime | None]]) -> list[Verdict]:
        """``verify`` for each item in order; replay memory is searched once for the batch."""
        verdicts = [self._proven(event, canonical, arrival) for event, canonical, _, arrival in items]
        fresh = [n for n, verdict in enumerate(verdicts) if verdict.verified]
        replays = self.replay.check_many([self._remembered(items[n], verdicts[n]) for n in fresh])
        for n, replay in zip(fresh, replays, strict=True):
            if replay:
                verdicts[n] = Verdict(False, "replay", verdicts[n].key_id, verdicts[n].token)
        return verdicts

    def _proven(self, event: Event, canonical: bytes, arrival: datetime | None) -> Verdict:
        """Steps 1-3; a verified verdict here still has to pass the replay check."""
        verdict = verify(event, canonical, self.keyring)
        if not verdict.verified:
            return verdict
        token = self._token(event)
        if event.auth is not None and token is not UNCHECKED_TOKEN and not token.ok:
            return Verdict(False, token.reason, verdict.key_id, token)
        if is_stale(event.ts, arrival, self.max_skew):
            if arrival is not None and event.ts < arrival and self._backfills(verdict.key_id, arrival):
                return Verdict(True, BACKFILL, verdict.key_id, token)
            return Verdict(False, "stale", verdict.key_id, token)
        return Verdict(True, "ok", verdict.key_id, token)

    def _backfills(self, key_id: str, arrival: datetime) -> bool:
        entry = self.keyring.get(key_id)
        return entry is not None and entry.may_backfill(arrival)

    @staticmethod
    def _remembered(
        item: tuple[Event, bytes, Position, datetime | None], verdict: Verdict
    ) -> tuple[str, Position, datetime]:
        """What replay memory keeps of a verified event: its id, place and the time it is
        filed under (its arrival for a backfill, whose own time lies outside the window)."""
        event, _, position, arrival = item
        when = arrival if verdict.reason == BACKFILL and arrival is not None else event.ts
        return event.event_id, position, when

    def _token(self, event: Event) -> TokenResult:
        if event.auth is None:
            return NO_TOKEN
        if self.tokens is None:
            return UNCHECKED_TOKEN
        return self.tokens.verify(event.auth.token, event.principal.id, event.ts)
