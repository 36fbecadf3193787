"""``facelens gallery``: move the gallery to another model; propose a threshold for it."""

from __future__ import annotations
