"""``vigil serve`` end to end: HTTP on loopback, the Python client, chDB, the audit ledger."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path

import pytest
from vigil_client import Decision, DecisionClient, DeniedError, guard, question

from api.server import ApiServer
from sinks.clickhouse import StoreLockedError, connect
from tests.factories import (
    AUDIENCE,
    ISSUER,
    TokenIssuer,
    artifact_digest,
    key_entries,
    with_principals,
    write_inventory,
    write_jwks,
    write_keyfile,
)
from vigil.settings import ApiSettings, IdentitySettings, PolicySettings, Settings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(directory: Path, idp: TokenIssuer) -> Settings:
    inventory = write_inventory(
        directory / "inventory.yaml",
        with_principals({"id": "support-bot", "kind": "service", "roles": ["delegate"]}),
    )
    return Settings(
        data_dir=directory,
        keys_file=write_keyfile(directory / "keys.yaml", key_entries()),
        identity=IdentitySettings(
            jwks=str(write_jwks(directory / "jwks.json", idp)), jwt_issuer=ISSUER, jwt_audience=AUDIENCE
        ),
        policies=PolicySettings(inventory=inventory, reload_seconds=0.2),
        api=ApiSettings(port=_free_port(), drain_grace_seconds=5.0),
    )


class Running:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = ApiServer(settings)
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.02)

    def _run(self) -> None:
        self.status = self.server.run()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api.port}"

    def stop(self) -> int | None:
        self.server.stop()
        self.thread.join(60)
        return self.status


@pytest.fixture
def idp() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def running(tmp_path: Path, idp: TokenIssuer) -> Iterator[Running]:
    api = Running(_settings(tmp_path, idp))
    yield api
    api.stop()


def test_answers_are_stored_with_ledger_entries_and_deny_findings(running: Running, idp: TokenIssuer) -> None:
    client = DecisionClient(running.url, token=idp.token("svc-checkout"), timeout=2.0)
    allowed = client.decide(
        question(
            "svc-checkout",
            "infer",
            ("model", "fraud-v3"),
            principal_kind="service",
            context={"artifact_digest": artifact_digest("fraud-v3")},
        )
    )
    denied = client.decide(
        question("svc-checkout", "infer", ("model", "legacy-scorer"), principal_kind="service")
    )
    assert (allowed.allowed, denied.allowed) == (True, False)
    assert allowed.error is None
    assert denied.policy_ids
    assert allowed.bundle_revision == denied.bundle_revision != ""
    assert running.stop() == 0  # drains the journal into the store before returning
    with connect(running.settings.store_url) as store:
        decisions = store.query(
            "SELECT event_id, decision, topic FROM decisions_unique ORDER BY offset"
        ).result_rows
        assert decisions == [(allowed.decision_id, "allow", "api"), (denied.decision_id, "deny", "api")]
        findings = store.query("SELECT event_id, stage FROM findings_unique").result_rows
        assert findings == [(denied.decision_id, "policy")]
        ledger = store.query("SELECT count() FROM audit_ledger").result_rows[0][0]
        assert ledger >= 3, "each stored decision and finding has its ledger entry"


def test_no_token_no_decision_and_the_client_denies_on_any_failure(
    running: Running, idp: TokenIssuer
) -> None:
    forged = DecisionClient(running.url, token=TokenIssuer().token("svc-checkout"), timeout=2.0)
    answer = forged.decide(question("svc-checkout", "infer", ("model", "fraud-v3"), principal_kind="service"))
    assert not answer.allowed
    assert "401" in (answer.error or "")
    nobody = DecisionClient(f"http://127.0.0.1:{_free_port()}", token=idp.token("bob"), timeout=0.5)
    started = time.monotonic()
    refused = nobody.decide(question("bob", "read", ("dataset", "transactions-2026")))
    assert not refused.allowed
    assert refused.error
    assert time.monotonic() - started < 1.0, "fail closed, and fast"


def test_the_guard_decorator_and_the_batch_form(running: Running, idp: TokenIssuer) -> None:
    client = DecisionClient(running.url, token=lambda: idp.token("bob"), timeout=2.0)

    @guard(client, lambda user, dataset: question(user, "read", ("dataset", dataset)))
    def read(user: str, dataset: str) -> str:
        return f"{user} read {dataset}"

    assert read("bob", "transactions-2026") == "bob read transactions-2026"
    with pytest.raises(DeniedError):
        read("bob", "unregistered-set")
    answers = client.decide_many(
        [
            question("bob", "read", ("dataset", "transactions-2026")),
            question("bob", "delete", ("dataset", "transactions-2026")),
        ]
    )
    assert [a.allowed for a in answers] == [True, False]


def test_the_local_cache_forgets_everything_when_the_bundle_changes(
    running: Running, idp: TokenIssuer
) -> None:
    client = DecisionClient(running.url, token=idp.token("bob"), timeout=2.0, cache_seconds=60)
    asked = question("bob", "read", ("dataset", "transactions-2026"))
    first = client.decide(asked)
    assert first.allowed
    assert client.decide(asked).cached
    inventory = running.settings.policies.inventory
    assert inventory is not None
    inventory.write_text(inventory.read_text().replace("analyst", "auditor"), encoding="utf-8")
    deadline = time.monotonic() + 10
    for n in itertools.count():  # fresh questions: only an answer from the server shows the new revision
        if (
            client.decide(question("bob", "read", ("dataset", f"probe-{n}"))).bundle_revision
            != first.bundle_revision
        ):
            break
        assert time.monotonic() < deadline, "the inventory change was not picked up"
        time.sleep(0.1)
    after = client.decide(asked)
    assert not after.cached
    assert not after.allowed, "bob lost the analyst role with the reloaded inventory"


def test_http_status_tells_why_nothing_was_decided(running: Running, idp: TokenIssuer) -> None:
    def post(path: str, body: bytes, token: str | None) -> tuple[int, Message, dict[str, object]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(running.url + path, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.headers, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers, json.loads(error.read())

    asked = json.dumps(
        {"principal": {"id": "bob"}, "action": "read", "resource": {"kind": "dataset", "id": "x"}}
    )
    status, headers, body = post("/v1/decide", asked.encode(), None)
    assert (status, body["error"]) == (401, "unauthenticated")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, body = post(
        "/v1/decide", b'{"principal": {"id": "bob"}, "action": "launch"}', idp.token("bob")
    )
    assert (status, body["error"]) == (400, "invalid_request")
    # Refused on the declared length, before the body is read.
    connection = http.client.HTTPConnection("127.0.0.1", running.settings.api.port, timeout=5)
    connection.putrequest("POST", "/v1/decide/batch")
    for name, value in (("Authorization", f"Bearer {idp.token('bob')}"), ("Content-Length", str(9 * 2**20))):
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())["error"]) == (413, "too_large")
    connection.close()
    status, headers, body = post("/v1/decide", asked.encode(), idp.token("bob"))
    assert status == 200
    assert headers["X-Vigil-Bundle-Revision"] == body["bundle_revision"]


def test_vigil_serve_answers_then_stores_everything_on_sigterm(tmp_path: Path, idp: TokenIssuer) -> None:
    settings = _settings(tmp_path, idp)
    env = _environment(settings)
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        client = DecisionClient(f"http://127.0.0.1:{settings.api.port}", token=idp.token("bob"), timeout=1.0)
        deadline = time.monotonic() + 60
        answer = client.decide(question("bob", "read", ("dataset", "transactions-2026")))
        while answer.error is not None:
            assert time.monotonic() < deadline, "vigil serve did not answer"
            time.sleep(0.2)
            answer = client.decide(question("bob", "read", ("dataset", "transactions-2026")))
        assert answer.allowed
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr.decode()
    with connect(settings.store_url) as store:
        stored = store.query("SELECT event_id FROM decisions_unique WHERE topic = 'api'").result_rows
    assert stored == [(answer.decision_id,)]
    _assert_ledger_verifies(env)


def _environment(settings: Settings) -> dict[str, str]:
    """What ``vigil`` subprocesses need to run on these settings."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
        "VIGIL_DATA_DIR": str(settings.data_dir),
        "VIGIL_KEYS_FILE": str(settings.keys_file),
        "VIGIL_POLICIES_INVENTORY": str(settings.policies.inventory),
        "VIGIL_IDENTITY_JWKS": str(settings.identity.jwks),
        "VIGIL_IDENTITY_JWT_ISSUER": ISSUER,
        "VIGIL_API_PORT": str(settings.api.port),
    }


def _assert_ledger_verifies(env: dict[str, str]) -> None:
    audit = subprocess.run(
        [sys.executable, "-m", "cli", "audit", "verify", "--stream", "api:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def _wait(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_recorder_killed_mid_stream_is_restarted_and_every_answer_is_stored_once(
    tmp_path: Path, idp: TokenIssuer
) -> None:
    settings = _settings(tmp_path, idp)
    api = Running(settings)
    recorder = api.server.recorder
    client = DecisionClient(api.url, token=idp.token("bob"), timeout=5.0)
    answers: list[Decision] = []
    done = threading.Event()

    def ask() -> None:
        for n in itertools.count():
            if done.is_set():
                return
            answers.extend(
                client.decide_many(
                    [
                        question("bob", "read", ("dataset", "transactions-2026")),
                        question("bob", "delete", ("dataset", f"set-{n}")),
                    ]
                )
            )
            # A steady caller rather than a flood: what is answered must fit the stop's
            # drain grace however long the restart takes on a busy machine.
            time.sleep(0.005)

    asking = threading.Thread(target=ask)
    asking.start()
    try:
        _wait(lambda: recorder.stored > 0, "nothing was stored")
        killed = recorder.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        _wait(lambda: recorder.pid != killed and recorder.state == "running", "no restart")
        stored = recorder.stored
        _wait(lambda: recorder.stored > stored, "the restarted recorder stored nothing")
        with urllib.request.urlopen(api.url + "/healthz", timeout=5) as response:
            health = json.loads(response.read())
        assert (health["status"], health["recorder"]) == ("ok", "running")
        assert health["recorded"] > stored
    finally:
        done.set()
        asking.join()
    assert api.stop() == 0, "the restarted recorder drained the journal on stop"
    assert recorder.restarts == 1
    assert not [a.error for a in answers if a.error], "the API answered throughout"
    with connect(settings.store_url) as store:
        count, distinct = store.query(
            "SELECT count(), uniqExact(event_id) FROM decisions_unique WHERE topic = 'api'"
        ).result_rows[0]
        ids = {row[0] for row in store.query("SELECT event_id FROM decisions_unique").result_rows}
        denies = store.query("SELECT count() FROM findings_unique WHERE stage = 'policy'").result_rows[0][0]
    assert count == distinct == len(answers), "each answer stored once, none lost"
    assert ids == {a.decision_id for a in answers}
    assert denies == sum(not a.allowed for a in answers)
    _assert_ledger_verifies(_environment(settings))


def test_stopping_stores_every_answer_within_the_grace_period(tmp_path: Path, idp: TokenIssuer) -> None:
    settings = _settings(tmp_path, idp)
    api = Running(settings)
    client = DecisionClient(api.url, token=idp.token("bob"), timeout=5.0)
    asked = [question("bob", "read", ("dataset", f"set-{n}")) for n in range(100)]
    answers = [a for _ in range(20) for a in client.decide_many(asked)]
    started = time.monotonic()
    assert api.stop() == 0
    assert time.monotonic() - started < settings.api.drain_grace_seconds
    with connect(settings.store_url) as store:
        stored = store.query("SELECT count() FROM decisions_unique WHERE topic = 'api'").result_rows[0][0]
    assert stored == len(answers) == 2000


def test_a_store_owned_by_another_process_fails_the_start_with_the_recorders_error(
    tmp_path: Path, idp: TokenIssuer
) -> None:
    settings = _settings(tmp_path, idp)
    with connect(settings.store_url), pytest.raises(StoreLockedError):
        ApiServer(settings)
