"""A bounded HTTP load from its own process: N requests at concurrency C, with a time limit.

Usage: python bench/load.py URL PATH BODY_FILE CONCURRENCY REQUESTS TIME_LIMIT_S [base64]
Prints JSON: latencies (s) of the successful requests, status counts, wall time.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx


def main() -> None:
    url, path, body_file = sys.argv[1], sys.argv[2], sys.argv[3]
    concurrency, requests, limit = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    body = open(body_file, "rb").read()  # noqa: SIM115 - read once
    if len(sys.argv) > 7 and sys.argv[7] == "base64":
        body = base64.b64encode(body)
    headers = {"content-type": "text/plain" if path == "/predictor" else "image/jpeg"}
    deadline = time.monotonic() + limit
    local = threading.local()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    def call(_: int) -> None:
        if time.monotonic() > deadline:
            statuses["skipped (time limit)"] += 1
            return
        client = getattr(local, "client", None) or httpx.Client(timeout=120)
        local.client = client
        start = time.perf_counter()
        try:
            status = str(client.post(url + path, content=body, headers=headers).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        statuses[status] += 1
        if status == "200":
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(requests)))
    wall = time.perf_counter() - started
    json.dump({"latencies": latencies, "statuses": dict(statuses), "wall_s": wall}, sys.stdout)


if __name__ == "__main__":
    main()
