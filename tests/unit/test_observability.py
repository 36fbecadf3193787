"""The server's logs: one JSON object per line with the request's fields."""

from __future__ import annotations

import json
import logging

from facelens.api.observability import JsonFormatter


def test_json_logs_are_one_object_per_line_with_the_request_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "facelens.access",
            "levelname": "INFO",
            "msg": "POST /v1/recognize 200",
            "request_id": "abc",
            "faces": 2,
            "latency_ms": 12.5,
        }
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "POST /v1/recognize 200" and entry["level"] == "info"
    assert (entry["request_id"], entry["faces"], entry["latency_ms"]) == ("abc", 2, 12.5)
