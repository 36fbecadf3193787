"""The events routes and what deleting a person does to stored events, in-process: a person's
face crops go with them whichever way they are deleted (HTTP, CLI, CompreFace), and each
delivery target's outbox can be read and its dead events retried."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facelens.cli import app
from facelens.events.event import Event
from facelens.models.base import Box
from tests.contract.conftest import cli_env, event_log, served
from tests.support import fake_model

# Every test here runs on both backends: the SQLite files, and a PostgreSQL database.
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture(autouse=True)
def fake() -> Iterator[None]:
    with fake_model.installed():
        yield


def seen(n: int, name: str, track: int, kind: str = "arrived") -> Event:
    crop = os.urandom(3000)
    return Event(
        f"id{n}",
        kind,  # type: ignore[arg-type]
        "door",
        track,
        name,
        0.3,
        0.9,
        Box(0, 0, 10, 10),
        datetime.now(UTC),
        crop=crop,
    )


def crops(data: Path) -> dict[str, bool]:
    """Which stored events still carry a crop, by name."""
    log = event_log(data)
    try:
        return {e["name"]: e["crop"] is not None for _, e in log.events(limit=100)}
    finally:
        log.close()


def test_a_person_deleted_over_http_or_the_cli_takes_their_event_crops_along(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with served(data) as api:
        for name in ("ann", "bob", "cleo"):
            assert api.post("/v1/people", json={"name": name}).status_code == 201
        log = event_log(data)  # a stream's, open meanwhile
        log.add([seen(1, "ann", 1), seen(2, "bob", 2), seen(3, "cleo", 3), seen(4, "dan", 4)])
        assert api.delete("/v1/people/ann").status_code == 200
        assert crops(data) == {"ann": False, "bob": True, "cleo": True, "dan": True}
        # CompreFace's delete goes the same way.
        gone = api.delete("/api/v1/recognition/subjects/cleo")
        assert gone.status_code == 200, gone.text
        assert crops(data) == {"ann": False, "bob": True, "cleo": False, "dan": True}
        log.close()
    result = CliRunner().invoke(
        app, ["--data-dir", str(data), "people", "remove", "bob"], env=cli_env(data)
    )
    assert result.exit_code == 0, result.output
    assert crops(data) == {"ann": False, "bob": False, "cleo": False, "dan": True}


def test_a_person_renamed_or_merged_any_way_keeps_their_events_and_a_delete_blanks_them(
    tmp_path: Path,
) -> None:
    """Events carry the name they were recorded under and a delete blanks the crops of events
    naming the person: renamed (or merged into another) by HTTP, CompreFace or the CLI, their
    events follow, so their history is found under the new name and a delete takes it along."""
    data = tmp_path / "data"
    people = ("ann", "bob", "cleo", "dan", "eve", "fay", "gus", "hal")
    with served(data) as api:
        for name in people:
            assert api.post("/v1/people", json={"name": name}).status_code == 201
        log = event_log(data)  # a stream's, open meanwhile
        log.add([seen(n, name, n) for n, name in enumerate((*people, "zed"), start=1)])
        log.close()
        assert api.patch("/v1/people/ann", json={"name": "anna"}).status_code == 200
        history = api.get("/v1/events", params={"person": "anna"}).json()["events"]
        assert [(e["id"], e["name"], e["crop"] is not None) for e in history] == [
            ("id1", "anna", True)
        ]
        assert api.post("/v1/people/cleo/merge", json={"from": "bob"}).status_code == 200
        compreface = "/api/v1/recognition/subjects"
        assert api.put(f"{compreface}/dan", json={"subject": "dana"}).status_code == 200
        assert api.put(f"{compreface}/eve", json={"subject": "fay"}).status_code == 200  # merge
        for name in ("anna", "cleo", "dana", "fay"):
            assert api.delete(f"/v1/people/{name}").status_code == 200, name
    cli = CliRunner()
    for args in (["rename", "gus", "gustav"], ["merge", "hal", "gustav"], ["remove", "gustav"]):
        result = cli.invoke(app, ["--data-dir", str(data), "people", *args], env=cli_env(data))
        assert result.exit_code == 0, result.output
    log = event_log(data)
    stored = [(e["name"], e["crop"] is not None) for _, e in log.events(limit=100)]
    log.close()
    assert stored == [
        ("anna", False),
        ("cleo", False),  # bob's, merged into cleo
        ("cleo", False),
        ("dana", False),
        ("fay", False),  # eve's, merged into fay
        ("fay", False),
        ("gustav", False),
        ("gustav", False),  # hal's, merged into gustav
        ("zed", True),  # nobody enrolled
    ]


def test_deliveries_list_each_outbox_and_retry_puts_dead_events_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data) as api:
        assert api.get("/v1/events/deliveries").json() == {"targets": []}
        log = event_log(data, ("webhook:abc", "mqtt:def"))
        log.add([seen(1, "ann", 1), seen(2, "bob", 2)])
        (first, _), _ = log.pending("webhook:abc")
        assert log.failed("webhook:abc", first, "answered 302 Found") == 1
        log.give_up("webhook:abc", first)
        targets = api.get("/v1/events/deliveries").json()["targets"]
        assert [(t["target"], t["kind"], t["pending"], t["dead"]) for t in targets] == [
            ("mqtt:def", "mqtt", 2, 0),
            ("webhook:abc", "webhook", 1, 1),
        ]
        assert targets[1]["url"] is None  # not this server's own target: a watch run's
        missing = api.post("/v1/events/deliveries/retry", params={"target": "webhook:nope"})
        assert missing.status_code == 404 and "deliveries" in missing.json()["error"]["message"]
        again = api.post("/v1/events/deliveries/retry", params={"target": "webhook:abc"})
        assert again.json() == {"retried": 1}
        assert [e["id"] for _, e in log.pending("webhook:abc")] == ["id1", "id2"]
        log.close()
