"""Processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Linux: if the parent is killed outright, this process goes too instead of lingering.
    The signal comes when the parent *thread* that started this process ends. A parent gone
    already (killed while this process was starting) sends none: this process ends at once."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable; workers may outlive a killed server")
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # adopted: the parent is gone
        log.warning("the process that started this one (pid %s) is gone; ending", parent.pid)
        raise SystemExit(1)
