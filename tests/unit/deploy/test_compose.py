"""docker-compose.yml and the Dockerfile: valid against the Compose Specification, and deployable.

The schema is the Compose Specification's own (vendored beside this file, README.md says
from where). Beyond the schema: every service can tell whether it is healthy, the
workers sign with one shared key and share the keys and checkpoint volumes while each
keeps its own data, every ``VIGIL_*`` variable names a real setting, and the image runs
as an unprivileged user with a healthcheck, its dependencies installed before the source.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from audit.keys import load_or_create_signer
from vigil.settings import Settings

REPO = Path(__file__).resolve().parents[3]
SCHEMA = Path(__file__).with_name("compose-spec.json")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("command") == ["worker"]}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path to source (named volume or host path) of each short-form mount."""
    return {m.split(":")[1]: m.split(":")[0] for m in service.get("volumes", [])}


def compose_validator() -> jsonschema.Draft7Validator:
    """The schema declares draft-07 (``$schema`` without the trailing ``#`` jsonschema keys on)."""
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"].startswith("https://json-schema.org/draft-07/")
    return jsonschema.Draft7Validator(schema)


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = compose_validator()
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert problems == []


def test_the_schema_check_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "kafka": {**compose["services"]["kafka"]}}}
    broken["services"]["kafka"]["helthcheck"] = broken["services"]["kafka"].pop("healthcheck")
    assert not compose_validator().is_valid(broken)


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} has its healthcheck disabled"


def test_workers_and_notifiers_probe_their_own_health_endpoint_and_are_scraped(
    compose: dict[str, Any],
) -> None:
    processes = {
        name: s for name, s in compose["services"].items() if s.get("command") in (["worker"], ["notifier"])
    }
    assert set(workers(compose)) < set(processes)  # a notifier too
    for name, service in processes.items():
        assert "/healthz" in " ".join(service["healthcheck"]["test"]), name
    scraped = yaml.safe_load((REPO / "deploy/prometheus.yml").read_text())
    targets = {t for job in scraped["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {f"{name}:9108" for name in processes}


def test_workers_sign_with_one_shared_key_and_share_keys_and_checkpoints(compose: dict[str, Any]) -> None:
    found = workers(compose)
    assert len(found) >= 2
    secrets = {json.dumps(s["secrets"], sort_keys=True) for s in found.values()}
    assert len(secrets) == 1  # the same audit signing key, given the same way
    (secret,) = next(iter(found.values()))["secrets"]
    assert secret["source"] in compose["secrets"]
    for name, service in found.items():
        environment = service["environment"]
        assert environment["VIGIL_AUDIT_SIGNING_KEY_FILE"] == f"/run/secrets/{secret['target']}", name
    keys = {mounts(s)["/var/lib/vigil/keys"] for s in found.values()}
    checkpoints = {mounts(s)["/var/lib/vigil/checkpoints"] for s in found.values()}
    data = [mounts(s)["/var/lib/vigil/data"] for s in found.values()]
    assert len(keys) == 1
    assert keys <= set(compose["volumes"])
    assert len(checkpoints) == 1
    assert checkpoints <= set(compose["volumes"])
    assert len(set(data)) == len(data)
    assert set(data) <= set(compose["volumes"])


def test_every_named_volume_is_declared(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source in mounts(service).values():
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"


def test_every_vigil_variable_names_a_setting(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [name for name in os.environ if name.startswith("VIGIL_")]:
        monkeypatch.delenv(variable)  # only the compose file's variables are judged
    for service in workers(compose).values():
        for variable in service["environment"]:
            monkeypatch.setenv(variable, "x")
    assert Settings.unknown_environment() == []


def test_the_documented_key_command_makes_a_key_vigil_signs_with(tmp_path: Path) -> None:
    header = (REPO / "docker-compose.yml").read_text()
    command = re.search(r"openssl genpkey -algorithm ed25519 -out (\S+)", header)
    assert command is not None
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(tmp_path / "audit-signing.key")],
        check=True,
        capture_output=True,
    )
    assert command.group(1) == next(iter(_secret_files(header)))
    assert load_or_create_signer(tmp_path / "audit-signing.key").key_id


def _secret_files(text: str) -> list[str]:
    return [s["file"].removeprefix("./") for s in yaml.safe_load(text)["secrets"].values()]


def test_the_image_runs_unprivileged_with_a_healthcheck_dependencies_first() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    stages = [n for n, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) == 2, "a build stage that compiles, and the image that runs"
    build, image = lines[stages[0] : stages[1]], lines[stages[1] :]
    assert any("gcc" in line for line in build)
    assert not any("gcc" in line or line == "COPY . ." for line in image), "no compiler, no source"
    users = [line.split()[1] for line in image if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in image)
    install = next(n for n, line in enumerate(image) if "pip install -c constraints.txt" in line)
    wheel = next(n for n, line in enumerate(image) if line.startswith("COPY --from=build"))
    assert install < wheel
    assert image.index(next(line for line in image if line.startswith("COPY pyproject.toml"))) < install
