"""What a standard envelope costs to decode, beside the native event it carries.

The same fleet events (``vigil.fleet.FleetTraffic``: 200 models, 5,000 principals, 2,000
datasets), decoded by ``schemas.decode.decode`` as each of:

* ``native``: the event as it is, no headers (the baseline, and the path every native
  event takes);
* ``native + traceparent``: the same bytes with a W3C ``traceparent`` Kafka header;
* ``CloudEvent structured``: ``content-type: application/cloudevents+json`` and the event
  in ``data``;
* ``CloudEvent binary``: ``ce_*`` headers and the event's other fields as the value;
* ``GenAI attributes``: inference events carrying OpenTelemetry GenAI attributes, mapped
  onto ``tokens`` and features (other types as they are).

Cases run in turn, ``--runs`` rounds, garbage collector on; each figure is CPU time
(``time.process_time``) per event, min / median / max over the rounds, so other work on
a shared machine inflates it less than wall time would.

    .venv/bin/python bench/envelopes.py                  # 20k events, 5 rounds
    .venv/bin/python bench/envelopes.py --events 2000 --runs 3   # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import orjson

from schemas.decode import Decoded, decode
from schemas.envelopes import Headers
from vigil.fleet import FleetTraffic

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
GEN_AI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 512,
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 87,
}
LIFTED = {"event_id": "id", "source": "source", "ts": "time", "type": "type"}
Message = tuple[bytes, Headers | None]


def structured(document: dict[str, Any]) -> Message:
    envelope = {name: document[field] for field, name in LIFTED.items()}
    envelope["type"] = f"vigil.{envelope['type']}"
    envelope |= {"specversion": "1.0", "data": {k: v for k, v in document.items() if k not in LIFTED}}
    return orjson.dumps(envelope), [("content-type", b"application/cloudevents+json")]


def binary(document: dict[str, Any]) -> Message:
    headers: Headers = [("ce_specversion", b"1.0"), ("content-type", b"application/json")]
    for field, name in LIFTED.items():
        value = f"vigil.{document[field]}" if field == "type" else document[field]
        headers = [*headers, (f"ce_{name}", str(value).encode())]
    return orjson.dumps({k: v for k, v in document.items() if k not in LIFTED}), headers


def with_gen_ai(document: dict[str, Any]) -> Message:
    if document["type"] == "inference":
        document = {**document, "attributes": GEN_AI}
    return orjson.dumps(document), None


def cases(lines: Sequence[bytes]) -> dict[str, list[Message]]:
    documents = [orjson.loads(line) for line in lines]
    return {
        "native": [(line, None) for line in lines],
        "native + traceparent": [(line, [("traceparent", TRACEPARENT)]) for line in lines],
        "CloudEvent structured": [structured(d) for d in documents],
        "CloudEvent binary": [binary(d) for d in documents],
        "GenAI attributes": [with_gen_ai(d) for d in documents],
    }


def cpu_per_event(messages: Sequence[Message]) -> float:
    started = time.process_time()
    for value, headers in messages:
        decode(value, 65536, headers)
    return (time.process_time() - started) / len(messages) * 1e6


def check(all_cases: dict[str, list[Message]]) -> None:
    """Every case decodes every event, to the same canonical form as the native one."""
    native = [decode(v, 65536, h) for v, h in all_cases["native"]]
    for name, messages in all_cases.items():
        for (value, headers), expected in zip(messages, native, strict=True):
            outcome = decode(value, 65536, headers)
            assert isinstance(outcome, Decoded), f"{name}: {outcome}"
            if name != "GenAI attributes":
                assert isinstance(expected, Decoded)
                assert outcome.canonical == expected.canonical, name


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args(argv)
    secrets = {f"service-{k:02d}": bytes(32) for k in range(24)}
    lines = list(FleetTraffic(secrets, events=options.events, seed=options.seed).lines())
    all_cases = cases(lines)
    check(all_cases)
    timings: dict[str, list[float]] = {name: [] for name in all_cases}
    for _ in range(options.runs):
        for name, messages in all_cases.items():
            timings[name].append(cpu_per_event(messages))
    baseline = statistics.median(timings["native"])
    print(
        f"decode, CPU µs per event, {options.events} fleet events, {options.runs} rounds (min / median / max)"
    )
    print(f"{'case':<24}{'min':>8}{'median':>8}{'max':>8}  median vs native")
    for name, values in timings.items():
        low, mid, high = min(values), statistics.median(values), max(values)
        print(f"{name:<24}{low:>8.2f}{mid:>8.2f}{high:>8.2f}  x{mid / baseline:.2f}")


if __name__ == "__main__":
    main()
