"""Liveness, readiness and Prometheus metrics (no API key needed: probes and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from facelens.api.deps import API_KEY_HEADER, services
from facelens.api.services import Services
from facelens.errors import DatabaseUnavailable, FaceLensError

router = APIRouter(tags=["operations"])
# SQLite's quick_check reads the whole file: for readiness probes at most once a minute, unless
# someone else changed the file since (then at once). Damage any operation meets counts too.
READYZ_CHECK_EVERY_S = 60.0
RECOGNITION_WHILE_DAMAGED = (
    "Recognition goes on with the people the running workers had read before the damage was "
    "found (held in memory; a replaced worker cannot start on the damaged file); no change to "
    "people is stored."
)

WHILE_UNREACHABLE = (
    "Recognition goes on with the people held in memory; changes to people answer 503 "
    "(database_unavailable) until it is back."
)


@router.head("/healthz", include_in_schema=False)  # probes and uptime monitors that send HEAD
@router.get("/healthz", summary="Alive: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _may_count_people(request: Request, svc: Services) -> bool:
    """Whether the caller may be told how many people are enrolled: always when keys are off;
    else only with a valid key. Probes need no key: they are told ready or not all the same."""
    if not await run_in_threadpool(svc.keys.enabled):
        return True
    given = request.headers.get(API_KEY_HEADER)
    if not given:
        return False
    return await run_in_threadpool(svc.keys.check, given) is not None


@router.get(
    "/readyz",
    summary="Ready: workers hold the models and the gallery is readable",
    description="Needs no API key. When keys are on, `people` (how many are enrolled) is "
    f"answered only to a caller sending a valid key in `{API_KEY_HEADER}`; else it is null.",
    responses={503: {"description": "Not ready, with the reason"}},
)
async def readyz(request: Request) -> JSONResponse:
    svc = services(request)
    problems = []
    ready_workers = svc.pool.ready
    if not ready_workers:
        problems.append("no worker process has its models loaded (starting or restarting)")
    people, unreachable = None, svc.gallery.unreachable
    try:
        # quick_check at least once a minute, and whenever someone else changed the file.
        damage = await run_in_threadpool(svc.gallery.health, READYZ_CHECK_EVERY_S)
        if not damage and unreachable is None:
            await run_in_threadpool(svc.gallery.check_model)
            people = await run_in_threadpool(svc.gallery.count_people)
    except DatabaseUnavailable as exc:  # noticed here before the follower did
        unreachable = exc.message
    except FaceLensError as exc:
        if svc.gallery.damaged is None:
            problems.append(exc.message)
    if svc.gallery.damaged is not None:  # remembered: not ready until restored and restarted
        problems += [svc.gallery.damaged, RECOGNITION_WHILE_DAMAGED]
    body = {
        "status": "not ready" if problems else "ready",
        "problems": problems,
        "workers": svc.pool.size,
        "workers_ready": ready_workers,
        "profile": svc.gallery.profile.name,
        "model": svc.pool.model_id,
        "threshold": svc.gallery.profile.scoring(svc.settings).threshold,
        "people": people if await _may_count_people(request, svc) else None,
        "queue": svc.pool.pending,
        # A shared database out of reach leaves the server ready: it recognises from memory
        # (writes answer 503 database_unavailable until the database is back).
        "database": None
        if svc.settings.database_url is None
        else {
            "url": svc.gallery.where,
            "reachable": unreachable is None,
            "problem": unreachable and f"{unreachable} {WHILE_UNREACHABLE}",
        },
    }
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    svc = services(request)
    svc.metrics.queue.set(svc.pool.pending)
    # Collecting reads the streams' status files and the events' outbox: off the event loop
    # (a large outbox took seconds, and /healthz waited behind it), and one scrape at a time
    # (this route is keyless and never refused: 64 at once took every thread).
    async with svc.metrics.one_scrape:
        text = await run_in_threadpool(generate_latest, svc.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
