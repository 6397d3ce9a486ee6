"""Words and numbers for signals: what changed, by how much, since when."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

CHANGE_WORDS = {
    "mean-up": "mean up",
    "mean-down": "mean down",
    "spread-up": "spread up",
    "spread-down": "spread down",
    "distribution": "distribution changed",
    "rate-up": "rate up",
    "rate-down": "rate down",
}


def g(value: float) -> str:
    return f"{value:.4g}"


def since(evidence: Mapping[str, Any], timeline: deque[datetime], seen: int) -> dict[str, Any]:
    """When the change began, in values ago and, when still remembered, as a time."""
    ago = int(evidence.get("events_since_change", 0))
    when = timeline[-ago].isoformat() if 0 < ago <= len(timeline) else None
    return {
        "events_ago": ago,
        "located": bool(evidence.get("change_located")),
        "first_event_index": max(1, seen - ago + 1),
        "ts": when,
    }


def seasonal_change(evidence: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """What was expected at this time of the cycle and how far the values are from it.

    >>> seasonal_change({"chart": "mean-up", "shift_sigmas": 2.71, "spread_ratio": 1.1,
    ...     "reference": {"mean": 40.0, "sd": 5.0}, "window": {"n": 31, "mean": 53.55, "sd": 5.2},
    ...     "expected": {"when": "Tuesday 14:00"}})[0]
    '2.7 sd above its usual level for Tuesday 14:00 (usual 40 +- 5, 53.55 over the last 31 events)'
    """
    chart = evidence["chart"]
    usual, now = evidence["reference"], evidence["window"]
    expected = evidence["expected"]
    when = expected["when"]
    at = f" for {when}" if when else ""
    if expected.get("learning"):
        at = f" so far, while its {expected['seasonality']} profile is learnt"
    magnitude = {
        "mean_before": usual["mean"],
        "mean_after": now["mean"],
        "shift_sigmas": evidence["shift_sigmas"],
        "spread_ratio": evidence["spread_ratio"],
    }
    if chart.startswith("mean"):
        side = "above" if evidence["shift_sigmas"] >= 0 else "below"
        phrase = f"{abs(evidence['shift_sigmas']):.1f} sd {side} its usual level{at}"
    else:
        phrase = f"spread x{evidence['spread_ratio']:.2g} its usual{at}"
    recent = f"{g(now['mean'])} over the last {int(now['n'])} events"
    phrase += f" (usual {g(usual['mean'])} +- {g(usual['sd'])}, {recent})"
    return phrase, magnitude


def numeric_change(evidence: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Phrase and magnitude of a numeric stream's change."""
    chart = evidence["chart"]
    before, after = evidence["reference"], evidence["window"]
    magnitude: dict[str, Any] = {"mean_before": before["mean"], "mean_after": after["mean"]}
    if "shift_sigmas" in evidence:
        magnitude["shift_sigmas"] = evidence["shift_sigmas"]
        magnitude["spread_ratio"] = evidence["spread_ratio"]
    phrase = f"{CHANGE_WORDS.get(chart, chart)}: mean {g(before['mean'])} -> {g(after['mean'])}"
    if "median" in before and "median" in after:
        phrase += f", median {g(before['median'])} -> {g(after['median'])}"
    if chart.startswith("spread") and "sd" in before:
        phrase += f", sd {g(before['sd'])} -> {g(after['sd'])}"
    elif "shift_sigmas" in evidence:
        phrase += f" ({evidence['shift_sigmas']:+.2f} sd)"
    return phrase, magnitude


def categorical_change(evidence: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    before = evidence["reference"]["shares"]
    after = evidence["window"]["shares"]
    moves = sorted(
        ((k, before.get(k, 0.0), after.get(k, 0.0)) for k in before.keys() | after.keys()),
        key=lambda item: -abs(item[2] - item[1]),
    )[:3]
    shares = ", ".join(f"{k!r} {b:.0%} -> {a:.0%}" for k, b, a in moves)
    phrase = (
        f"distribution changed: {shares} (chi-square {evidence['chi_square']:.1f}, "
        f"df {evidence['df']}, p {evidence['p_value']:.2g}, PSI {evidence['psi']:.2f})"
    )
    magnitude = {"psi": evidence["psi"], "chi_square": evidence["chi_square"], "p_value": evidence["p_value"]}
    return phrase, magnitude


def rate_change(evidence: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    before, after = evidence["reference"]["rate"], evidence["window"]["rate"]
    when = evidence.get("expected", {}).get("when")
    usual = f" (usual for {when})" if when else ""
    phrase = f"{before:.1%}{usual} -> {after:.1%} over the last {evidence['window']['n']} events"
    return phrase, {"rate_before": before, "rate_after": after, "rate_ratio": evidence["rate_ratio"]}


def change(evidence: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    chart = evidence["chart"]
    if chart == "distribution":
        return categorical_change(evidence)
    if chart.startswith("rate"):
        return rate_change(evidence)
    if "expected" in evidence:
        return seasonal_change(evidence)
    return numeric_change(evidence)
