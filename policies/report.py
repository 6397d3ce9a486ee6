"""Controls report: per control of a framework, what implements it and what happened.

For auditors: which policies (and their maturity) and which detectors evidence each
control, how many events were decided under it and how many violations (denials
and findings) it recorded in a time range, from ClickHouse.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from policies.bundle import PolicyBundle
from policies.controls import ControlCatalog

FRAMEWORKS = ("eu-ai-act", "nist-ai-rmf", "iso-42001", "nist-800-207", "sr-11-7", "hipaa-security")


@dataclass(frozen=True)
class ControlRow:
    control: str
    text: str
    policies: tuple[str, ...]
    detectors: tuple[str, ...]
    decided: int
    denied: int
    findings: int


def build_report(
    framework: str,
    catalog: ControlCatalog,
    bundle: PolicyBundle,
    detectors: dict[str, set[str]],
    decided: dict[str, tuple[int, int]],
    findings: dict[str, int],
) -> list[ControlRow]:
    """``detectors``: control -> detector names; ``decided``: control -> (decided, denied)."""
    rows = []
    for control, text in catalog.of(framework).items():
        policies = tuple(
            p.id if p.maturity == "stable" else f"{p.id} ({p.maturity})"
            for p in bundle.policies
            if control in p.controls
        )
        total, denied = decided.get(control, (0, 0))
        rows.append(
            ControlRow(
                control=control.split(":", 1)[1],
                text=text,
                policies=policies,
                detectors=tuple(sorted(detectors.get(control, ()))),
                decided=total,
                denied=denied,
                findings=findings.get(control, 0),
            )
        )
    return rows


def render_markdown(rows: list[ControlRow], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        "| Control | Requirement | Policies | Detectors | Decided | Denied | Findings |",
    ]
    lines.append("| --- | --- | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        cells = [
            r.control,
            r.text.replace("|", "\\|"),
            "<br>".join(r.policies) or "—",
            "<br>".join(r.detectors) or "—",
            str(r.decided),
            str(r.denied),
            str(r.findings),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_html(rows: list[ControlRow], title: str) -> str:
    cells = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(v)}</td>"
            for v in (
                r.control,
                r.text,
                ", ".join(r.policies) or "—",
                ", ".join(r.detectors) or "—",
                str(r.decided),
                str(r.denied),
                str(r.findings),
            )
        )
        + "</tr>"
        for r in rows
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Control", "Requirement", "Policies", "Detectors", "Decided", "Denied", "Findings")
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{cells}</tbody></table></body></html>\n"
    )
