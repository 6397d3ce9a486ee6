"""policies.inventory: roles, models, datasets and business hours, from one YAML file."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.inventory import Inventory, InventoryError, load_inventory
from tests.factories import INVENTORY, PII_DATASET, QUARANTINED_MODEL, inventory_data, write_inventory
from vigil.demo import DEMO_INVENTORY


def load(tmp_path: Path, data: dict[str, Any] | str) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return load_inventory(path)


def error_for(tmp_path: Path, data: dict[str, Any] | str) -> str:
    with pytest.raises(InventoryError) as info:
        load(tmp_path, data)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'inventory.yaml'}: "), message
    return message


def test_the_test_inventory_loads(tmp_path: Path) -> None:
    inventory = load(tmp_path, INVENTORY)
    assert inventory.roles_of("rita") == ("release-manager",)
    assert inventory.roles_of("nobody") == ()
    assert inventory.models["fraud-v3"].status == "approved"
    assert inventory.models[QUARANTINED_MODEL].status == "quarantined"
    assert inventory.datasets[PII_DATASET].classification == "pii"
    assert inventory.calendar.business_hours == (time(7), time(19))


def test_the_demo_inventory_loads(tmp_path: Path) -> None:
    inventory = load(tmp_path, DEMO_INVENTORY)
    assert inventory.roles_of("svc-checkout") == ("inference-client",)
    assert inventory.models["legacy-scorer"].status == "quarantined"


def test_no_file_is_an_empty_inventory() -> None:
    inventory = load_inventory(None)
    assert inventory.principals == inventory.models == inventory.datasets == {}
    assert inventory.revision == "empty"


def test_empty_file_is_an_empty_inventory(tmp_path: Path) -> None:
    inventory = load(tmp_path, "")
    assert inventory.principals == {}
    assert inventory.revision != "empty"


def test_defaults(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        {"principals": [{"id": "p", "kind": "user"}], "models": [{"id": "m"}], "datasets": [{"id": "d"}]},
    )
    assert inventory.roles_of("p") == ()
    assert (inventory.models["m"].status, inventory.models["m"].artifact_digest) == ("pending", None)
    dataset = inventory.datasets["d"]
    assert (dataset.classification, dataset.approved, dataset.digests) == ("internal", False, ())
    assert inventory.calendar.timezone == "UTC"


def test_revision_is_a_content_hash(tmp_path: Path) -> None:
    first = load(tmp_path, INVENTORY).revision
    assert load(tmp_path, INVENTORY).revision == first
    assert len(first) == 16
    int(first, 16)
    changed = inventory_data()
    changed["models"][0]["status"] = "quarantined"
    assert load(tmp_path, changed).revision != first


# --- errors name the file and the entry ------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "inventory.yaml"
    with pytest.raises(InventoryError, match="cannot read inventory") as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}: ")


def test_not_yaml(tmp_path: Path) -> None:
    assert "not a YAML text file" in error_for(tmp_path, "principals: [\n  - id: a\n   kind: : :\n")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_bytes("principals:\n  - id: zoë\n    kind: user\n".encode("latin-1"))
    with pytest.raises(InventoryError, match="not a YAML text file") as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["models"][1].update(status="blessed"), "models.1.status"),
        (lambda d: d["datasets"][0].update(classification="secret"), "datasets.0.classification"),
        (lambda d: d["principals"][2].update(kind="robot"), "principals.2.kind"),
        (lambda d: d["principals"][0].pop("kind"), "principals.0.kind"),
        (lambda d: d["principals"][0].update(id=""), "principals.0.id"),
        (lambda d: d["models"][0].update(stauts="approved"), "models.0.stauts"),
        (lambda d: d.update(teams=[]), "teams"),
        (lambda d: d["calendar"].update(weekdays=["mon", "funday"]), "calendar.weekdays"),
    ],
)
def test_invalid_entries_name_the_field(tmp_path: Path, change: Any, where: str) -> None:
    data = inventory_data()
    change(data)
    assert f": {where}: " in error_for(tmp_path, data)


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    error_for(tmp_path, "- alice\n- bob\n")


@pytest.mark.parametrize("section", ["principals", "models", "datasets"])
def test_duplicate_ids(tmp_path: Path, section: str) -> None:
    data = inventory_data()
    data[section].append(dict(data[section][0]))
    message = error_for(tmp_path, data)
    assert f"{section} lists {data[section][0]['id']!r} twice" in message


def test_same_id_in_different_sections_is_fine(tmp_path: Path) -> None:
    data = inventory_data()
    data["datasets"].append({"id": "fraud-v3"})
    assert "fraud-v3" in load(tmp_path, data).datasets


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "CET+1", "../etc/passwd", ""])
def test_unknown_time_zone(tmp_path: Path, zone: str) -> None:
    data = inventory_data(calendar={"timezone": zone})
    message = error_for(tmp_path, data)
    assert "calendar.timezone" in message
    assert f"unknown time zone {zone!r}" in message


def test_unknown_weekday_lists_the_known_ones(tmp_path: Path) -> None:
    message = error_for(tmp_path, inventory_data(calendar={"weekdays": ["mon", "Tuesday"]}))
    assert "'Tuesday'" in message
    assert "mon, tue, wed, thu, fri, sat, sun" in message


def test_quoted_business_hours(tmp_path: Path) -> None:
    text = "calendar:\n  timezone: Europe/Berlin\n  business_hours: ['09:00', '17:30']\n"
    assert load(tmp_path, text).calendar.business_hours == (time(9), time(17, 30))


def hours_or_error(tmp_path: Path, text: str) -> tuple[time, time] | str:
    """The business hours a calendar text yields, or the load error's message."""
    try:
        calendar = load(tmp_path, text).calendar
    except InventoryError as error:
        return str(error)
    # off_hours compares local times with both bounds: mixed naive/aware bounds raise
    calendar.off_hours(datetime(2026, 3, 4, 12, tzinfo=UTC))
    return calendar.business_hours


@pytest.mark.parametrize(
    "hours",
    ["[9:00, 17:00]", "[07:00, 19:00]", "[8:30, 18:00]"],
    ids=["both-sexagesimal", "mixed-string-and-number", "half-hour"],
)
def test_unquoted_business_hours_are_read_as_written_or_refused(tmp_path: Path, hours: str) -> None:
    """YAML 1.1 reads an unquoted ``9:00`` as the number 540 (base 60) but ``07:00`` as a
    string: the calendar must not quietly turn ``9:00`` into 00:09 (or fail on the first
    event); it either reads the hours as written or refuses them, naming the field."""
    written = tuple(time.fromisoformat(h.strip().zfill(5)) for h in hours.strip("[]").split(","))
    outcome = hours_or_error(tmp_path, f"calendar:\n  business_hours: {hours}\n")
    assert outcome == written or (isinstance(outcome, str) and "business_hours" in outcome), outcome


def test_write_inventory_round_trips(tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.yaml")
    assert load_inventory(path).principals.keys() == {p["id"] for p in INVENTORY["principals"]}
