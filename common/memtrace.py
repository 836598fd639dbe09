"""Opt-in memory tracing for a long-running process: ``JACKGEN_TRACEMALLOC=SECONDS`` in its environment.

With it, the process traces Python allocations (tracemalloc, 5 frames deep) from its start, and
every SECONDS (60 when the value is not a number) logs the 15 places whose allocations grew most
since the first report, and the object types whose live count grew most (a leaked Python object
that holds native memory, a plugin instance, shows there and hardly at all in the traces): what to
look at when a soak shows RSS growth. A thread of its own does it
(no signal: a process's main thread may sit in a C call for good, as the feeder's accept does).
Off by default: tracing costs about 2× in allocation time and memory.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger("jackgen.memtrace")


def install_from_env(role: str) -> bool:
    value = os.environ.get("JACKGEN_TRACEMALLOC")
    if not value:
        return False
    import tracemalloc

    try:
        every_s = max(1.0, float(value))
    except ValueError:
        every_s = 60.0
    tracemalloc.start(5)
    base: list = []
    base_types: list = []

    def report() -> None:
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if not base:
            base.append(snap)
        total = sum(s.size for s in snap.statistics("filename"))
        log.warning("%s: %.1f MB traced by Python; grown most since the first report:", role, total / 1e6)
        for s in snap.compare_to(base[0], "traceback")[:15]:
            log.warning("  %+.1f kB in %+d blocks at %s", s.size_diff / 1e3, s.count_diff, " <- ".join(
                f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in s.traceback[:4]))
        counts = _type_counts()
        if not base_types:
            base_types.append(counts)
        grown = sorted(((n - base_types[0].get(t, 0), t) for t, n in counts.items()), reverse=True)[:10]
        log.warning("  live objects grown most: %s", ", ".join(f"{t} {d:+d}" for d, t in grown if d > 0) or "none")

    def loop() -> None:
        while True:
            time.sleep(every_s)
            report()

    threading.Thread(target=loop, name="memtrace", daemon=True).start()
    log.warning("%s: tracing Python allocations (JACKGEN_TRACEMALLOC), a report every %.0f s", role, every_s)
    return True


def _type_counts() -> dict[str, int]:
    import collections
    import gc

    return dict(collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()))
