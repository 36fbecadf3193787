"""``GET /v1/events`` (stored events, filtered, a page at a time), ``GET /v1/events/stream``
(server-sent events, live) and ``/v1/events/deliveries`` (each delivery target's outbox, and a
retry of the events given up on). The events are those of the server's streams and of
``facelens watch`` runs on the same data directory, read from its ``events.sqlite3``.

Live listeners cost no query each: one tail per server reads each new event once and hands it
to all of them (filtered here, in memory); a listener reads the table itself only to catch up
(a resume, or when it fell too far behind), a page at a time through the indexes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.deps import require_admin_key, require_api_key, services
from facelens.errors import InvalidValue, NotFound
from facelens.events.log import EventLog, Filter
from facelens.events.tail import Stored

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=[Depends(require_api_key)],
    responses=schemas.error_responses(401, 422),
)
Kind = Literal["arrived", "renamed", "left"]
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
TIME_DOC = "ISO 8601, e.g. 2026-12-01T08:00:00Z (no zone: UTC); since inclusive, until exclusive."
WAKE_S = 1.0  # a live stream checks this often whether its client left or the server stops
KEEPALIVE_S = 15.0  # a comment line this often, so proxies keep the connection open
PAGE = 100  # events read at a time when a listener catches up from the table
INBOX_BATCHES = 64  # batches of new events a listener may have waiting; past it, it catches up


class EventsPage(BaseModel):
    events: list[dict[str, Any]]
    next_after: int | None  # pass as ``after`` for the next page; null at the end
    last: int | None  # the sequence number of the last event here (for the live stream)


def _time(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(f"{name}={text!r} is not a date and time; {TIME_DOC}") from None


class Filters:
    def __init__(
        self,
        stream: Annotated[str | None, Query(max_length=200)] = None,
        person: Annotated[str | None, Query(max_length=200)] = None,
        kind: Kind | None = None,
        since: Annotated[str | None, Query(pattern=ISO_TIME, description=TIME_DOC)] = None,
        until: Annotated[str | None, Query(pattern=ISO_TIME, description=TIME_DOC)] = None,
    ) -> None:
        # The pattern let only ISO 8601 through (pydantic's datetime would take "0.5" too).
        self.chosen = Filter(stream, person, kind, _time("since", since), _time("until", until))

    def read(
        self, log: EventLog, after: int, limit: int, newest: bool = False
    ) -> list[tuple[int, dict[str, Any]]]:
        c = self.chosen
        return log.events(
            stream=c.stream,
            name=c.name,
            kind=c.kind,
            since=c.since,
            until=c.until,
            after=after,
            limit=limit,
            newest=newest,
        )


@router.get(
    "",
    summary="Stored events, oldest first, filtered by stream, person, kind and time; "
    "a page at a time (cursor: after)",
    response_model=EventsPage,
)
async def list_events(
    request: Request,
    filters: Annotated[Filters, Depends()],
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    newest: Annotated[
        bool, Query(description="The last `limit` events instead of the first (no next page).")
    ] = False,
) -> EventsPage:
    log = services(request).event_log()
    if newest:
        rows = await run_in_threadpool(filters.read, log, after, limit, True)
        return EventsPage(events=[e for _, e in rows], next_after=None, last=_last(rows))
    rows = await run_in_threadpool(filters.read, log, after, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return EventsPage(
        events=[e for _, e in page],
        next_after=page[-1][0] if more else None,
        last=_last(page),
    )


def _last(rows: list[tuple[int, dict[str, Any]]]) -> int | None:
    return rows[-1][0] if rows else None


class Listener:
    """One live stream's state: what it has sent (``cursor``), and new events handed over by
    the tail, waiting in a bounded inbox (past it, the listener reads the table instead)."""

    def __init__(self, log: EventLog, filters: Filters, cursor: int) -> None:
        self.log, self.filters, self.cursor = log, filters, cursor
        self.loop = asyncio.get_running_loop()
        self.inbox: asyncio.Queue[list[Stored]] = asyncio.Queue(INBOX_BATCHES)
        self.behind = False  # the inbox overflowed: what it dropped is read from the table

    def arrived(self, rows: list[Stored]) -> None:
        """New events (on the tail's thread: passed on to the loop, nothing else)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            self.loop.call_soon_threadsafe(self._put, rows)

    def _put(self, rows: list[Stored]) -> None:
        try:
            self.inbox.put_nowait(rows)
        except asyncio.QueueFull:
            self.behind = True

    async def caught_up(self) -> AsyncIterator[str]:
        """The stored events after the cursor that match, from the table, a page at a time."""
        if self.behind:
            self.behind = False
            while not self.inbox.empty():
                self.inbox.get_nowait()
        while True:
            rows = await run_in_threadpool(self.filters.read, self.log, self.cursor, PAGE)
            for seq, event in rows:
                self.cursor = seq
                yield _frame(seq, event["kind"], json.dumps(event))
            if len(rows) < PAGE:
                return

    async def new(self, wait_s: float) -> list[str]:
        """The next new events that match (none if none came within ``wait_s``)."""
        try:
            rows = await asyncio.wait_for(self.inbox.get(), wait_s)
        except TimeoutError:
            return []
        frames = []
        for row in rows:
            if row.seq > self.cursor and self.filters.chosen.matches(row.event):
                self.cursor = row.seq
                frames.append(_frame(row.seq, row.event["kind"], row.text))
        return frames


@router.get(
    "/stream",
    summary="Live events as server-sent events (text/event-stream); resumes after "
    "Last-Event-ID (or ?after=), else starts with the next event",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    filters: Annotated[Filters, Depends()],
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> StreamingResponse:
    log = services(request).event_log()
    resume = request.headers.get("last-event-id", "")
    if after is None and resume.isdigit():
        after = int(resume)
    stopping = getattr(request.app.state, "stopping", lambda: False)
    if after is None:  # from now on
        after = await run_in_threadpool(log.last_seq)
    listener = Listener(log, filters, after)

    async def lines() -> AsyncIterator[str]:
        # Listening starts with the body (a response never started has nothing to undo); what
        # came since ``after`` meanwhile is read from the table first.
        tail = await run_in_threadpool(lambda: log.tail)
        await run_in_threadpool(tail.listen, listener.arrived)
        quiet_since = time.monotonic()
        try:
            yield "retry: 2000\n\n"
            async for frame in listener.caught_up():
                yield frame
            while not stopping() and not await request.is_disconnected():
                if listener.behind:
                    async for frame in listener.caught_up():
                        yield frame
                frames = await listener.new(WAKE_S)
                for frame in frames:
                    yield frame
                if frames:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
        finally:
            tail.forget(listener.arrived)

    return StreamingResponse(
        lines(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _frame(seq: int, kind: str, data: str) -> str:
    return f"id: {seq}\nevent: {kind}\ndata: {data}\n\n"


class DeliveryTarget(BaseModel):
    target: str = Field(description="The outbox name: the kind and a digest of the URL.")
    kind: str = Field(description="webhook or mqtt")
    url: str | None = Field(
        description="The URL, credentials masked: for this server's own targets "
        "(FACELENS_EVENTS_*); null for those of 'facelens watch' runs."
    )
    pending: int = Field(description="Events still to go.")
    dead: int = Field(description="Events given up on: kept, not tried again until a retry.")
    attempts: int = Field(description="Failed attempts of the event being tried now.")
    last_error: str | None = Field(description="Why the last attempt failed (null: it did not).")
    delivered: int | None = Field(description="Delivered since the server started (its own).")
    given_up: int | None = Field(description="Given up on since the server started (its own).")


class DeliveriesOut(BaseModel):
    targets: list[DeliveryTarget]


class Retried(BaseModel):
    retried: int = Field(description="Events given up on that are back in line.")


@router.get(
    "/deliveries",
    summary="Each delivery target's outbox: events pending and given up on (dead), and why "
    "the last attempt failed",
    response_model=DeliveriesOut,
)
async def deliveries(request: Request) -> DeliveriesOut:
    svc = services(request)
    boxes = {b.target: b for b in await run_in_threadpool(svc.event_log().outboxes)}
    own = {s["target"]: s for s in (svc.streams.deliveries.status() if svc.streams else [])}
    targets = []
    for name in sorted(boxes.keys() | own.keys()):
        box, status = boxes.get(name), own.get(name, {})
        targets.append(
            DeliveryTarget(
                target=name,
                kind=name.split(":", 1)[0],
                url=status.get("url"),
                pending=box.pending if box else 0,
                dead=box.dead if box else 0,
                attempts=box.attempts if box else 0,
                last_error=(box.last_error if box and box.attempts else None)
                or status.get("last_error"),
                delivered=status.get("delivered"),
                given_up=status.get("given_up"),
            )
        )
    return DeliveriesOut(targets=targets)


@router.post(
    "/deliveries/retry",
    summary="Put the events given up on (of one target, or of all) back in line: they go "
    "next, oldest first (an admin key's call: it sends events out again)",
    response_model=Retried,
    responses=schemas.error_responses(403, 404),
    dependencies=[Depends(require_admin_key)],
)
async def retry_deliveries(
    request: Request,
    target: Annotated[
        str | None, Query(max_length=200, description="An outbox name; unset: every target.")
    ] = None,
) -> Retried:
    log = services(request).event_log()
    if target is not None and target not in {
        b.target for b in await run_in_threadpool(log.outboxes)
    }:
        raise NotFound(f"No outbox {target!r}; GET /v1/events/deliveries lists them.")
    return Retried(retried=await run_in_threadpool(log.retry, target))
