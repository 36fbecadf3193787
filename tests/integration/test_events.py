"""The server's event delivery and live events as a real ``facelens serve`` process: a webhook
URL's secrets in no log line, an event its receiver will not take given up on and shown (the
deliveries route, the metrics) and retried, retention at the start; and a hundred live
listeners on 300,000 stored events, each told exactly its new events while other requests are
answered."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from facelens.events.delivery import target_names
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.models.base import Box
from tests.support.helpers import fill_events
from tests.support.mqtt import wait_until
from tests.support.server import Server
from tests.support.webhook import Receiver

pytestmark = pytest.mark.integration

BIG = 300_000


def event(n: int, name: str, kind: str = "arrived", *, days_ago: float = 0) -> Event:
    return Event(
        f"id{n}",
        kind,  # type: ignore[arg-type]
        "door",
        n,
        name,
        0.3,
        0.9,
        Box(0, 0, 10, 10),
        datetime.now(UTC) - timedelta(days=days_ago),
    )


def metric(url: str, name: str, labels: dict[str, str]) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def test_a_webhook_the_server_delivers_to_never_shows_its_secrets_and_gives_up_visibly(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    url = receiver.url.replace("://", "://user:s3cret@") + "?token=t0ken"
    (target,) = target_names(url, None)
    data = tmp_path / "data"
    # Events a stream stored for the webhook before the server (re)started.
    log = EventLog(data / "events.sqlite3", targets=(target,))
    log.add([event(1, "old", days_ago=40), event(2, "redirect"), event(3, "ann")])
    log.close()
    server = Server(
        data,
        env={"FACELENS_EVENTS_WEBHOOK": url, "FACELENS_EVENTS_DELIVERY_ATTEMPTS": "2"},
    )
    try:
        c = server.client
        # Retention at the start, before anything was delivered: the 40-day-old event is gone.
        assert [e["id"] for e in c.get("/v1/events").json()["events"]] == ["id2", "id3"]
        wait_until(lambda: [e["id"] for e in receiver.received] == ["id3"], 60, "id3 delivered")

        def shown() -> dict[str, Any]:
            (found,) = c.get("/v1/events/deliveries").json()["targets"]
            return dict(found)

        wait_until(lambda: shown()["dead"] == 1, 30, "the redirected event given up on")
        status = shown()
        assert status["url"] == f"http://***@127.0.0.1:{receiver.port}/…"  # no path, no query
        assert (status["pending"], status["delivered"], status["given_up"]) == (0, 1, 1)
        labels = {"target": target, "state": "dead"}
        assert metric(server.url, "facelens_event_outbox", labels) == 1
        given_up = {"target": target, "result": "given_up"}
        assert metric(server.url, "facelens_event_deliveries_total", given_up) == 1
        # Fixed at the receiver's end: a retry sends it.
        receiver.healed = True
        assert c.post("/v1/events/deliveries/retry").json() == {"retried": 1}
        wait_until(lambda: len(receiver.received) == 2, 60, "the retried event")
        assert [e["id"] for e in receiver.received] == ["id3", "id2"]
    finally:
        assert server.stop() == 0
        receiver.close()
    logged = server.log()
    assert "stream events go to webhook http://***@127.0.0.1" in logged
    assert "given up after 2 attempts" in logged and "302 Found" in logged
    assert "s3cret" not in logged and "t0ken" not in logged
    assert receiver.headers[0][":path"] == "/hook?token=t0ken"  # it got them, nobody else


def listen(
    url: str, params: list[dict[str, str]], expected: list[int], ready: threading.Event
) -> list[list[dict[str, Any]]]:
    """Open one live stream per ``params`` at once; set ``ready`` when all are open; return
    what each was told, once each has ``expected`` of them."""

    async def one(client: httpx.AsyncClient, query: dict[str, str], want: int) -> list[Any]:
        told: list[dict[str, Any]] = []
        headers = {"Last-Event-ID": query.pop("last")} if "last" in query else {}
        async with client.stream(
            "GET", "/v1/events/stream", params=query, headers=headers
        ) as answer:
            fields: dict[str, str] = {}
            async for line in answer.aiter_lines():
                if line.startswith("retry:"):  # the first line: it listens
                    opened.append(1)
                    if len(opened) == len(params):
                        ready.set()
                elif line == "" and "data" in fields:
                    told.append({**json.loads(fields["data"]), "seq": int(fields["id"])})
                    fields = {}
                    if len(told) == want:
                        return told
                elif ":" in line and not line.startswith(":"):
                    key, value = line.split(":", 1)
                    fields[key] = value.strip()
        return told

    opened: list[int] = []

    async def all_of_them() -> list[list[dict[str, Any]]]:
        limits = httpx.Limits(max_connections=len(params) + 10)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            return list(
                await asyncio.gather(
                    *(one(client, dict(q), n) for q, n in zip(params, expected, strict=True))
                )
            )

    return asyncio.run(all_of_them())


def test_a_hundred_live_listeners_on_300k_events_each_get_theirs_and_others_are_answered(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    EventLog(data / "events.sqlite3").close()
    fill_events(data / "events.sqlite3", BIG)  # 300,000 events, written straight into the table
    # A hundred live views from one client: more than the default budget gives one client.
    roomy = {"FACELENS_MAX_LIVE_VIEWS": "400", "FACELENS_MAX_CONNECTIONS_PER_CLIENT": "200"}
    server = Server(data, env=roomy)
    try:
        params = [{"person": "ann"}] * 40 + [{"kind": "left"}] * 40 + [{}] * 19
        params += [{"person": "p3", "last": str(BIG - 100)}]  # resumes: catches up first
        expected = [2] * 40 + [2] * 40 + [3] * 19 + [2]  # p3: 2 of the last 100 stored
        ready = threading.Event()
        told: list[list[dict[str, Any]]] = []
        listening = threading.Thread(
            target=lambda: told.extend(listen(server.url, params, expected, ready)), daemon=True
        )
        listening.start()
        assert ready.wait(120), "the listeners did not all open"
        c = server.client
        # Meanwhile the rest of the API answers.
        assert c.get("/v1/people").status_code == 200
        assert len(c.get("/v1/events", params={"person": "p3", "limit": 5}).json()["events"]) == 5
        writer = EventLog(data / "events.sqlite3")  # as a stream process stores them
        writer.add([event(1, "ann"), event(2, "bob", "left"), event(3, "ann", "left")])
        writer.close()
        listening.join(timeout=120)
        assert not listening.is_alive(), "not every listener was told its events"
        assert c.get("/v1/people").status_code == 200
    finally:
        assert server.stop() == 0
    ids = [[e["id"] for e in t] for t in told]
    assert ids[:40] == [["id1", "id3"]] * 40  # person=ann
    assert ids[40:80] == [["id2", "id3"]] * 40  # kind=left
    assert ids[80:99] == [["id1", "id2", "id3"]] * 19  # everything new
    # The resumed one: the stored p3 events after its Last-Event-ID, in order.
    assert [(e["name"], e["seq"]) for e in told[99]] == [("p3", BIG - 96), ("p3", BIG - 46)]
