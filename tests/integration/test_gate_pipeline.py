"""The example release pipeline's gate step, run as the pipeline runs it (docs/examples)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def _gate_step() -> tuple[str, dict[str, str]]:
    pipeline = yaml.safe_load((EXAMPLES / "release-pipeline.yml").read_text())
    job = pipeline["jobs"]["release"]
    (step,) = [s for s in job["steps"] if s.get("name") == "Policy gate"]
    return step["run"], {**job.get("env", {}), **step.get("env", {})}


def _run_gate(workspace: Path, deployment: dict[str, object]) -> subprocess.CompletedProcess[str]:
    """Lay out the workspace the pipeline's earlier steps leave, then run the gate step in it."""
    (workspace / "build").mkdir(exist_ok=True)
    (workspace / "governance").mkdir(exist_ok=True)
    (workspace / "build" / "deployment.json").write_text(json.dumps(deployment), encoding="utf-8")
    shutil.copy(EXAMPLES / "inventory.yaml", workspace / "governance" / "inventory.yaml")
    command, env = _gate_step()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return subprocess.run(
        ["bash", "-ec", command],
        cwd=workspace,
        env={**environment, **env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_release_passes_the_gate(tmp_path: Path) -> None:
    example = json.loads((EXAMPLES / "deployment.json").read_text())
    result = _run_gate(tmp_path, example)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ALLOW: deploy credit-risk")


def test_an_unfair_release_stops_the_pipeline(tmp_path: Path) -> None:
    example = json.loads((EXAMPLES / "deployment.json").read_text())
    example["fairness"]["demographic_parity_difference"] = 0.25
    result = _run_gate(tmp_path, example)
    assert result.returncode == 1
    assert "DENY" in result.stdout
    assert "release-meets-fairness-thresholds" in result.stdout
    assert "sr-11-7:validation-outcomes" in result.stdout


def test_a_broken_release_file_is_not_an_approval(tmp_path: Path) -> None:
    result = _run_gate(tmp_path, {"model": "credit-risk"})
    assert result.returncode == 2
    assert "deployment.json" in result.stderr
