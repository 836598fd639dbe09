"""Opt-in memory tracing for a long-running process: ``JACKGEN_TRACEMALLOC=1`` in its environment.

With it, the process traces Python allocations (tracemalloc, 8 frames deep) from its start, and
each SIGUSR2 logs the 15 places whose allocations grew most since the first SIGUSR2 (or since start):
what to look at when a soak shows RSS growth. Off by default: tracing costs about 2× in allocation
time and memory.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("jackgen.memtrace")


def install_from_env(role: str) -> bool:
    if not os.environ.get("JACKGEN_TRACEMALLOC"):
        return False
    import tracemalloc

    tracemalloc.start(8)
    base: list = []

    def dump(*_) -> None:
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if not base:
            base.append(snap)
        stats = snap.compare_to(base[0], "traceback")[:15]
        total = sum(s.size for s in snap.statistics("filename"))
        log.warning("%s: %.1f MB traced by Python; grown most since the first dump:", role, total / 1e6)
        for s in stats:
            log.warning("  %+.1f kB in %d blocks at %s", s.size_diff / 1e3, s.count_diff, " <- ".join(
                f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in s.traceback[:4]))

    signal.signal(signal.SIGUSR2, dump)
    log.warning("%s: tracing Python allocations (JACKGEN_TRACEMALLOC); SIGUSR2 logs what grew", role)
    return True
