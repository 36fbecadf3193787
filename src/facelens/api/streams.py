"""``/v1/streams``: cameras and videos the server watches, each in its own process; their
status, newest annotated frame (``snapshot.jpg``) and a live view (``mjpeg``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.deps import require_admin_key, services
from facelens.api.services import Services
from facelens.errors import NotFound, Unavailable
from facelens.video.streams import StreamConfig, StreamManager

router = APIRouter(
    prefix="/v1/streams",
    tags=["streams"],
    dependencies=[Depends(require_admin_key)],
    responses=schemas.error_responses(400, 401, 404, 409, 422, 503),
)
StreamId = Annotated[str, Path(min_length=1, max_length=64)]
BOUNDARY = "facelensframe"
MJPEG_EVERY_S = 0.2


class StreamIn(BaseModel):
    id: str = Field(min_length=1, max_length=64, examples=["front-door"])
    source: str = Field(
        min_length=1,
        max_length=2000,
        description="rtsp:// or http(s):// URL (MJPEG too), a camera (0, /dev/video0) or a "
        "video file on the server, as the server's FACELENS_STREAM_* settings allow (422 "
        "'source_not_allowed' otherwise).",
    )
    fps: float | None = Field(
        default=None, gt=0, le=60, description="Unset: as fast as it keeps up."
    )


class StreamPatch(BaseModel):
    source: str | None = Field(default=None, min_length=1, max_length=2000)
    fps: float | None = Field(default=None, gt=0, le=60)


def manager(svc: Services) -> StreamManager:
    if svc.streams is None:
        raise Unavailable("This server runs no streams (it was started without them).")
    return svc.streams


def _out(config: StreamConfig, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": config.id,
        "source": config.shown,  # credentials masked
        "fps_limit": config.fps,
        "created_at": config.created_at,
        "status": status,
    }


@router.post("", status_code=201, summary="Watch a camera or video (persisted)")
async def create_stream(request: Request, stream: StreamIn) -> JSONResponse:
    streams = manager(services(request))
    config = await run_in_threadpool(streams.create, stream.id, stream.source, stream.fps)
    return JSONResponse(_out(config, {"state": "starting"}), status_code=201)


@router.get("", summary="Every stream with its status")
async def list_streams(request: Request) -> dict[str, list[dict[str, Any]]]:
    streams = manager(services(request))
    configs = await run_in_threadpool(streams.list)
    return {"streams": [_out(c, streams.status(c.id)) for c in configs]}


@router.get(
    "/{stream_id}", summary="One stream: fps achieved, frames dropped, reconnects, last error"
)
async def get_stream(request: Request, stream_id: StreamId) -> dict[str, Any]:
    streams = manager(services(request))
    config = await run_in_threadpool(streams.get, stream_id)
    return _out(config, streams.status(stream_id))


@router.patch("/{stream_id}", summary="Change a stream's source or rate (it restarts)")
async def update_stream(
    request: Request, stream_id: StreamId, change: Annotated[StreamPatch, Body()]
) -> dict[str, Any]:
    streams = manager(services(request))
    config = await run_in_threadpool(streams.update, stream_id, change.source, change.fps)
    return _out(config, {"state": "starting"})


@router.delete("/{stream_id}", summary="Stop watching (its events stay)")
async def delete_stream(request: Request, stream_id: StreamId) -> dict[str, str]:
    streams = manager(services(request))
    await run_in_threadpool(streams.delete, stream_id)
    return {"id": stream_id, "status": "deleted"}


def _snapshot(streams: StreamManager, stream_id: str) -> bytes:
    streams.get(stream_id)
    try:
        return (streams.folder(stream_id) / "snapshot.jpg").read_bytes()
    except OSError:
        raise NotFound(f"Stream {stream_id!r} has no frame yet.") from None


@router.get(
    "/{stream_id}/snapshot.jpg",
    summary="The newest processed frame, faces boxed and named",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def snapshot(request: Request, stream_id: StreamId) -> Response:
    streams = manager(services(request))
    jpeg = await run_in_threadpool(_snapshot, streams, stream_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get(
    "/{stream_id}/mjpeg",
    summary="A live annotated view a browser can show (multipart/x-mixed-replace)",
    response_class=StreamingResponse,
    responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}},
)
async def mjpeg(request: Request, stream_id: StreamId) -> StreamingResponse:
    streams = manager(services(request))
    await run_in_threadpool(streams.get, stream_id)
    stopping = getattr(request.app.state, "stopping", lambda: False)

    async def parts() -> AsyncIterator[bytes]:
        last = b""
        while not stopping() and not await request.is_disconnected():
            try:
                jpeg = await run_in_threadpool(_snapshot, streams, stream_id)
            except NotFound:
                jpeg = b""
            if jpeg and jpeg != last:
                last = jpeg
                yield (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
            await asyncio.sleep(MJPEG_EVERY_S)

    return StreamingResponse(
        parts(),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store"},
    )
