"""The storage layer: every file under the data directory is opened, written and failed on
through :class:`facelens.storage.sqlite.Database` (one per file per process)."""
