"""The Go, Node and Java signing helpers: their own suites pass, and Vigil's own code agrees with them.

Each helper ships a ``vigil-sign`` command (JSON lines in; signed messages, or with
``--canonical`` canonical forms, out). These tests build it with the language's own
toolchain, feed it the shared vectors and a few hundred generated events, and check every
output line against Vigil's decoder and verifier: the canonical form byte for byte, and
the HMAC signature verified. A missing toolchain skips that language and says which.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from schemas.decode import Decoded, decode
from schemas.json_schema import EXAMPLES
from tests.clients.reference import load_vectors, vector_keyring, vigil_verdict

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
VECTORS = load_vectors()
SECRET_ENV = {"VIGIL_SIGNING_SECRET": "hex:" + VECTORS["secret_hex"]}


@dataclass(frozen=True)
class Helper:
    name: str
    toolchain: tuple[str, ...]
    build: Callable[[Path], list[str]]
    """Builds the helper in a scratch folder; returns the command that runs ``vigil-sign``."""
    own_suite: Callable[[Path], list[str]]
    """The language's own test command, run in the helper's folder."""
    folder: str


def _run(command: list[str], cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        command, cwd=cwd, input=stdin, capture_output=True, timeout=600, env={**os.environ, **(env or {})}
    )


GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}


def _go_build(scratch: Path) -> list[str]:
    binary = scratch / "vigil-sign"
    done = _run(["go", "build", "-o", str(binary), "./cmd/vigil-sign"], CLIENTS / "go", env=GO_ENV)
    assert done.returncode == 0, done.stderr.decode()
    return [str(binary)]


def _java_classes(scratch: Path, include_tests: bool) -> Path:
    classes = scratch / ("test-classes" if include_tests else "classes")
    roots = ["src/main", "src/test"] if include_tests else ["src/main"]
    sources = [str(p) for root in roots for p in sorted((CLIENTS / "java" / root).rglob("*.java"))]
    done = _run(["javac", "-Xlint:all", "-Werror", "-d", str(classes), *sources], CLIENTS / "java")
    assert done.returncode == 0, done.stderr.decode()
    return classes


HELPERS = [
    Helper(
        "go",
        ("go",),
        _go_build,
        lambda _: ["go", "test", "-count=1", "./..."],
        "go",
    ),
    Helper(
        "node",
        ("node",),
        lambda _: ["node", str(CLIENTS / "js" / "bin" / "vigil-sign.js")],
        lambda _: ["node", "--test", "test/"],
        "js",
    ),
    Helper(
        "java",
        ("javac", "java"),
        lambda scratch: ["java", "-cp", str(_java_classes(scratch, False)), "vigil.sign.VigilSign"],
        lambda scratch: [
            "java",
            "-cp",
            str(_java_classes(scratch, True)),
            "vigil.sign.CanonicalTest",
            str(CLIENTS / "testdata" / "vectors.json"),
        ],
        "java",
    ),
]


def _require(helper: Helper) -> None:
    missing = [tool for tool in helper.toolchain if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH: install it to test clients/{helper.folder}")


@pytest.fixture(scope="module", params=HELPERS, ids=lambda h: h.name)
def helper(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Helper, list[str]]:
    helper: Helper = request.param
    _require(helper)
    return helper, helper.build(tmp_path_factory.mktemp(helper.name))


def _sign(command: list[str], lines: list[str], *flags: str) -> tuple[int, list[bytes], str]:
    done = _run([*command, *flags], CLIENTS, "\n".join(lines).encode("utf-8") + b"\n", SECRET_ENV)
    return done.returncode, done.stdout.splitlines(), done.stderr.decode()


@pytest.mark.parametrize("helper_spec", HELPERS, ids=lambda h: h.name)
def test_own_test_suite_passes(helper_spec: Helper, tmp_path: Path) -> None:
    _require(helper_spec)
    env = GO_ENV if helper_spec.name == "go" else None
    done = _run(helper_spec.own_suite(tmp_path), CLIENTS / helper_spec.folder, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()[-4000:]


def _one_line(message: str) -> str:
    """JSON text on one line: raw newlines can only be whitespace, never inside a string."""
    return message.replace("\r", " ").replace("\n", " ")


def test_vectors_are_signed_as_vigil_verifies_them(helper: tuple[Helper, list[str]]) -> None:
    _, command = helper
    messages = [_one_line(v["message"]) for v in VECTORS["valid"]]
    code, signed, errors = _sign(command, messages, "--key-id", VECTORS["key_id"])
    assert (code, errors) == (0, "")
    assert len(signed) == len(VECTORS["valid"])
    keyring = vector_keyring()
    for vector, message in zip(VECTORS["valid"], signed, strict=True):
        reason, canonical = vigil_verdict(message, keyring)
        assert (vector["name"], reason) == (vector["name"], "ok")
        assert canonical.decode("utf-8") == vector["canonical"]
        assert json.loads(message)["signature"]["value"] == vector["hmac_sha256"]


def test_messages_vigil_rejects_are_refused_line_by_line(helper: tuple[Helper, list[str]]) -> None:
    _, command = helper
    good = _one_line(VECTORS["valid"][0]["message"])
    lines = [good] + [v["message"] for v in VECTORS["invalid"]] + [good]
    code, signed, errors = _sign(command, lines, "--key-id", VECTORS["key_id"])
    assert code == 1
    assert len(signed) == 2
    for number in range(2, 2 + len(VECTORS["invalid"])):
        assert f"not signed: line {number}: " in errors
    assert "lone surrogate" in errors


def test_ed25519_signatures_verify_with_the_public_key(
    helper: tuple[Helper, list[str]], tmp_path: Path
) -> None:
    _, command = helper
    private = Ed25519PrivateKey.generate()
    key_file = tmp_path / "producer.pem"
    key_file.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    messages = [_one_line(v["message"]) for v in VECTORS["valid"]]
    flags = ("--key-id", "test-ed25519", "--private-key", str(key_file))
    code, signed, errors = _sign(command, messages, *flags)
    assert (code, errors) == (0, "")
    keyring = vector_keyring(public)
    for vector, message in zip(VECTORS["valid"], signed, strict=True):
        assert json.loads(message)["signature"]["alg"] == "ed25519"
        assert vigil_verdict(message, keyring) == ("ok", vector["canonical"].encode("utf-8"))


_CHARACTERS = 'aZ09 <>&"\\/\x00\x01\x1f\x7f\u2028\u2029éßü東京\ue000\uffff\U0001f600\U00010000'


def _text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice(_CHARACTERS) for _ in range(rng.randint(1, size)))


_EDGE_FLOATS = [0.1, -0.0, 1e21, 1e16, 1e15, 1e-5, 1e-6, 5e-324, 2.0**53 + 2, 1.7976931348623157e308]


def _number(rng: random.Random) -> int | float:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randint(-(2**63), 2**63 - 1)
    if kind == 1:
        return rng.choice(_EDGE_FLOATS)
    if kind == 2:
        return round(rng.uniform(-1e6, 1e6), rng.randint(0, 8))
    while True:  # any finite double, from its bits
        value: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if value == value and abs(value) != float("inf"):
            return value


def _generated_messages(count: int) -> list[str]:
    """Valid events whose strings, keys and numbers vary widely, written with and without escapes."""
    rng = random.Random(20261207)
    messages = []
    for n in range(count):
        event = dict(EXAMPLES["inference"])
        event["event_id"] = f"gen-{n}"
        event["model_id"] = _text(rng, 12)
        event["features"] = {
            _text(rng, 8): rng.choice([_number(rng), _number(rng), _text(rng, 30), rng.random() < 0.5])
            for _ in range(rng.randint(1, 12))
        }
        event["prediction"] = {"score": _number(rng) * 1.0}
        messages.append(json.dumps(event, ensure_ascii=rng.random() < 0.5))
    return messages


def test_generated_events_match_vigil_byte_for_byte(helper: tuple[Helper, list[str]]) -> None:
    _, command = helper
    messages = _generated_messages(300)
    code, canonical, errors = _sign(command, messages, "--canonical")
    assert (code, errors) == (0, "")
    mismatches = []
    for message, written in zip(messages, canonical, strict=True):
        decoded = decode(message.encode("utf-8"))
        assert isinstance(decoded, Decoded), decoded
        if written != decoded.canonical:
            mismatches.append(f"{message}\n  helper: {written!r}\n   vigil: {decoded.canonical!r}")
    assert mismatches == [], mismatches[:3]
    code, signed, errors = _sign(command, messages, "--key-id", VECTORS["key_id"])
    assert (code, errors) == (0, "")
    keyring = vector_keyring()
    assert [vigil_verdict(message, keyring)[0] for message in signed] == ["ok"] * len(messages)


def test_go_sources_are_formatted_and_vetted() -> None:
    _require(HELPERS[0])
    formatting = _run(["gofmt", "-l", "."], CLIENTS / "go")
    assert formatting.stdout.decode() == "", "run `gofmt -w .` in clients/go"
    vet = _run(["go", "vet", "./..."], CLIENTS / "go", env=GO_ENV)
    assert vet.returncode == 0, vet.stderr.decode()
