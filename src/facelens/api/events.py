"""``GET /v1/events`` (stored events, filtered, a page at a time) and ``GET /v1/events/stream``
(server-sent events, live). The events are those of ``facelens watch`` runs on the same data
directory, read from its ``events.sqlite3``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.deps import Services, require_api_key, services
from facelens.errors import InvalidValue
from facelens.video.eventlog import EventLog

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=[Depends(require_api_key)],
    responses=schemas.error_responses(401, 422),
)
Kind = Literal["arrived", "renamed", "left"]
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
TIME_DOC = "ISO 8601, e.g. 2026-12-01T08:00:00Z (no zone: UTC); since inclusive, until exclusive."
POLL_S = 0.5  # how often the live stream looks for new events
KEEPALIVE_S = 15.0  # a comment line this often, so proxies keep the connection open


class EventsPage(BaseModel):
    events: list[dict[str, Any]]
    next_after: int | None  # pass as ``after`` for the next page; null at the end
    last: int | None  # the sequence number of the last event here (for the live stream)


def event_log(svc: Services) -> EventLog:
    if svc.events is None:
        svc.events = EventLog(svc.settings.data_dir / "events.sqlite3")
    return svc.events


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
        self.stream, self.person, self.kind = stream, person, kind
        # The pattern let only ISO 8601 through (pydantic's datetime would take "0.5" too).
        self.since, self.until = _time("since", since), _time("until", until)

    def read(
        self, log: EventLog, after: int, limit: int, newest: bool = False
    ) -> list[tuple[int, dict[str, Any]]]:
        return log.events(
            stream=self.stream,
            name=self.person,
            kind=self.kind,
            since=self.since,
            until=self.until,
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
    log = event_log(services(request))
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
    log = event_log(services(request))
    resume = request.headers.get("last-event-id", "")
    if after is None and resume.isdigit():
        after = int(resume)
    if after is None:  # from now on
        after = await run_in_threadpool(log.last_seq)
    stopping = getattr(request.app.state, "stopping", lambda: False)

    async def lines(cursor: int) -> AsyncIterator[str]:
        quiet_since = time.monotonic()
        yield "retry: 2000\n\n"
        while not stopping() and not await request.is_disconnected():
            rows = await run_in_threadpool(filters.read, log, cursor, 100)
            for seq, event in rows:
                cursor = seq
                yield f"id: {seq}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n"
            if rows:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        lines(after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
