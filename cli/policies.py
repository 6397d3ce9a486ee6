"""``vigil policy validate|test|replay`` and ``vigil controls report``.

Policy owners run ``validate`` and ``test`` in their own CI; ``replay`` shows what a
candidate bundle would change on real history before it is rolled out; auditors
read ``controls report``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from cli.support import DURATION, existing_store, load_settings, print_json, print_table
from detectors.findings import controls_by_rule
from identity.verify import IDENTITY_CONTROLS
from policies.bundle import MATURITIES, PACK_DIR, BundleError, load_bundle, validate_bundle
from policies.controls import load_catalog
from policies.engine import PolicyEngine
from policies.replay import REPLAY_COLUMNS, replay
from policies.report import FRAMEWORKS, build_report, render_html, render_markdown
from policies.suites import SuiteError, run_suites
from sinks.query_server import QueryError
from sinks.reader import read_rows

_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Policy bundle directory (default: the configured one, else the packaged pack).",
)


def _directory(directory: Path | None) -> Path:
    return directory or load_settings().policies.dir or PACK_DIR


@click.group("policy")
def policy_group() -> None:
    """Validate, test and shadow-evaluate policy bundles."""


@policy_group.command()
@_DIR
def validate(directory: Path | None) -> None:
    """Parse every policy of every maturity and check it against the Cedar schema."""
    directory = _directory(directory)
    try:
        bundle = load_bundle(directory, MATURITIES)
    except BundleError as error:
        raise click.ClickException(str(error)) from error
    problems = validate_bundle(bundle)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {directory}")
    click.echo(f"ok: {len(bundle.policies)} policies valid against the schema, revision {bundle.revision}")


@policy_group.command("test")
@_DIR
def test_command(directory: Path | None) -> None:
    """Run every policy family's suite.yaml; print coverage; fail on any failing case."""
    directory = _directory(directory)
    try:
        report = run_suites(directory)
    except (BundleError, SuiteError) as error:
        raise click.ClickException(str(error)) from error
    for failure in report.failures:
        case = failure.case
        got = "allow" if failure.allowed else "deny"
        click.echo(
            f"FAIL {failure.suite}: {case.name}\n"
            f"     expected {case.expect} by {', '.join(case.deciding) or 'any policy'}, "
            f"got {got} by {', '.join(failure.policy_ids) or 'nothing'}"
            + (f"; errors: {'; '.join(failure.errors)}" if failure.errors else ""),
            err=True,
        )
    for missing in report.missing_suites:
        click.echo(f"MISSING {missing}: every policy folder needs its test cases", err=True)
    click.echo(f"\n{'policy':42} {'file':40} cases")
    for policy_id, count in sorted(report.coverage.items(), key=lambda kv: (kv[1], kv[0])):
        marker = "  <- never exercised" if count == 0 else ""
        click.echo(f"{policy_id:42} {report.policies[policy_id]:40} {count:5}{marker}")
    passed = len(report.results) - len(report.failures)
    click.echo(f"\n{passed}/{len(report.results)} cases passed")
    if not report.ok:
        raise SystemExit(1)


@policy_group.command("replay")
@click.option(
    "--candidate",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of the candidate bundle.",
)
@click.option(
    "--since",
    type=DURATION,
    default="24h",
    show_default=True,
    help="How far back: 30m, 1h30m, 7d, 2w or ISO 8601.",
)
@click.option("--maturity", default="stable", show_default=True, help="Maturities to load, comma separated.")
@click.option("--examples", default=3, show_default=True, help="Example event ids per change.")
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when any decision would change (for CI).")
def replay_command(
    candidate: Path, since: timedelta, maturity: str, examples: int, fail_on_change: bool
) -> None:
    """Re-decide stored events with a candidate bundle and show what would change."""
    settings = load_settings()
    try:
        bundle = load_bundle(candidate, tuple(m.strip() for m in maturity.split(",")))
    except BundleError as error:
        raise click.ClickException(str(error)) from error
    problems = validate_bundle(bundle)
    if problems:
        raise click.ClickException("candidate does not validate:\n" + "\n".join(problems))
    start = datetime.now(UTC) - since
    query = (
        f"SELECT {REPLAY_COLUMNS} FROM decisions_unique "
        f"WHERE (topic, partition, offset) IN ({_arrived(_POSITION, bounded=False)}) ORDER BY ts"
    )
    try:
        diff = replay(
            read_rows(existing_store(settings), query, _range(start)), PolicyEngine(bundle), examples
        )
    except QueryError as error:
        raise click.ClickException(str(error)) from error
    share = 100 * diff.changed / diff.replayed if diff.replayed else 0.0
    click.echo(
        f"Replayed {diff.replayed} decisions since {start:%Y-%m-%d %H:%M} UTC against candidate "
        f"revision {bundle.revision}: {diff.changed} would change ({share:.2f}%)."
    )
    if diff.skipped:
        click.echo(f"Skipped {diff.skipped} decisions recorded without their request.")
    for (old, old_ids, new, new_ids), count in diff.changes.most_common():
        sample = ", ".join(diff.examples[(old, old_ids, new, new_ids)])
        click.echo(
            f"  {count:7}  {old} by {','.join(old_ids)}  ->  {new} by {','.join(new_ids)}   e.g. {sample}"
        )
    if diff.changed:
        click.echo("\nBy policy:")
        for policy_id, count in diff.by_policy().most_common():
            click.echo(f"  {count:7}  {policy_id}")
    if fail_on_change and diff.changed:
        raise SystemExit(1)


_POSITION = "topic, partition, offset"


def _arrived(columns: str, bounded: bool = True) -> str:
    """Events the monitor received in [since, until), as a subquery of ``columns``.

    Time ranges select by arrival (``received_at``, the monitor's clock), never by the
    producers' ``ts``: a producer clock running behind, or a backfill, must not move
    evidence out of the range it was collected in.
    """
    until = " AND received_at < {until:DateTime64(6, 'UTC')}" if bounded else ""
    return f"SELECT {columns} FROM events_unique WHERE received_at >= {{since:DateTime64(6, 'UTC')}}{until}"


def _range(start: datetime, end: datetime | None = None) -> dict[str, str | int]:
    """The bound values of :func:`_arrived`'s placeholders."""
    bounds = {"since": start} if end is None else {"since": start, "until": end}
    return {name: f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}" for name, moment in bounds.items()}


def _implementing_checks() -> dict[str, set[str]]:
    """Control -> the detector rules and identity checks that evidence it, statically."""
    checks: dict[str, set[str]] = {control: {"identity verification"} for control in IDENTITY_CONTROLS}
    for rule, controls in controls_by_rule().items():
        for control in controls:
            checks.setdefault(control, set()).add(rule)
    return checks


@click.group("controls")
def controls_group() -> None:
    """Evidence per compliance control."""


@controls_group.command("report")
@click.option("--framework", required=True, type=click.Choice(FRAMEWORKS))
@click.option(
    "--since",
    type=DURATION,
    default="30d",
    show_default=True,
    help="Start of the range, as a duration ago: 24h, 7d, 2w...",
)
@click.option(
    "--until", type=DURATION, default=None, help="End of the range, as a duration ago (default now)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "html", "json"]),
    default="table",
    show_default=True,
    help="table fits 120 columns; json has every field of every control.",
)
@_DIR
def report_command(
    framework: str, since: timedelta, until: timedelta | None, fmt: str, directory: Path | None
) -> None:
    """Per control: the policies and detectors implementing it, decisions and violations."""
    settings = load_settings()
    store_url = existing_store(settings)
    now = datetime.now(UTC)
    start, end = now - since, now - (until or timedelta(0))
    try:
        bundle = load_bundle(_directory(directory), MATURITIES)
    except BundleError as error:
        raise click.ClickException(str(error)) from error
    try:
        decided = {
            r["control"]: (int(r["decided"]), int(r["denied"]))
            for r in read_rows(
                store_url,
                "SELECT arrayJoin(controls) AS control, count() AS decided, countIf(decision = 'deny') "
                f"AS denied FROM decisions_unique WHERE (topic, partition, offset) "
                f"IN ({_arrived(_POSITION)}) GROUP BY control",
                _range(start, end),
            )
        }
        findings: dict[str, int] = {}
        detectors = _implementing_checks()
        for r in read_rows(
            store_url,
            "SELECT arrayJoin(JSONExtract(details, 'controls', 'Array(String)')) AS control, stage, "
            f"detector_or_rule AS rule, count() AS n FROM findings_unique "
            f"WHERE event_id IN ({_arrived('event_id')}) GROUP BY ALL",
            _range(start, end),
        ):
            findings[r["control"]] = findings.get(r["control"], 0) + int(r["n"])
            if r["stage"] == "detector":
                detectors.setdefault(r["control"], set()).add(r["rule"])
    except QueryError as error:
        raise click.ClickException(str(error)) from error
    catalog = load_catalog()
    rows = build_report(framework, catalog, bundle, detectors, decided, findings)
    title = f"{catalog.frameworks[framework]}: evidence {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if fmt == "markdown":
        click.echo(render_markdown(rows, title), nl=False)
    elif fmt == "html":
        click.echo(render_html(rows, title), nl=False)
    elif fmt == "json":
        print_json([{"framework": framework, "since": start, "until": end, **asdict(r)} for r in rows])
    else:
        click.echo(title + "\n")
        header = ["CONTROL", "POLICIES", "DETECTORS", "DECIDED", "DENIED", "FINDINGS"]
        cells = [
            [
                r.control,
                "\n".join(r.policies) or "-",
                "\n".join(r.detectors) or "-",
                r.decided,
                r.denied,
                r.findings,
            ]
            for r in rows
        ]
        print_table(header, cells, wrap={"POLICIES", "DETECTORS"})
