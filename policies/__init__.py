"""Governance as code: Cedar policy bundles, default deny, with cached decisions.

The ``.cedar`` files of the bundled pack live beside this package (``stable/``,
``incubating/``); ``policies.engine`` evaluates them and ``policies.requests`` turns
an event into the Cedar request the policies see.
"""

from policies.bundle import BundleError, PolicyBundle, PolicyInfo, load_bundle
from policies.decisions import decision_row
from policies.engine import Decision, PolicyEngine
from policies.findings import policy_finding
from policies.requests import AuthzRequest, request_for

__all__ = [
    "AuthzRequest",
    "BundleError",
    "Decision",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyInfo",
    "decision_row",
    "load_bundle",
    "policy_finding",
    "request_for",
]
