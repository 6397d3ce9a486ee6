"""Policy stage cost per event: cached and deduped vs. plain cedarpy, in one run.

The policy stage of the pipeline builds a Cedar request from each verified event
(roles from the inventory, coarse facts) and decides it. cedarpy costs 60-300 µs per
request, so the engine dedupes identical requests within a batch and caches
decisions by request shape for the bundle revision. This benchmark feeds the demo's
realistic traffic through three variants, batch by batch as the worker does:

* ``cedarpy, every request``: one ``is_authorized_batch`` call per batch with every
  event's request (no dedupe, no cache): the baseline;
* ``deduped per batch``: a fresh engine per batch (dedupe within the batch only);
* ``cached (shipped)``: one engine for the whole run, as a worker holds it.

Request building is timed inside every variant. Run: ``python bench/policy.py``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import cedarpy

from identity.keyring import load_keyring
from identity.verify import IdentityVerifier
from policies.bundle import load_bundle
from policies.engine import PolicyEngine
from policies.inventory import Inventory, load_inventory
from policies.requests import AuthzRequest, request_for
from schemas.decode import Decoded, decode
from vigil.demo import DemoTraffic, write_demo_inventory, write_demo_keys
from vigil.runtime import settle_memory


def prepared_events(count: int, seed: int) -> tuple[list[tuple[Decoded, object]], Inventory]:
    """Decoded events with their verdicts, as the policy stage receives them."""
    directory = Path(tempfile.mkdtemp(prefix="vigil-bench-policy-"))
    secrets_by_source = write_demo_keys(directory / "keys.yaml")
    write_demo_inventory(directory / "inventory.yaml")
    identity = IdentityVerifier(load_keyring(directory / "keys.yaml"))
    items = []
    for offset, line in enumerate(DemoTraffic(secrets_by_source, events=count, seed=seed).lines()):
        decoded = decode(line)
        if isinstance(decoded, Decoded):
            verdict = identity.verify(decoded.event, decoded.canonical, ("bench", 0, offset), None)
            items.append((decoded, verdict))
    return items, load_inventory(directory / "inventory.yaml")


def plain_cedarpy(engine: PolicyEngine, requests: list[AuthzRequest]) -> None:
    entities: dict[tuple[str, str], dict[str, object]] = {}
    for request in requests:
        for entity in request.entities():
            uid = entity["uid"]
            assert isinstance(uid, dict)
            entities.setdefault((uid["type"], uid["id"]), entity)
    cedarpy.is_authorized_batch(
        [r.to_cedar() for r in requests], engine.bundle.policy_set, list(entities.values())
    )


def run(
    items: list, inventory: Inventory, batch: int, decide: Callable[[list[AuthzRequest]], object]
) -> tuple[float, float]:
    """Seconds for the whole stream, and the fastest batch's seconds per event.

    The fastest batch is robust to other work on the machine: it is what the stage
    costs when it has a core to itself.
    """
    started = time.perf_counter()
    fastest = float("inf")
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        began = time.perf_counter()
        requests = [request_for(decoded.event, verdict, inventory) for decoded, verdict in chunk]
        decide(requests)
        fastest = min(fastest, (time.perf_counter() - began) / len(chunk))
    return time.perf_counter() - started, fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="events per batch (the worker's default)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    items, inventory = prepared_events(args.events, args.seed)
    settle_memory()  # as the worker and `vigil run` do once start-up is over
    bundle = load_bundle()
    print(f"# policy stage, {len(items)} verified events, batches of {args.batch}, best of {args.repeat}")
    print(f"# python {platform.python_version()}, cedarpy {version('cedarpy')}")
    print(f"# bundle {len(bundle.policies)} policies, revision {bundle.revision}\n")

    base_engine = PolicyEngine(bundle, inventory)
    shipped = PolicyEngine(bundle, inventory)
    variants: dict[str, Callable[[list[AuthzRequest]], object]] = {
        "cedarpy, every request (baseline)": lambda reqs: plain_cedarpy(base_engine, reqs),
        "deduped per batch": lambda reqs: PolicyEngine(bundle, inventory).decide_many(reqs),
        "cached + deduped (shipped)": shipped.decide_many,
    }
    print(f"{'variant':36} {'µs/event':>9} {'best batch':>11} {'events/s':>11} {'cedar evals':>12}")
    for name, decide in variants.items():
        runs = [run(items, inventory, args.batch, decide) for _ in range(args.repeat)]
        best = min(total for total, _ in runs)
        fastest = min(batch_best for _, batch_best in runs)
        evals = shipped.evaluated if "shipped" in name else "-"
        spread = statistics.pstdev([total for total, _ in runs]) / best * 100
        print(
            f"{name:36} {best / len(items) * 1e6:9.2f} {fastest * 1e6:11.2f} {len(items) / best:11,.0f}"
            f" {evals!s:>12}   (spread {spread:.0f}%)"
        )
    hit_rate = shipped.cache_hits / max(1, shipped.cache_hits + shipped.evaluated)
    print(f"\nshipped engine: {shipped.evaluated} Cedar evaluations, cache hit rate {hit_rate:.2%}")


if __name__ == "__main__":
    main()
