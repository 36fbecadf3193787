"""The composition root of the HTTP service: everything its routes use, opened in order and
closed in reverse (by ``facelens serve`` and by the contract tests alike)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from facelens.api.idempotency import IdempotencyStore
from facelens.api.keys import KeyStore
from facelens.api.observability import Metrics
from facelens.events.delivery import DeliveryMetrics
from facelens.events.log import EventLog
from facelens.gallery import StoredGallery, open_gallery, shared_url
from facelens.settings import Settings
from facelens.system.lifetime import Child, Spawn
from facelens.video.metrics import StreamMetrics
from facelens.video.streams import StreamManager
from facelens.workers.pool import SpawnedWorkerPool
from facelens.workers.worker import serve as run_worker

log = logging.getLogger(__name__)

Worker = Callable[[Connection, Settings], None]  # what a worker process runs


@dataclass(slots=True)
class Services:
    """One running server's services. :meth:`open` makes them, :meth:`start` starts the work
    (worker processes, streams), :meth:`close` closes all of it."""

    settings: Settings
    pool: SpawnedWorkerPool
    gallery: StoredGallery
    keys: KeyStore
    idempotency: IdempotencyStore
    metrics: Metrics
    events: EventLog | None = None  # opened on first use (events of 'facelens watch' runs)
    streams: StreamManager | None = None  # the streams the server watches (None: runs none)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        given_keys: tuple[str, ...] = (),
        worker: Worker = run_worker,
        spawn: Spawn = Child.spawn,
    ) -> Services:
        """The gallery (a gallery of another model than ``settings.model`` is refused here,
        before any model loads), the API keys (``given_keys`` from the environment beside the
        stored ones), idempotency records and the worker pool, not started (``worker`` is
        what each runs, ``spawn`` how it is started). The settings kept name the gallery's
        model. What was opened is closed again if a step fails."""
        gallery = open_gallery(settings, follow=True)
        opened: list[KeyStore | IdempotencyStore | StoredGallery] = [gallery]
        try:
            settings = settings.with_model(gallery.profile.name)
            url = shared_url(settings)
            keys = KeyStore(settings.gallery_path, given_keys, url)
            opened.append(keys)
            idempotency = IdempotencyStore(settings.gallery_path, gallery.check_writable, url)
            opened.append(idempotency)
            pool = SpawnedWorkerPool(settings, worker, spawn)
        except BaseException:
            for store in reversed(opened):
                store.close()
            raise
        return cls(settings, pool, gallery, keys, idempotency, Metrics())

    def start(self, *, streams: bool = True) -> None:
        """Start the worker processes (they load and warm the models) and, with ``streams``,
        the streams configured before, their event delivery and their metrics."""
        self.pool.start()
        if not streams:
            return
        self.streams = StreamManager(self.settings)
        self.streams.start_all()
        self.metrics.registry.register(StreamMetrics(self.streams.statuses))
        self.metrics.registry.register(
            DeliveryMetrics(self.streams.deliveries, self.streams.outbox)
        )

    def event_log(self) -> EventLog:
        """The event log of the data directory, opened on first use."""
        if self.events is None:
            self.events = EventLog(self.settings.events_path, url=shared_url(self.settings))
        return self.events

    def close(self) -> None:
        """Close everything, the last opened first: the streams (their processes stopped),
        the event log, the worker processes, then the stores."""
        closers: list[Callable[[], None]] = []
        if self.streams is not None:
            closers.append(self.streams.close)
        if self.events is not None:
            closers.append(self.events.close)
        closers += [self.pool.close, self.idempotency.close, self.keys.close, self.gallery.close]
        for close in closers:
            try:
                close()
            except Exception:  # the others are closed all the same
                log.exception("closing %s failed", getattr(close, "__self__", close))
