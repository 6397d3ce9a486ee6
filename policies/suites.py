"""Policy test suites: each policy family's ``suite.yaml`` beside its ``policy.cedar``.

A case is a request (principal, roles, action, resource, facts) and the expected
decision with the ``@id``s that must decide it. Cases run against the bundle of
their own maturity (stable suites against stable policies; incubating suites
against stable + incubating), as each would be deployed. Coverage counts a policy
as exercised when it decided at least one case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policies.bundle import MATURITIES, PolicyBundle, load_bundle, policy_files
from policies.engine import PolicyEngine
from policies.facts import FACT_DEFAULTS, FactValue, complete
from policies.requests import AuthzRequest
from schemas.problems import describe

SUITE_FILE = "suite.yaml"
_SUITE_BASE: dict[str, FactValue] = {**FACT_DEFAULTS, "verified": True}
"""Cases describe verified events unless they say otherwise."""


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and the case."""


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    principal: str = Field(pattern=r"^(User|Service)::.+$")
    roles: tuple[str, ...] = ()
    action: str
    resource: str = Field(pattern=r"^(Model|Dataset|Endpoint|FeatureStore|User|Service)::.+$")
    facts: dict[str, FactValue] = Field(default_factory=dict)
    expect: Literal["allow", "deny"]
    deciding: tuple[str, ...] = ()

    def request(self, defaults: dict[str, FactValue]) -> AuthzRequest:
        principal_type, principal_id = self.principal.split("::", 1)
        resource_type, resource_id = self.resource.split("::", 1)
        return AuthzRequest(
            principal_type=principal_type,
            principal_id=principal_id,
            roles=tuple(sorted(self.roles)),
            action=self.action,
            resource_type=resource_type,
            resource_id=resource_id,
            facts=complete({**_SUITE_BASE, **defaults, **self.facts}),
        )


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facts: dict[str, FactValue] = Field(default_factory=dict)
    """Facts every case of the suite starts from."""
    cases: list[Case] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    suite: str
    case: Case
    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def passed(self) -> bool:
        expected_ids = set(self.case.deciding)
        return (
            (self.case.expect == "allow") == self.allowed
            and (not expected_ids or expected_ids == set(self.policy_ids))
            and not self.errors
        )


@dataclass
class SuiteReport:
    results: list[CaseResult] = field(default_factory=list)
    missing_suites: list[str] = field(default_factory=list)
    policies: dict[str, str] = field(default_factory=dict)
    """Every policy id of every maturity, with the file it lives in."""

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def coverage(self) -> dict[str, int]:
        """Policy id -> how many cases it decided (0: never exercised)."""
        counts = dict.fromkeys(self.policies, 0)
        for result in self.results:
            for policy_id in result.policy_ids:
                if policy_id in counts:
                    counts[policy_id] += 1
        return counts

    @property
    def ok(self) -> bool:
        return not self.failures and not self.missing_suites


def run_suites(directory: Path) -> SuiteReport:
    report = SuiteReport()
    for level, maturity in enumerate(MATURITIES):
        files = policy_files(directory, (maturity,))
        if not files:
            continue
        bundle = load_bundle(directory, MATURITIES[: level + 1])
        engine = PolicyEngine(bundle)
        report.policies.update({p.id: p.file for p in bundle.policies if p.maturity == maturity})
        for folder in sorted({f.parent for f in files}):
            suite_path = folder / SUITE_FILE
            relative = suite_path.relative_to(directory).as_posix()
            if not suite_path.is_file():
                report.missing_suites.append(relative)
                continue
            report.results.extend(_run(load_suite(suite_path, relative), relative, engine, bundle))
    return report


def load_suite(path: Path, relative: str) -> Suite:
    try:
        return Suite.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except yaml.YAMLError as error:
        raise SuiteError(f"{relative}: not valid YAML: {error}") from error
    except ValidationError as error:
        raise SuiteError(f"{relative}: {describe(error)}") from error


def _run(suite: Suite, relative: str, engine: PolicyEngine, bundle: PolicyBundle) -> list[CaseResult]:
    try:
        requests = [case.request(suite.facts) for case in suite.cases]
    except KeyError as error:
        raise SuiteError(f"{relative}: {error.args[0]}") from error
    known = {p.id for p in bundle.policies} | {"default-deny"}
    for case in suite.cases:
        unknown = set(case.deciding) - known
        if unknown:
            raise SuiteError(f"{relative}: case {case.name!r} expects unknown policies {sorted(unknown)}")
    decisions = engine.decide_many(requests)
    return [
        CaseResult(relative, case, d.allowed, d.policy_ids, d.errors)
        for case, d in zip(suite.cases, decisions, strict=True)
    ]
