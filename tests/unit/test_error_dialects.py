"""Each foreign API registers its own error body (api/errors.register_dialect); every error of
its paths is answered in it, everything else in facelens's own."""

from __future__ import annotations

import json

from fastapi.responses import JSONResponse
from starlette.requests import Request

import facelens.api.app  # noqa: F401  (imports the compat modules, which register theirs)
from facelens import errors
from facelens.api.errors import register_dialect, render


def request_for(path: str) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    )


def test_a_registered_dialect_answers_the_errors_of_its_paths_only() -> None:
    def teapot(
        status: int, message: str, exc: errors.FaceLensError | None, headers: dict[str, str] | None
    ) -> JSONResponse:
        return JSONResponse({"teapot": message}, status_code=418)

    register_dialect(lambda path: path.startswith("/teapot/"), teapot)
    mine = render(request_for("/teapot/brew"), 400, "bad", "no tea")
    assert (mine.status_code, json.loads(mine.body)) == (418, {"teapot": "no tea"})
    ours = render(request_for("/v1/people"), 400, "bad", "no tea")
    assert json.loads(ours.body) == {"error": {"code": "bad", "message": "no tea"}}


def test_each_foreign_api_answers_in_its_own_shape() -> None:
    missing = errors.PersonNotFound("No person 'x'.")
    deepstack = render(request_for("/v1/vision/face/delete"), 404, missing.code, "gone", missing)
    assert json.loads(deepstack.body)["success"] is False
    compreface = render(
        request_for("/api/v1/recognition/subjects/x"), 404, missing.code, "gone", missing
    )
    assert (compreface.status_code, json.loads(compreface.body)["code"]) == (404, 42)
    kserve = render(request_for("/v2/models/x"), 404, missing.code, "gone", missing)
    assert json.loads(kserve.body) == {"error": "gone"}
