"""Does each model stage scale with threads? Decides the server's worker model (workers/pool.py).

Runs each stage N times in 1 thread, then in 2 threads at once, on one probe photo, and prints
the throughput ratio: ~2 means the stage releases the GIL (threads can use both cores), ~1 means
it holds it (only processes can). Run: .venv/bin/python bench/threads_vs_gil.py [PHOTO]
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from facelens.core.imaging import downscale, read_image_file
from facelens.core.pipeline import Engine
from facelens.settings import Settings

REPEATS = 8


def rate(work: Callable[[], object], threads: int) -> float:
    def loop() -> None:
        for _ in range(REPEATS):
            work()

    runners = [threading.Thread(target=loop) for _ in range(threads)]
    start = time.perf_counter()
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    return REPEATS * threads / (time.perf_counter() - start)


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared/data/faces/probes/obama-720p.jpg"
    photo = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    settings = Settings(model="dlib")  # the measurement is about dlib's two stages
    engine = Engine.load(settings)
    image = read_image_file(photo, max_pixels=settings.max_pixels)
    small, factor = downscale(image.pixels, engine.detect_max_side)
    found = engine.detector.detect(small)[:1]
    chips = engine.aligner.align(
        image.pixels, [d.scaled(factor, image.width, image.height) for d in found]
    )
    stages: dict[str, Callable[[], object]] = {
        "detect (HOG)": lambda: engine.detector.detect(small),
        "embed (ResNet)": lambda: engine.embedder.embed(chips),
    }
    print(f"{photo.name}: {image.width}x{image.height}, {REPEATS} runs per thread")
    for name, work in stages.items():
        work()  # warm up
        one, two = rate(work, 1), rate(work, 2)
        print(f"{name:15} 1 thread {one:6.1f}/s   2 threads {two:6.1f}/s   ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
