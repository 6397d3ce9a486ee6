"""vigil gate's judgement: a release file against the deploy policies and the inventory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cli.gate import judge
from policies.bundle import load_bundle
from policies.deployment import Deployment
from policies.engine import PolicyEngine
from policies.inventory import load_inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
AT = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(load_bundle(), load_inventory(EXAMPLES / "inventory.yaml"))


def release(**changes: Any) -> Deployment:
    """The example release file, with some of its metrics or fields changed (``None`` removes one)."""
    document = json.loads((EXAMPLES / "deployment.json").read_text())
    for name, value in changes.items():
        if isinstance(value, dict) and isinstance(document.get(name), dict):
            merged = {**document[name], **value}
            document[name] = {k: v for k, v in merged.items() if v is not None}
        else:
            document[name] = value
    return Deployment.model_validate_json(json.dumps(document))


def verdict(engine: PolicyEngine, deployment: Deployment) -> tuple[str, list[str]]:
    result = judge(deployment, engine, AT)
    return result["decision"], [p["id"] for p in result["policies"]]


def test_the_example_release_passes(engine: PolicyEngine) -> None:
    assert verdict(engine, release()) == ("allow", ["deploy-by-release-managers"])


@pytest.mark.parametrize(
    ("changes", "deciding"),
    [
        ({"evaluation": {"auc": 0.8}}, ["release-meets-evaluation-thresholds"]),
        ({"evaluation": {"auc": 0.95, "recall_at_5pct_fpr": None}}, ["release-meets-evaluation-thresholds"]),
        ({"fairness": {"demographic_parity_difference": 0.2}}, ["release-meets-fairness-thresholds"]),
        ({"artifact_digest": "sha256:hotfix-built-on-a-laptop"}, ["deploy-artifact-matches-registry"]),
        ({"approvals": []}, ["deploy-requires-approval"]),
        ({"approvals": [{"ticket": "CHG-1", "approver": "rita"}]}, ["deploy-requires-approval"]),
        ({"requested_by": {"id": "alice", "kind": "user"}}, ["default-deny"]),
    ],
    ids=[
        "auc",
        "missing-metric",
        "parity",
        "digest",
        "no-approval",
        "self-approval",
        "not-a-release-manager",
    ],
)
def test_each_release_rule_can_stop_a_release(
    engine: PolicyEngine, changes: dict[str, Any], deciding: list[str]
) -> None:
    if changes.get("evaluation", {}).get("recall_at_5pct_fpr", 0) is None:
        document = release().model_dump()
        del document["evaluation"]["recall_at_5pct_fpr"]
        deployment = Deployment.model_validate(
            {**document, "evaluation": {**document["evaluation"], "auc": 0.95}}
        )
    else:
        deployment = release(**changes)
    assert verdict(engine, deployment) == ("deny", deciding)


def test_the_verdict_names_the_controls_evidenced(engine: PolicyEngine) -> None:
    result = judge(release(fairness={"equal_opportunity_difference": 0.3}), engine, AT)
    assert "sr-11-7:validation-outcomes" in result["controls"]
    assert "nist-ai-rmf:MEASURE-2.11" in result["controls"]
    assert result["facts"]["fairness"] == "fail"


def test_a_metric_under_both_headings_is_refused() -> None:
    with pytest.raises(ValidationError, match="both evaluation and fairness"):
        release(fairness={"auc": 0.1})
