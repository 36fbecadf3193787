"""Small helpers shared by the tests."""

from __future__ import annotations

import csv
import json
import sqlite3
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class Probe:
    """A probe photo and the sorted names expected among its faces."""

    file: Path
    expected: list[str]


def read_probes(faces_dir: Path) -> list[Probe]:
    """The probes of ``faces_dir/probes.csv``, each with the names expected in it."""
    with (faces_dir / "probes.csv").open(newline="") as handle:
        return [
            Probe(faces_dir / "probes" / row["file"], sorted(row["expected"].split(";")))
            for row in csv.DictReader(handle)
        ]


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def progressive_jpeg_with_repeated_scan(
    repeats: int, size: tuple[int, int] = (4000, 3000)
) -> bytes:
    """A progressive JPEG whose shortest scan (SOS marker and its entropy-coded data) is repeated
    ``repeats`` times before EOI: every limit holds, but each scan is a pass over the image."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buffer, "JPEG", progressive=True, quality=80)
    data = buffer.getvalue()
    scans = []
    start = data.find(b"\xff\xda")
    while start != -1:
        end = start + 2 + int.from_bytes(data[start + 2 : start + 4], "big")
        while True:  # entropy-coded data ends at a marker that is not a stuffed 0xFF or RSTn
            end = data.index(b"\xff", end)
            if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 2
                continue
            break
        scans.append(data[start:end])
        start = data.find(b"\xff\xda", end)
    shortest = min(scans, key=len)
    eoi = data.rindex(b"\xff\xd9")
    return data[:eoi] + shortest * repeats + data[eoi:]


def fill_events(path: Path, count: int) -> None:
    """``count`` events written straight into an event log's table, one a second up to now
    (5 streams ``s0``.., 50 people ``p0``.., the 3 kinds in turn)."""
    start = datetime.now(UTC) - timedelta(seconds=count)
    rows = []
    for i in range(count):
        when = (start + timedelta(seconds=i)).isoformat()
        kind = ("arrived", "renamed", "left")[i % 3]
        body = {"id": f"old{i}", "kind": kind, "stream": f"s{i % 5}", "name": f"p{i % 50}"}
        rows.append((f"old{i}", when, f"s{i % 5}", kind, f"p{i % 50}", json.dumps(body)))
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO events (id, time, stream, kind, name, body) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
