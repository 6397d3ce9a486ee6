"""The published JSON Schema says what the decoder enforces, and the checked-in copy is current."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from cli.main import main
from schemas.decode import Decoded, Rejection, decode
from schemas.json_schema import EVENT_MODELS, EXAMPLES, event_json_schema, render
from tests.clients.vectors import VECTORS_PATH

CHECKED_IN = Path(__file__).resolve().parents[2] / "schemas" / "json" / "events.schema.json"
REGENERATE = ".venv/bin/vigil schema > schemas/json/events.schema.json"


def test_checked_in_schema_is_the_generated_one() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == render(), (
        f"{CHECKED_IN.name} is out of date with schemas/events.py: regenerate it with `{REGENERATE}`"
    )


def test_vigil_schema_prints_the_schema_of_every_type_or_of_one() -> None:
    every = CliRunner().invoke(main, ["schema"])
    one = CliRunner().invoke(main, ["schema", "--type", "access"])
    assert every.exit_code == 0
    assert json.loads(every.output) == event_json_schema()
    assert json.loads(one.output)["title"] == "Vigil access event"
    assert "mfa" in json.loads(one.output)["required"]


def _objects(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = dict(schema.get("$defs", {}))
    if "properties" in schema:
        found["(top level)"] = schema
    return found


@pytest.mark.parametrize("event_type", [None, *EVENT_MODELS])
def test_every_object_and_field_is_described(event_type: str | None) -> None:
    schema = event_json_schema(event_type)
    undescribed = [
        f"{name}.{field}" if field else name
        for name, definition in _objects(schema).items()
        for field in ("", *definition.get("properties", {}))
        if "description" not in (definition["properties"][field] if field else definition)
    ]
    assert undescribed == [], "add descriptions to schemas/json_schema.py"


@pytest.mark.parametrize("event_type", [None, *EVENT_MODELS])
def test_every_example_is_valid_for_the_schema_and_the_decoder(event_type: str | None) -> None:
    validator = Draft202012Validator(event_json_schema(event_type))
    for name, example in EXAMPLES.items():
        if event_type in (None, name):
            validator.validate(example)
            assert isinstance(decode(orjson.dumps(example)), Decoded)


SIGNATURE = {"alg": "hmac-sha256", "key_id": "k", "value": "ab" * 32}


def _changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event = copy.deepcopy({**EXAMPLES["access"], "signature": SIGNATURE})
    target = event
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return event


_DELETE = object()
FAULTS = {
    "unknown top-level field": (("colour",), "red"),
    "unknown nested field": (("principal", "foo"), 1),
    "missing required field": (("mfa",), _DELETE),
    "time without offset": (("ts",), "2026-11-26T07:10:31"),
    "boolean as integer": (("mfa",), 1),
    "negative count": (("records",), -1),
    "count beyond 64 bits": (("bytes",), 2**63),
    "action of another type": (("action",), "infer"),
    "HMAC signature of Ed25519 length": (("signature", "value"), "ab" * 64),
    "Ed25519 signature of HMAC length": (("signature", "alg"), "ed25519"),
    "empty identifier": (("source",), ""),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_schema_and_decoder_reject_the_same_faults(fault: str) -> None:
    event = _changed(*FAULTS[fault])
    assert isinstance(decode(orjson.dumps(event)), Rejection)
    assert not Draft202012Validator(event_json_schema()).is_valid(event)
    assert not Draft202012Validator(event_json_schema("access")).is_valid(event)


def test_a_signed_example_is_valid() -> None:
    event = {**EXAMPLES["access"], "signature": SIGNATURE}
    Draft202012Validator(event_json_schema()).validate(event)
    assert isinstance(decode(orjson.dumps(event)), Decoded)


def test_every_shared_client_vector_is_valid_for_the_schema() -> None:
    vectors = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    validator = Draft202012Validator(event_json_schema())
    for vector in vectors["valid"]:
        assert validator.is_valid(json.loads(vector["message"])), vector["name"]


def test_schema_examples_are_the_examples_of_the_event_docs() -> None:
    docs = (CHECKED_IN.parents[2] / "docs" / "events.md").read_text(encoding="utf-8")
    section = docs.split("\n## Examples\n", 1)[1].split("\n## ", 1)[0]
    documented = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]
    assert documented == list(EXAMPLES.values())
