"""``vigil gate``: a CI/CD step that lets a release through only when the policies allow it.

Exit status: 0 allowed, 1 denied, 2 the deployment file is unreadable or invalid (so
a broken pipeline never reads as an approval). The deciding policies and the
controls they evidence are printed either way, as text or JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from cli.support import load_settings
from policies.bundle import PACK_DIR, BundleError
from policies.deployment import Deployment
from policies.engine import PolicyEngine
from policies.inline import inline_request
from policies.inventory import InventoryError
from policies.runtime import PolicyRuntime
from schemas.problems import describe

EXIT_DENIED = 1
EXIT_INVALID = 2


def judge(deployment: Deployment, engine: PolicyEngine, at: datetime) -> dict[str, Any]:
    """The gate's verdict as a document: decision, deciding policies, controls, facts."""
    request = inline_request(deployment.question(), engine.inventory, at)
    (decision,) = engine.decide_many([request])
    return {
        "decision": "allow" if decision.allowed else "deny",
        "action": deployment.action,
        "model": deployment.model,
        "version": deployment.version,
        "artifact_digest": deployment.artifact_digest,
        "requested_by": deployment.requested_by.id,
        "bundle_revision": engine.revision,
        "policies": [{"id": p, **_described(engine, p)} for p in decision.policy_ids],
        "controls": engine.controls_of(decision),
        "facts": dict(request.facts),
        "errors": list(decision.errors),
    }


def _described(engine: PolicyEngine, policy_id: str) -> dict[str, str]:
    info = engine.bundle.info(policy_id)
    if info is None:
        return {"title": "no policy permits it (default deny)", "severity": "medium", "runbook": ""}
    return {"title": info.title, "severity": info.severity, "runbook": info.runbook}


def render_text(verdict: dict[str, Any]) -> str:
    facts = verdict["facts"]
    lines = [
        f"{verdict['decision'].upper()}: {verdict['action']} {verdict['model']} {verdict['version']} "
        f"({verdict['artifact_digest']}) requested by {verdict['requested_by']}",
        f"bundle revision {verdict['bundle_revision']}",
    ]
    lines += [f"  {p['id']} [{p['severity']}] {p['title']}" for p in verdict["policies"]]
    lines.append(f"controls: {', '.join(verdict['controls']) or '-'}")
    shown = (
        "model_status",
        "artifact_matches",
        "approval_present",
        "evaluation",
        "fairness",
        "principal_known",
    )
    lines.append("facts: " + ", ".join(f"{name}={json.dumps(facts[name])}" for name in shown))
    lines += [f"error: {e}" for e in verdict["errors"]]
    return "\n".join(lines)


@click.command()
@click.argument("deployment_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def gate(deployment_file: Path, fmt: str) -> None:
    """Judge a release (DEPLOYMENT_FILE, JSON) against the deploy, register and rollback policies.

    Exits 0 when allowed, 1 when denied, 2 when the file is invalid. Policies and the
    inventory come from the settings (VIGIL_POLICIES_DIR, VIGIL_POLICIES_INVENTORY).
    """
    settings = load_settings()
    try:
        deployment = Deployment.model_validate_json(deployment_file.read_bytes())
    except OSError as error:
        click.echo(f"vigil gate: {deployment_file}: {error.strerror}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    except ValidationError as error:
        click.echo(f"vigil gate: {deployment_file}: {describe(error)}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    try:
        engine = PolicyRuntime(
            settings.policies.dir or PACK_DIR,
            maturities=settings.policies.maturity,
            inventory_path=settings.inventory_path,
        ).engine
    except (BundleError, InventoryError) as error:
        click.echo(f"vigil gate: {error}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    verdict = judge(deployment, engine, datetime.now(UTC))
    click.echo(json.dumps(verdict, indent=2) if fmt == "json" else render_text(verdict))
    if verdict["decision"] != "allow":
        raise SystemExit(EXIT_DENIED)
