"""The library as control runs it: opened, fed and asked off the event loop.

Every database call runs in one worker thread (``library`` executor), so a slow or unreachable
database (a PostgreSQL that went away: each connect gives up after 3 s) never stalls the mixer's
commands; requests wait for it instead and say so. The library opens at start and, while it
cannot, retries every 5 s; takes finished meanwhile are found by ``reconcile`` once it opens.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from pathlib import Path
from typing import Any, Callable

from jackgen.common.errors import JackgenError
from jackgen.daemon.library.store import Library, LibraryError, default_url

log = logging.getLogger("jackgen.library")

RETRY_S = 5.0
CALL_TIMEOUT_S = 15.0


def library_url(cfg) -> str:
    return cfg.database.url or default_url(cfg.data_path, cfg.instance)


def open_library(cfg, embedder: Any = "auto", migrate: bool = True) -> Library:
    return Library(library_url(cfg), cfg.data_path / "library", Path(cfg.control.sessions_dir),
                   embedder=embedder, migrate=migrate)


class LibraryService:
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.lib: Library | None = None
        self.error: str | None = "not opened yet"
        self.takes_recorded = 0
        self.record_errors = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="library")
        self._task: asyncio.Task | None = None
        self.last_ping: dict = {"ok": False, "error": self.error}
        self._ping_fut: asyncio.Future | None = None
        self._refs_seen: set[tuple[str, str]] = set()
        self._ping_t0 = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._open_loop(), name="library-open")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self.lib is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self.lib.close)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _open_loop(self) -> None:
        loop = asyncio.get_running_loop()
        url = library_url(self.cfg)
        while self.lib is None:
            try:
                lib = await loop.run_in_executor(self._pool, open_library, self.cfg)
            except Exception as e:  # a database that cannot be reached or migrated: said, retried
                self.error = f"{_safe_url(url)}: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
                log.error("library: cannot open the database (%s); retrying every %.0f s", self.error, RETRY_S)
                await asyncio.sleep(RETRY_S)
                continue
            self.lib, self.error = lib, None
            before, after = lib.revision
            log.info("library: %s at revision %s%s; prompt search by %s", _safe_url(url), after,
                     f" (upgraded from {before or 'empty'})" if before != after else "", lib.search_mode)
            try:
                got = await loop.run_in_executor(self._pool, lib.reconcile)
                log.info("library: %d take(s) (%d added from disk, %d gone)", await self.call(lib.count),
                         got["added"], got["gone"])
            except Exception:
                log.exception("library: reconciling with the sessions folder")

    # ------------------------------------------------------------ calls
    async def call(self, fn: Callable, *args, **kw) -> Any:
        """``fn(*args)`` in the library thread; JackgenError 503 when the library is not open."""
        if self.lib is None:
            raise JackgenError(f"the library is not available: {self.error}", status=503)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, lambda: fn(*args, **kw)), CALL_TIMEOUT_S)
        except LibraryError as e:
            raise JackgenError(str(e), status=e.status) from None
        except asyncio.TimeoutError:
            raise JackgenError(f"the library's database did not answer within {CALL_TIMEOUT_S:.0f} s",
                               status=503) from None
        except JackgenError:
            raise
        except Exception as e:  # the database went away mid-call (OperationalError …): a 503, logged
            log.error("library: %s: %s", getattr(fn, "__name__", fn), e)
            raise JackgenError(f"the library's database failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                               status=503) from None

    def record(self, outputs: Any, job_id: str, attempt: Any) -> None:
        """A job's takes (its "done" event's outputs) into the library, in the library thread."""
        if not isinstance(outputs, list):
            return
        paths = [o.get("json") for o in outputs if isinstance(o, dict) and isinstance(o.get("json"), str)]
        if not paths or self.lib is None:
            return  # not open: reconcile adds them from disk once it is
        lib = self.lib

        def work() -> None:
            for p in paths:
                try:
                    if lib.add_take(p, job_id, attempt if isinstance(attempt, int) else None) is not None:
                        self.takes_recorded += 1
                except Exception as e:  # kept on disk: reconcile adds it at the next start
                    self.record_errors += 1
                    log.error("library: recording take %s of job %s: %s", p, job_id, e)

        self._pool.submit(work)

    def note_ref(self, session_dir: Path, path: str) -> None:
        """A file a session used, remembered once (in the library thread; best effort)."""
        key = (str(session_dir), path)
        if self.lib is None or key in self._refs_seen:
            return
        self._refs_seen.add(key)
        lib = self.lib

        def work() -> None:
            try:
                lib.add_ref(session_dir, path)
            except Exception as e:
                self._refs_seen.discard(key)
                log.warning("library: noting %s: %s", path, e)

        self._pool.submit(work)

    async def ping(self) -> dict:
        """{"ok", "latency_ms" | "error"} — one query, at most 3 s. A query still hanging from an
        earlier ping (a stopped server) is not joined by another: the part stays failing until it returns."""
        if self.lib is None:
            self.last_ping = {"ok": False, "error": self.error}
            return self.last_ping
        loop = asyncio.get_running_loop()
        if self._ping_fut is None or self._ping_fut.done():
            self._ping_t0 = time.perf_counter()
            self._ping_fut = loop.run_in_executor(None, self.lib.ping)
        try:
            await asyncio.wait_for(asyncio.shield(self._ping_fut), max(0.05, 3.0 - (time.perf_counter() - self._ping_t0)))
            self.last_ping = {"ok": True, "latency_ms": round((time.perf_counter() - self._ping_t0) * 1e3, 2),
                              "backend": self.lib.dialect, "search": self.lib.search_mode}
        except Exception as e:
            msg = (f"no answer for {time.perf_counter() - self._ping_t0:.0f} s" if isinstance(e, asyncio.TimeoutError)
                   else str(e).splitlines()[0][:200])
            self.last_ping = {"ok": False, "error": f"{self.lib.dialect}: {msg}"}
        return self.last_ping


def _safe_url(url: str) -> str:
    """A database URL without its password, for logs and replies."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database"
