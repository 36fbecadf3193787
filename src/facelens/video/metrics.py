"""Prometheus metrics of watched streams, made from their status when scraped: frames read,
processed and dropped, reconnects, embeddings (in all, per second, and per track: the saving
over embedding every frame), tracks and faces in view, and whether the source runs.

One collector for both the server (its streams' status files) and ``facelens watch
--metrics-port`` (its live streams)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

Statuses = Callable[[], Mapping[str, Mapping[str, Any]]]

_COUNTERS = (
    ("frames_read", "Frames read from the stream's source."),
    ("frames_processed", "Frames detected and tracked."),
    ("frames_dropped", "Frames a live source replaced before they could be processed."),
    ("reconnects", "Times the stream's source was connected again after a failure."),
    ("embeddings", "Faces embedded (recognised), in all."),
    ("tracks", "Faces tracked (tracks started)."),
)


class StreamMetrics(Collector):
    """``facelens_stream_*`` metrics, labelled by stream, from ``statuses()`` (stream id →
    the status a stream reports)."""

    def __init__(self, statuses: Statuses) -> None:
        self.statuses = statuses

    def collect(self) -> Iterator[Metric]:
        statuses = self.statuses()
        up = GaugeMetricFamily(
            "facelens_stream_up", "1 while the stream's source gives frames.", labels=["stream"]
        )
        fps = GaugeMetricFamily(
            "facelens_stream_fps",
            "Frames processed per second over the last seconds.",
            labels=["stream"],
        )
        per_s = GaugeMetricFamily(
            "facelens_stream_embeddings_per_second",
            "Faces embedded per second over the last seconds.",
            labels=["stream"],
        )
        in_view = GaugeMetricFamily(
            "facelens_stream_faces_in_view", "Tracks in view now.", labels=["stream"]
        )
        counters = {
            key: CounterMetricFamily(f"facelens_stream_{key}", text, labels=["stream"])
            for key, text in _COUNTERS
        }
        per_track = HistogramMetricFamily(
            "facelens_stream_embeddings_per_track",
            "Embeddings made for each ended track (one per frame would be the frames it was "
            "seen on).",
            labels=["stream"],
        )
        for stream, status in sorted(statuses.items()):
            up.add_metric([stream], 1.0 if status.get("state") == "running" else 0.0)
            fps.add_metric([stream], float(status.get("fps") or 0.0))
            per_s.add_metric([stream], float(status.get("embeddings_per_s") or 0.0))
            in_view.add_metric([stream], float(len(status.get("in_view") or ())))
            for key, family in counters.items():
                family.add_metric([stream], float(status.get(key) or 0))
            histogram = status.get("embeddings_per_track")
            if histogram:
                cumulative = list(accumulate(histogram["counts"]))
                bounds = [str(float(b)) for b in histogram["buckets"]] + ["+Inf"]
                per_track.add_metric(
                    [stream],
                    buckets=list(zip(bounds, [float(c) for c in cumulative], strict=True)),
                    sum_value=float(histogram["sum"]),
                )
        yield from (up, fps, per_s, in_view, *counters.values(), per_track)
