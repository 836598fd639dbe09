"""Crash crumbs: shared int64 words that name the plugin a process is inside.

A process that hosts plugins (the engine for the master chain, the feeder and the
generator workers for track chains) writes index + 1 to its word before each plugin
runs and −(index + 1) while one loads (``jackgen.plugins.host.Chain``), 0 otherwise.
If the process dies, the word still names the plugin; control reads it and marks
that plugin failed before the process is restarted.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np


CB_HIST_BUCKETS = 100_000  # "cbhist": the engine's callback times, 1 µs buckets up to 100 ms (/metrics)


def crumb_file(instance: str, role: str = "engine") -> Path:
    return Path("/dev/shm") / f"jackgen.{instance}.crumb-{role}"


def open_crumb(instance: str, role: str = "engine", slots: int = 1, create: bool = True) -> np.ndarray:
    """Shared int64 words naming the plugin a process is inside (one per track for producers:
    the feeder and generator workers; one for the engine's master chain). Control creates them
    (before the rings, so a process that found the rings finds them too) and removes them at
    exit; a process run without control gets private words that nobody reads."""
    path = crumb_file(instance, role)
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return np.zeros(slots, dtype=np.int64)
    try:
        if os.fstat(fd).st_size < 8 * slots:
            os.ftruncate(fd, 8 * slots)
        mm = mmap.mmap(fd, 8 * slots)
    finally:
        os.close(fd)
    return np.frombuffer(mm, dtype=np.int64, count=slots)
