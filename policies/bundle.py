"""Load a directory of ``.cedar`` files as one versioned policy bundle.

Layout: ``<dir>/stable/`` and ``<dir>/incubating/`` hold one folder per policy
family (``policy.cedar`` beside its ``suite.yaml``); which maturities load is a
setting (stable only by default). ``<dir>/schema.cedarschema`` declares entity
types, actions and the context; the packaged schema is used when a bundle has none.

Files load in sorted path order, so cedarpy's positional ids (``policy0``...) map
back to each policy's ``@id`` deterministically. Every policy must carry ``@id``,
``@severity``, ``@title`` and ``@controls``; ``@runbook`` is recommended. The
revision is a content hash of the schema and every loaded file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from policies.controls import ControlCatalog, load_catalog
from schemas import Severity, parse_severity

PACK_DIR = Path(__file__).resolve().parent
SCHEMA_FILE = "schema.cedarschema"
MATURITIES = ("stable", "incubating")
REQUIRED_ANNOTATIONS = ("id", "severity", "title", "controls")
_POLICY_START = re.compile(r"^\s*@id\(")


class BundleError(ValueError):
    """The bundle cannot be loaded; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    id: str
    effect: str
    severity: Severity
    title: str
    runbook: str
    controls: tuple[str, ...]
    file: str
    line: int

    @property
    def maturity(self) -> str:
        head = self.file.split("/", 1)[0]
        return head if head in MATURITIES else "stable"


@dataclass(frozen=True)
class PolicyBundle:
    directory: Path
    text: str
    schema: str
    policy_set: cedarpy.PolicySet
    by_position: dict[str, PolicyInfo]
    revision: str

    @property
    def policies(self) -> list[PolicyInfo]:
        return list(self.by_position.values())

    def info(self, policy_id: str) -> PolicyInfo | None:
        return next((p for p in self.by_position.values() if p.id == policy_id), None)


def policy_files(directory: Path, maturities: tuple[str, ...] = ("stable",)) -> list[Path]:
    """The ``.cedar`` files of the chosen maturities; a flat directory loads whole."""
    if any((directory / m).is_dir() for m in MATURITIES):
        roots = [directory / m for m in maturities if (directory / m).is_dir()]
    else:
        roots = [directory]
    return sorted(p for root in roots for p in root.rglob("*.cedar") if p.is_file())


def load_bundle(
    directory: Path = PACK_DIR,
    maturities: tuple[str, ...] = ("stable",),
    catalog: ControlCatalog | None = None,
) -> PolicyBundle:
    unknown = set(maturities) - set(MATURITIES)
    if unknown:
        raise BundleError(f"unknown maturity {sorted(unknown)}; use {', '.join(MATURITIES)}")
    files = policy_files(directory, maturities)
    if not files:
        raise BundleError(f"{directory}: no .cedar files")
    catalog = catalog or load_catalog()
    schema_path = directory / SCHEMA_FILE
    schema = (schema_path if schema_path.is_file() else PACK_DIR / SCHEMA_FILE).read_text(encoding="utf-8")
    digest = hashlib.sha256(schema.encode() + b"\0")
    texts: list[str] = []
    by_position: dict[str, PolicyInfo] = {}
    seen_ids: dict[str, str] = {}
    for path in files:
        relative = path.relative_to(directory).as_posix()
        text = path.read_text(encoding="utf-8")
        digest.update(relative.encode() + b"\0" + text.encode() + b"\0")
        for info in _policies_in(text, relative, catalog):
            if info.id in seen_ids:  # reported where the second one starts
                raise BundleError(
                    f"{relative}:{info.line}: @id {info.id!r} already used in {seen_ids[info.id]}"
                )
            seen_ids[info.id] = relative
            by_position[f"policy{len(by_position)}"] = info
        texts.append(text)
    combined = "\n".join(texts)
    return PolicyBundle(
        directory=directory,
        text=combined,
        schema=schema,
        policy_set=cedarpy.PolicySet.from_str(combined),
        by_position=by_position,
        revision=digest.hexdigest()[:16],
    )


def validate_bundle(bundle: PolicyBundle) -> list[str]:
    """Schema validation (unknown attributes, actions, entity types), as ``file:line: message``."""
    result = cedarpy.validate_policies(bundle.text, bundle.schema)
    problems = []
    for error in result.errors:
        info = bundle.by_position.get(error.policy_id)
        where = f"{info.file}:{info.line}" if info else "bundle"
        message = error.error.replace(f"for policy `{error.policy_id}`, ", "")
        name = f" (@id {info.id})" if info else ""
        problems.append(f"{where}: {message}{name}")
    return problems


def _policies_in(text: str, relative: str, catalog: ControlCatalog) -> list[PolicyInfo]:
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except Exception as error:  # cedarpy raises plain ValueErrors without positions
        raise BundleError(f"{relative}:{_first_bad_line(text)}: {error}") from error
    infos = []
    statics = parsed.get("staticPolicies", {})
    starts = _policy_starts(text)
    for index, position in enumerate(sorted(statics, key=lambda name: int(name.removeprefix("policy")))):
        body = statics[position]
        notes = body.get("annotations", {})
        line = starts[index] if index < len(starts) else 1
        missing = [a for a in REQUIRED_ANNOTATIONS if a not in notes]
        if missing:
            label = f"@id {notes['id']!r}" if "id" in notes else f"policy #{position}"
            raise BundleError(f"{relative}:{line}: {label} lacks @{', @'.join(missing)}")
        try:
            severity = parse_severity(notes["severity"])
        except ValueError as error:
            raise BundleError(f"{relative}:{line}: @severity: {error}") from None
        controls = tuple(c.strip() for c in notes["controls"].split(",") if c.strip())
        unknown = [c for c in controls if c not in catalog.controls]
        if unknown or not controls:
            raise BundleError(f"{relative}:{line}: @controls names unknown controls {unknown or '(none)'}")
        infos.append(
            PolicyInfo(
                id=notes["id"],
                effect=body["effect"],
                severity=severity,
                title=notes["title"],
                runbook=notes.get("runbook", ""),
                controls=controls,
                file=relative,
                line=line,
            )
        )
    return infos


def _policy_starts(text: str) -> list[int]:
    """1-based first line of each policy (its first annotation, or permit/forbid).

    cedarpy reports no source positions; a policy starts at the first annotation or
    effect keyword after the previous policy's closing ``;``.
    """
    starts, inside = [], False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if not inside and (line.startswith("@") or line.startswith(("permit", "forbid"))):
            starts.append(number)
            inside = True
        if inside and line.endswith(";"):
            inside = False
    return starts


def _first_bad_line(text: str) -> int:
    """Where the first unparsable policy starts: cedarpy reports no positions."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _POLICY_START.match(line)] or [0]
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        try:
            cedarpy.policies_to_json_str("\n".join(lines[start:end]))
        except Exception:
            return start + 1
    return 1
