"""alerting.routing: Alertmanager's route tree semantics."""

from __future__ import annotations

from alerting.config import parse_config
from alerting.routing import Route, build_routes

CONFIG = {
    "receivers": [{"name": n} for n in ("default", "pager", "ml", "audit")],
    "route": {
        "receiver": "default",
        "group_by": ["stage", "model"],
        "group_wait": "30s",
        "routes": [
            {"matchers": ["severity=critical"], "receiver": "pager", "group_wait": "0s", "continue": True},
            {
                "matchers": ["stage=detector"],
                "receiver": "ml",
                "group_by": ["model"],
                "routes": [{"matchers": ["model=~credit-.*"], "receiver": "audit"}],
            },
            {"matchers": ["stage=~policy|identity"], "receiver": "audit"},
        ],
    },
}


def routes() -> Route:
    return build_routes(parse_config(CONFIG))


def receivers(labels: dict[str, str]) -> list[str]:
    return [r.receiver for r in routes().match(labels)]


def test_first_matching_child_wins() -> None:
    assert receivers({"stage": "detector", "model": "fraud-v3"}) == ["ml"]
    assert receivers({"stage": "policy", "principal": "bob"}) == ["audit"]


def test_no_child_matching_falls_back_to_the_parent() -> None:
    assert receivers({"stage": "other"}) == ["default"]


def test_continue_lets_later_siblings_match_too() -> None:
    assert receivers({"stage": "detector", "severity": "critical", "model": "x"}) == ["pager", "ml"]


def test_nested_routes_descend_depth_first() -> None:
    assert receivers({"stage": "detector", "model": "credit-v2"}) == ["audit"]


def test_children_inherit_what_they_do_not_set() -> None:
    [pager] = routes().match({"severity": "critical", "stage": "other"})
    assert (pager.group_wait, pager.group_by) == (0.0, ("stage", "model"))
    [nested] = routes().match({"stage": "detector", "model": "credit-v2"})
    assert (nested.group_wait, nested.group_by) == (30.0, ("model",))
    assert nested.group_interval == 300.0
    assert nested.repeat_interval == 4 * 3600.0


def test_group_labels_follow_group_by() -> None:
    [ml] = routes().match({"stage": "detector", "model": "fraud-v3", "severity": "medium"})
    assert ml.group_labels({"stage": "detector", "model": "fraud-v3", "severity": "medium"}) == {
        "model": "fraud-v3"
    }
    everything = build_routes(parse_config({**CONFIG, "route": {"receiver": "default", "group_by": ["..."]}}))
    assert everything.group_labels({"a": "1", "b": "2"}) == {"a": "1", "b": "2"}


def test_route_ids_are_stable_and_distinct() -> None:
    first, second = routes(), routes()
    assert [c.route_id for c in first.children] == [c.route_id for c in second.children]
    assert len({c.route_id for c in first.children}) == 3
