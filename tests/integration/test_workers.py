"""The server's worker pool with stand-in workers (no models): one request per process, time
limits, dead workers, clients that leave, the queue bound. Event-driven, seconds in all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.errors import ClientGone, ModelError, NoFaceFound, Unavailable, WorkTimeout
from facelens.settings import Settings
from facelens.workers.pool import SpawnedWorkerPool
from tests.support import fake_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[SpawnedWorkerPool]:
    settings = Settings(data_dir=tmp_path, workers=2, request_timeout_s=1.0, max_queue=3)
    workers = SpawnedWorkerPool(settings, target=fake_worker.serve)
    workers.start()
    yield workers
    workers.close()


async def ready(pool: SpawnedWorkerPool, count: int) -> None:
    deadline = time.monotonic() + 30
    while pool.ready < count or pool._idle.qsize() < count:
        assert time.monotonic() < deadline, "the replacement never became ready"
        await asyncio.sleep(0.02)


def test_each_request_has_a_process_of_its_own(pool: SpawnedWorkerPool) -> None:
    async def main() -> list[int]:
        return await asyncio.gather(*(pool.analyze(b"sleep:0.3", "x") for _ in range(2)))

    assert sorted(asyncio.run(main())) == pool.pids and len(pool.pids) == 2


def test_a_request_over_the_time_limit_is_stopped_and_its_worker_replaced(
    pool: SpawnedWorkerPool,
) -> None:
    before = pool.pids

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(WorkTimeout, match=r"longer than 1 s"):
            await pool.analyze(b"sleep:30", "bomb")
        assert time.monotonic() - started < 5
        await ready(pool, 2)
        assert await pool.analyze(b"echo", "x") in pool.pids

    asyncio.run(main())
    assert len(set(before) - set(pool.pids)) == 1  # exactly one process was replaced


def test_a_worker_that_dies_fails_its_own_request_only(pool: SpawnedWorkerPool) -> None:
    async def main() -> None:
        slow = asyncio.create_task(pool.analyze(b"sleep:0.5", "other"))
        await asyncio.sleep(0.05)  # the slow one holds a worker first
        with pytest.raises(Unavailable, match="died"):
            await pool.analyze(b"die", "victim")
        assert await slow in pool.pids  # the other request was answered
        await ready(pool, 2)

    asyncio.run(main())


def test_work_for_a_client_that_left_is_stopped_after_a_grace(pool: SpawnedWorkerPool) -> None:
    pool.gone_grace_s = 0.2

    async def gone() -> bool:
        return True

    async def main() -> None:
        with pytest.raises(ClientGone):
            await pool.analyze(b"sleep:30", "x", gone)
        # Work that ends within the grace is answered even though the client left.
        await ready(pool, 2)
        assert await pool.analyze(b"sleep:0.05", "x", gone) in pool.pids

    asyncio.run(main())


def test_answers_errors_and_crashes_leave_the_worker_in_service(pool: SpawnedWorkerPool) -> None:
    before = pool.pids

    async def main() -> None:
        with pytest.raises(NoFaceFound):
            await pool.analyze(b"noface", "x")
        with pytest.raises(RuntimeError, match="boom"):
            await pool.analyze(b"crash", "x")
        assert await pool.analyze(b"echo", "x") in before

    asyncio.run(main())
    assert pool.pids == before


def test_requests_beyond_the_queue_bound_are_refused_at_once(pool: SpawnedWorkerPool) -> None:
    async def main() -> None:
        held = [asyncio.create_task(pool.analyze(b"sleep:0.5", "x")) for _ in range(3)]
        await asyncio.sleep(0.05)
        with pytest.raises(Unavailable, match="busy"):
            await pool.analyze(b"echo", "x")
        await asyncio.gather(*held)

    asyncio.run(main())


def test_a_worker_that_cannot_load_its_models_stops_the_start_with_its_reason(
    tmp_path: Path,
) -> None:
    workers = SpawnedWorkerPool(
        Settings(data_dir=tmp_path, workers=2), target=fake_worker.serve_without_models
    )
    with pytest.raises(ModelError, match=r"x\.onnx is missing"):
        workers.start()
    assert workers.ready == 0


def test_the_further_images_of_an_admitted_request_wait_instead_of_being_refused(
    pool: SpawnedWorkerPool,
) -> None:
    # An enrolment of more photos than the queue holds: admitted once, every photo answered.
    async def main() -> list[int]:
        pool.check_capacity()
        photos = [pool.analyze(b"sleep:0.05", f"photo {n}", queued=False) for n in range(8)]
        return await asyncio.gather(*photos)

    assert set(asyncio.run(main())) <= set(pool.pids)


def test_requests_waiting_for_a_worker_are_served_first_come_first_served(
    tmp_path: Path,
) -> None:
    """Waiting in line in slices (a wait that timed out left the line and joined it again at
    its end) let later requests overtake earlier ones: at 16 clients, p95 doubled."""
    settings = Settings(data_dir=tmp_path, workers=1, request_timeout_s=30, max_queue=64)
    pool = SpawnedWorkerPool(settings, target=fake_worker.serve)
    pool.start()
    served: list[int] = []

    async def one(number: int) -> None:
        await asyncio.sleep(number * 0.01)  # they arrive in this order
        await pool.analyze(b"sleep:0.2", "x")  # each outlasts the line's old 0.25 s slices
        served.append(number)

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(8))), 60)

    try:
        asyncio.run(main())
    finally:
        pool.close()
    assert served == sorted(served), served
