"""The decision API over loopback HTTP, beside OPA's REST API on an equivalent policy.

Both servers run as subprocesses; a load generator in this process speaks HTTP/1.1
over keep-alive connections (asyncio, no client library in the measurement).

* **latency**: open loop at ``--rate`` requests/s (default 1,000) for ``--seconds``;
  latency is measured from each request's *scheduled* send time, so a stalled server
  is not hidden by requests it delayed (no coordinated omission). p50/p99/max.
* **throughput**: closed loop, ``--connections`` connections each sending as fast as
  answers come: single questions, and for Vigil the batch form (``--batch`` questions
  per request). Decisions per second.
* **service time**: Vigil's handler work without HTTP, in this process (µs per
  question, single and batched), to tell the API's own cost from the HTTP stack's.

Cardinality: 5,000 principals (each authenticates with its own API key), 2,000
datasets and 200 models in the inventory; each request picks a principal and a
resource at random. OPA gets the same inventory as its data document and a Rego
policy deciding the same two rules (analysts read approved datasets; inference
clients infer on approved models whose digest matches). Vigil also journals every
answer meanwhile, and its recorder process stores them (embedded chDB); OPA records
nothing. Once a Vigil server has stopped, the decisions in its store are counted
against the decisions it answered (``recorded_share``, 1.00 when every answer was
stored); ``stop_seconds`` is how long the stop took, mostly the recorder storing the
backlog the closed loops left in the journal.

Cases alternate (vigil, opa, vigil, ...) for ``--runs`` rounds; min/median/max.

    .venv/bin/python bench/decision_api.py                      # 3 runs, ~4 minutes
    .venv/bin/python bench/decision_api.py --runs 1 --seconds 3 # smoke run
    .venv/bin/python bench/decision_api.py --opa /path/to/opa   # default: opa on PATH
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

PRINCIPALS, DATASETS, MODELS = 5000, 2000, 200
REGO = """package vigil

import rego.v1

default allow := false

allow if {
    input.action == "read"
    "analyst" in data.principals[input.principal].roles
    data.datasets[input.resource].approved
}

allow if {
    input.action == "infer"
    "inference-client" in data.principals[input.principal].roles
    model := data.models[input.resource]
    model.status == "approved"
    model.artifact_digest == input.context.artifact_digest
}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_world(directory: Path) -> dict[str, object]:
    principals = [
        {"id": f"svc-{n:04d}", "kind": "service", "roles": ["inference-client"]}
        if n % 2
        else {"id": f"user-{n:04d}", "kind": "user", "roles": ["analyst"]}
        for n in range(PRINCIPALS)
    ]
    models = [
        {"id": f"model-{n:03d}", "status": "approved", "artifact_digest": f"sha256:m{n}"}
        for n in range(MODELS)
    ]
    datasets = [
        {"id": f"dataset-{n:04d}", "classification": "internal", "approved": n % 10 != 0}
        for n in range(DATASETS)
    ]
    (directory / "inventory.yaml").write_text(
        yaml.safe_dump({"principals": principals, "models": models, "datasets": datasets}), encoding="utf-8"
    )
    keys = [
        {"key_id": p["id"], "secret": f"bench-secret-{p['id']}-0000", "sources": ["api"]} for p in principals
    ]
    (directory / "keys.yaml").write_text(yaml.safe_dump({"keys": keys}), encoding="utf-8")
    (directory / "policy.rego").write_text(REGO, encoding="utf-8")
    data = {
        "principals": {p["id"]: {"roles": p["roles"]} for p in principals},
        "models": {m["id"]: m for m in models},
        "datasets": {d["id"]: {"approved": d["approved"]} for d in datasets},
    }
    (directory / "data.json").write_text(json.dumps(data), encoding="utf-8")
    return {"principals": principals}


def vigil_request(rng: random.Random, port: int, batch: int = 0) -> bytes:
    """One question by a random principal about itself, or ``batch`` of them (one caller, many resources)."""
    n = rng.randrange(PRINCIPALS)
    caller = f"svc-{n:04d}" if n % 2 else f"user-{n:04d}"
    principal = {"id": caller, "kind": "service" if n % 2 else "user"}

    def one() -> dict[str, object]:
        if n % 2:
            m = rng.randrange(MODELS)
            return {
                "principal": principal,
                "action": "infer",
                "resource": {"kind": "model", "id": f"model-{m:03d}"},
                "context": {"artifact_digest": f"sha256:m{m}"},
            }
        dataset = f"dataset-{rng.randrange(DATASETS):04d}"
        return {"principal": principal, "action": "read", "resource": {"kind": "dataset", "id": dataset}}

    if batch:
        return _http("/v1/decide/batch", {"requests": [one() for _ in range(batch)]}, caller, port)
    return _http("/v1/decide", one(), caller, port)


def opa_request(rng: random.Random, port: int) -> bytes:
    n = rng.randrange(PRINCIPALS)
    if n % 2:
        m = rng.randrange(MODELS)
        body = {
            "principal": f"svc-{n:04d}",
            "action": "infer",
            "resource": f"model-{m:03d}",
            "context": {"artifact_digest": f"sha256:m{m}"},
        }
    else:
        body = {
            "principal": f"user-{n:04d}",
            "action": "read",
            "resource": f"dataset-{rng.randrange(DATASETS):04d}",
        }
    return _http("/v1/data/vigil/allow", {"input": body}, None, port)


def _http(path: str, body: dict[str, object], caller: str | None, port: int) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    auth = f"Authorization: ApiKey {caller}:bench-secret-{caller}-0000\r\n" if caller else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return status


@dataclass
class Tally:
    """Decisions a server answered with 200, over every measure of one run."""

    decisions: int = 0


async def open_loop(
    port: int, make: Callable[[], bytes], rate: float, seconds: float, tally: Tally, connections: int = 32
) -> dict[str, float]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float, request: bytes) -> None:
        nonlocal errors
        connection = await pool.get()
        try:
            if await _exchange(*connection, request) != 200:
                errors += 1
            else:
                tally.decisions += 1
        finally:
            pool.put_nowait(connection)
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    start = time.perf_counter() + 0.05
    total = int(rate * seconds)
    for i in range(total):
        scheduled = start + i / rate
        request = make()
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, request)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "max_ms": latencies[-1] * 1000,
        "errors": errors,
        "achieved_rps": total / (time.perf_counter() - start),
    }


async def closed_loop(
    port: int, make: Callable[[], bytes], seconds: float, per_request: int, connections: int, tally: Tally
) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            if await _exchange(reader, writer, make()) == 200:
                done += per_request
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    tally.decisions += done
    return done / (time.perf_counter() - started)


def _wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def start_vigil(directory: Path, port: int, run: int) -> subprocess.Popen[bytes]:
    data_dir = directory / f"vigil-data-{run}"
    data_dir.mkdir()
    env = {
        **os.environ,
        "VIGIL_DATA_DIR": str(data_dir),
        "VIGIL_KEYS_FILE": str(directory / "keys.yaml"),
        "VIGIL_POLICIES_INVENTORY": str(directory / "inventory.yaml"),
        "VIGIL_API_PORT": str(port),
        "VIGIL_LOG_LEVEL": "WARNING",
        "VIGIL_ALERT_MIN_SEVERITY": "critical",
        "VIGIL_API_DRAIN_GRACE_SECONDS": "120",  # store everything before exiting: recorded_share counts it
    }
    log = (directory / f"vigil-{run}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "cli", "serve"], env=env, stdout=log, stderr=log)


def start_opa(opa: str, directory: Path, port: int) -> subprocess.Popen[bytes]:
    log = (directory / "opa.log").open("ab")
    return subprocess.Popen(
        [
            opa,
            "run",
            "--server",
            "--addr",
            f"127.0.0.1:{port}",
            "--log-level",
            "error",
            str(directory / "policy.rego"),
            str(directory / "data.json"),
        ],
        stdout=log,
        stderr=log,
    )


def measure(
    name: str,
    port: int,
    make: Callable[[], bytes],
    make_batch: Callable[[], bytes] | None,
    args: argparse.Namespace,
    tally: Tally,
) -> dict[str, float]:
    # warm-up: caches, token/key checks, connections
    asyncio.run(closed_loop(port, make, 1.0, 1, 4, tally))
    result = asyncio.run(open_loop(port, make, args.rate, args.seconds, tally))
    result["single_per_s"] = asyncio.run(closed_loop(port, make, args.seconds, 1, args.connections, tally))
    if make_batch is not None:
        result["batch_decisions_per_s"] = asyncio.run(
            closed_loop(port, make_batch, args.seconds, args.batch, args.connections, tally)
        )
    print(f"  {name}: " + ", ".join(f"{k} {v:,.2f}" for k, v in result.items()), flush=True)
    return result


def stored_decisions(directory: Path, run: int) -> int:
    """Decisions in a stopped Vigil server's store, counted by a process of its own (one per store)."""
    count = (
        "import sys; from sinks.clickhouse import connect\n"
        "with connect(sys.argv[1]) as store:\n"
        "    query = \"SELECT count() FROM decisions_unique WHERE topic = 'api'\"\n"
        "    print(store.query(query).result_rows[0][0])"
    )
    url = f"chdb://{(directory / f'vigil-data-{run}' / 'clickhouse').resolve()}"
    output = subprocess.run([sys.executable, "-c", count, url], capture_output=True, text=True, check=True)
    return int(output.stdout.split()[-1])


def in_process(directory: Path, batch: int, seconds: float) -> dict[str, float]:
    """Service time without HTTP: what one question costs inside the API process.

    Authentication, validation, facts, the engine, the rows and the journal append, as
    the handlers run them, on the same world; the recorder is not running.
    """
    from api.auth import Authenticator
    from api.journal import Journal
    from api.questions import BATCH, ITEM
    from api.service import DecisionService
    from identity.keyring import load_keyring
    from identity.verify import IdentityVerifier
    from policies.bundle import PACK_DIR
    from policies.runtime import PolicyRuntime

    keyring = load_keyring(directory / "keys.yaml")
    runtime = PolicyRuntime(PACK_DIR, inventory_path=directory / "inventory.yaml")
    with tempfile.TemporaryDirectory() as journal_dir:
        service = DecisionService(runtime, IdentityVerifier(keyring), Journal(Path(journal_dir)))
        auth = Authenticator(None, keyring)
        rng = random.Random(11)
        result = {}
        for name, size, adapter in (("single", 0, ITEM), ("batch", batch, BATCH)):
            requests = []
            for _ in range(2000 if not size else max(20, 2000 // size)):
                head, body = vigil_request(rng, 0, size).split(b"\r\n\r\n", 1)
                header = next(line for line in head.split(b"\r\n") if line.startswith(b"Authorization"))
                requests.append((header.split(b": ", 1)[1].decode(), body))
            decided, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                for header, body in requests:
                    caller = auth.authenticate(header, service.engine.inventory, service.wall_clock())
                    parsed = adapter.validate_json(body)
                    items = parsed.requests if size else [parsed]
                    answers = service.decide(caller, items)
                    json.dumps([a.to_json() for a in answers])
                    decided += len(items)
            result[f"in_process_{name}_us"] = (time.perf_counter() - started) / decided * 1e6
    print("  in process: " + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--opa", default=shutil.which("opa"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="vigil-bench-api-"))
    write_world(directory)
    rng = random.Random(7)
    results: dict[str, list[dict[str, float]]] = {"vigil": [], "opa": [], "vigil-in-process": []}
    try:
        for run in range(args.runs):
            results["vigil-in-process"].append(in_process(directory, args.batch, min(args.seconds, 3.0)))
            port = _free_port()
            server = start_vigil(directory, port, run)
            tally = Tally()
            try:
                _wait_for(port, server)
                vigil = measure(
                    "vigil",
                    port,
                    lambda port=port: vigil_request(rng, port),
                    lambda port=port: vigil_request(rng, port, args.batch),
                    args,
                    tally,
                )
            finally:
                stopping = time.perf_counter()
                server.terminate()  # the recorder drains the journal before the server exits
                server.wait(180)
            vigil["stop_seconds"] = time.perf_counter() - stopping
            vigil["recorded_share"] = stored_decisions(directory, run) / tally.decisions
            print(
                f"  vigil: recorded_share {vigil['recorded_share']:.4f} of {tally.decisions:,} decisions, "
                f"stopped (journal drained) in {vigil['stop_seconds']:.1f} s",
                flush=True,
            )
            results["vigil"].append(vigil)
            if args.opa:
                port = _free_port()
                server = start_opa(args.opa, directory, port)
                try:
                    _wait_for(port, server)
                    results["opa"].append(
                        measure("opa", port, lambda port=port: opa_request(rng, port), None, args, Tally())
                    )
                finally:
                    server.terminate()
                    server.wait(60)
        print(
            f"\n{args.runs} runs, {args.rate:.0f} req/s open loop for {args.seconds:.0f} s, "
            f"{args.connections} connections closed loop, batches of {args.batch}"
        )
        for name, runs in results.items():
            if not runs:
                print(f"{name}: not run (no binary)")
                continue
            for metric in runs[0]:
                values = [r[metric] for r in runs]
                print(
                    f"{name:6} {metric:22} min {min(values):10,.2f}  "
                    f"median {statistics.median(values):10,.2f}  max {max(values):10,.2f}"
                )
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print(f"kept {directory}")


if __name__ == "__main__":
    main()
