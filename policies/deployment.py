"""A release as a CI/CD pipeline describes it, turned into the question ``vigil gate`` asks.

The pipeline writes one JSON file per release: the model, its version and artifact
digest, who asks (``requested_by``), the evaluation and fairness metrics it measured,
and the approvals it holds. The gate judges it with the same policies and inventory
as everything else: the registered digest, a recorded approval, the release roles and
the thresholds the inventory sets for the model (``policies/stable/deploy``).

An approval counts only when someone other than the requester gave it: a release
approved by its own requester has no second pair of eyes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from policies.inline import InlineQuestion
from schemas import Approval, Identifier, PrincipalRef, StrictModel

Metric = Annotated[float, Field(allow_inf_nan=False)]


class Deployment(StrictModel):
    model: Identifier
    version: Identifier
    artifact_digest: Identifier
    action: Literal["deploy", "register", "rollback"] = "deploy"
    requested_by: PrincipalRef
    evaluation: dict[Identifier, Metric] = Field(default_factory=dict)
    fairness: dict[Identifier, Metric] = Field(default_factory=dict)
    approvals: tuple[Approval, ...] = ()

    @model_validator(mode="after")
    def _metric_names_unique(self) -> Deployment:
        both = sorted(set(self.evaluation) & set(self.fairness))
        if both:
            raise ValueError(f"metrics {both} appear under both evaluation and fairness")
        return self

    @property
    def independent_approvals(self) -> tuple[Approval, ...]:
        return tuple(a for a in self.approvals if a.approver != self.requested_by.id)

    def question(self) -> InlineQuestion:
        metrics = {**self.evaluation, **self.fairness}
        return InlineQuestion(
            principal_id=self.requested_by.id,
            principal_kind=self.requested_by.kind,
            action=self.action,
            resource_kind="model",
            resource_id=self.model,
            artifact_digest=self.artifact_digest,
            approval_present=bool(self.independent_approvals),
            metrics=tuple(sorted(metrics.items())),
        )
