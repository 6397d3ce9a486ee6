"""Load a directory of ``.cedar`` files as one versioned policy bundle.

Files load in sorted path order, so cedarpy's positional ids (``policy0``...) map
back to each policy's ``@id`` annotation deterministically. The revision is a
content hash of every file's path and text: a decision row that names it tells an
auditor exactly which rules were in force.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cedarpy

PACK_DIR = Path(__file__).resolve().parent
SEVERITIES = ("info", "low", "medium", "high", "critical")


class BundleError(ValueError):
    """The bundle cannot be loaded; the message names the file."""


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    id: str
    effect: str
    severity: str
    title: str
    file: str


@dataclass(frozen=True)
class PolicyBundle:
    text: str
    policy_set: cedarpy.PolicySet
    by_position: dict[str, PolicyInfo]
    revision: str

    @property
    def policies(self) -> list[PolicyInfo]:
        return list(self.by_position.values())


def load_bundle(directory: Path = PACK_DIR) -> PolicyBundle:
    files = sorted(p for p in directory.rglob("*.cedar") if p.is_file())
    if not files:
        raise BundleError(f"{directory}: no .cedar files")
    digest = hashlib.sha256()
    texts: list[str] = []
    by_position: dict[str, PolicyInfo] = {}
    seen_ids: dict[str, str] = {}
    for path in files:
        relative = path.relative_to(directory).as_posix()
        text = path.read_text(encoding="utf-8")
        digest.update(relative.encode() + b"\0" + text.encode() + b"\0")
        for info in _policies_in(text, relative):
            if info.id in seen_ids:
                raise BundleError(f"{relative}: @id {info.id!r} already used in {seen_ids[info.id]}")
            seen_ids[info.id] = relative
            by_position[f"policy{len(by_position)}"] = info
        texts.append(text)
    combined = "\n".join(texts)
    return PolicyBundle(
        text=combined,
        policy_set=cedarpy.PolicySet.from_str(combined),
        by_position=by_position,
        revision=digest.hexdigest()[:16],
    )


def _policies_in(text: str, relative: str) -> list[PolicyInfo]:
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except Exception as error:  # cedarpy raises plain exceptions carrying parse errors
        raise BundleError(f"{relative}: {error}") from error
    infos = []
    # cedarpy numbers policies in source order: policy0, policy1, ...
    statics = parsed.get("staticPolicies", {})
    for position in sorted(statics, key=lambda name: int(name.removeprefix("policy"))):
        body = statics[position]
        notes = body.get("annotations", {})
        if "id" not in notes:
            raise BundleError(f"{relative}: policy #{position} has no @id annotation")
        severity = notes.get("severity", "medium")
        if severity not in SEVERITIES:
            raise BundleError(f"{relative}: @id {notes['id']!r} has unknown @severity {severity!r}")
        infos.append(
            PolicyInfo(
                id=notes["id"],
                effect=body["effect"],
                severity=severity,
                title=notes.get("title", notes["id"]),
                file=relative,
            )
        )
    return infos
