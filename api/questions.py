"""The request bodies of ``POST /v1/decide`` and ``/v1/decide/batch``, validated strictly.

A question is either plain (principal, action, resource, context) or a signed event
(``{"event": {...}}``), which is verified exactly as the worker verifies it. Unknown
fields are errors, as in the event schemas: a typo must not silently ask a different
question.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter

from policies.inline import InlineQuestion
from schemas import Approval, Identifier, PrincipalRef, StrictModel
from schemas.events import ACCESS_ACTIONS, LIFECYCLE_ACTIONS

ACTIONS = ("infer", "feedback", *LIFECYCLE_ACTIONS, *ACCESS_ACTIONS)
"""What a caller may ask about; ``act_on_behalf`` is asked by the API itself, never by a caller."""
MAX_BATCH = 1000
"""Questions per batch request: a bound on the work one request holds the event loop for."""


class ResourceRef(StrictModel):
    kind: Literal["model", "dataset", "endpoint", "feature_store"]
    id: Identifier


class Context(StrictModel):
    """What only the caller knows about the action it is about to take."""

    artifact_digest: Identifier | None = None
    dataset_id: Identifier | None = None
    dataset_digest: Identifier | None = None
    approval: Approval | None = None


class Question(StrictModel):
    principal: PrincipalRef
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    resource: ResourceRef
    context: Context = Context()

    def inline(self, mfa: bool) -> InlineQuestion:
        context = self.context
        return InlineQuestion(
            principal_id=self.principal.id,
            principal_kind=self.principal.kind,
            action=self.action,
            resource_kind=self.resource.kind,
            resource_id=self.resource.id,
            artifact_digest=context.artifact_digest,
            dataset_id=context.dataset_id,
            dataset_digest=context.dataset_digest,
            approval_present=context.approval is not None,
            mfa=mfa,
        )


class SignedEvent(StrictModel):
    """An event as a producer signs it; decoded and verified like one from a topic."""

    event: dict[str, Any]


def _form(value: object) -> str:
    """Which form a question takes, decided once instead of trying both schemas."""
    if isinstance(value, SignedEvent) or (isinstance(value, dict) and "event" in value):
        return "event"
    return "question"


Item = Annotated[
    Annotated[Question, Tag("question")] | Annotated[SignedEvent, Tag("event")],
    Discriminator(_form),
]
ITEM: TypeAdapter[Item] = TypeAdapter(Item)


class Batch(StrictModel):
    requests: list[Item] = Field(min_length=1, max_length=MAX_BATCH)


BATCH: TypeAdapter[Batch] = TypeAdapter(Batch)
