"""``jackgen run``: a small supervisor that owns every process of one jackgen instance.

It starts, in order, the embedded redis-server (when no ``[redis] url`` is set), the local
generator workers (``generators.workers``, which load their models while the rest starts; a
backend in ``generators.start_on_demand``, musicgen by default, gets a worker when its first job
waits), control (which makes the rings), the engine and the feeder (which attach to them).
Whichever dies is restarted with back-off while the others go on: a killed control comes back
and takes over the running engine, feeder and workers without stopping a note; a killed engine
gets the whole mix back from control. Each child gets SIGTERM if the supervisor dies
(``PR_SET_PDEATHSIG``), so no orphan is left. What it knows of its children (pid, restarts, last
exit code) is in ``<runtime>/processes.json``, which ``jackgen status`` shows. On SIGTERM or
Ctrl-C it stops the engine, the feeder and the workers, then control (which then removes the
rings), then Redis. Under systemd each part is its own unit instead and systemd supervises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from jackgen.common.children import ChildProcess, self_argv
from jackgen.common.files import atomic_write_json
from jackgen.common.link import EXIT_UNAVAILABLE
from jackgen.daemon.config import Config

log = logging.getLogger("jackgen.supervisor")


class Supervisor:
    def __init__(self, cfg: Config, config_path: str | None, session: str | None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.session = session
        self.redis: ChildProcess | None = None
        self.control: ChildProcess | None = None
        self.engine: ChildProcess | None = None
        self.feeder: ChildProcess | None = None
        self.workers: dict[str, ChildProcess] = {}
        self._stopping = False
        self.stopped = asyncio.Event()  # control cannot run (port in use, instance taken): everything stops
        self.exit_code = 0

    def _child(self, role: str, argv: list[str], **kw) -> ChildProcess:
        s = self.cfg.supervisor
        on_exit = kw.pop("on_exit", None)

        async def exited(child: ChildProcess, code: int) -> None:
            self.record()
            if on_exit:
                await on_exit(child, code)

        async def started(child: ChildProcess) -> None:
            self.record()

        return ChildProcess(role, argv, s.restart_delay_s, s.max_restart_delay_s, die_with_parent=True,
                            new_session=True, on_start=started, on_exit=exited, **kw)

    def children(self) -> dict[str, ChildProcess]:
        named = {"redis": self.redis, "control": self.control, "engine": self.engine, "feeder": self.feeder}
        return {**{k: v for k, v in named.items() if v is not None},
                **{f"worker {b}": w for b, w in self.workers.items()}}

    def record(self) -> None:
        """``<runtime>/processes.json``: each child's pid, restarts and last exit code (status reads it)."""
        data = {role: {"pid": c.pid, "restarts": c.restarts, "last_exit": c.last_exit}
                for role, c in self.children().items()}
        data["supervisor"] = {"pid": os.getpid(), "restarts": 0, "last_exit": None}
        try:
            self.cfg.runtime_path.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.cfg.runtime_path / "processes.json", data)
        except OSError as e:
            log.warning("cannot write processes.json: %s", e)

    def _args(self) -> list[str]:
        return ["--config", self.config_path] if self.config_path else []

    def start_worker(self, backend: str) -> None:
        if backend in self.workers:
            return
        w = self._child(f"worker {backend}", self_argv("worker", backend, *self._args(), "--instance", self.cfg.instance),
                        no_restart_codes=(EXIT_UNAVAILABLE,))
        self.workers[backend] = w
        w.start()

    async def start(self) -> None:
        from jackgen.daemon.jobs.redisserver import answers, embedded_argv, wait_until_answers

        cfg = self.cfg
        if cfg.redis_embedded:
            sock = cfg.redis_socket
            if answers(sock):
                log.warning("a redis-server already answers on %s (a jackgen-redis service, or one left by a "
                            "killed run); using it", sock)
            else:
                with contextlib.suppress(FileNotFoundError):
                    sock.unlink()
                self.redis = self._child("redis", embedded_argv(cfg))
                self.redis.start()
                if not await asyncio.to_thread(wait_until_answers, sock, 15.0):
                    log.error("the embedded redis-server did not answer on %s within 15 s", sock)
            log.info("embedded Redis on unix://%s (data in %s)", sock, cfg.redis_dir)
        await self._clear_unavailable()
        for b in cfg.generators.workers:  # first: they need only Redis, and load their models meanwhile
            self.start_worker(b)
        extra = ["--session", self.session] if self.session else []
        self.control = self._child("control", self_argv("control", *self._args(), *extra),
                                   no_restart_codes=(2,), on_exit=self._on_control_exit)
        self.control.start()
        inst = ["--instance", cfg.instance]
        self.engine = self._child("engine", self_argv("engine", *self._args(), *inst))
        self.feeder = self._child("feeder", self_argv("feeder", *self._args(), *inst))
        self.engine.start()  # both wait (10 s) for control's rings, and are restarted if they give up
        self.feeder.start()

    async def _on_control_exit(self, child: ChildProcess, code: int) -> None:
        if child.disabled:
            log.error("control cannot run (exit code %d, see above); stopping", code)
            self.exit_code = code
            self.stopped.set()

    async def _clear_unavailable(self) -> None:
        """A new run gives every backend a new chance to load."""
        import redis.asyncio as aioredis

        from jackgen.bridge.jobqueue import Keys

        keys = Keys(self.cfg.instance)
        r = aioredis.Redis.from_url(self.cfg.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            await r.delete(*(keys.unavailable(b) for b in self.cfg.generators.allowed_backends()))
        except Exception as e:
            log.warning("cannot reach Redis at %s yet: %s", self.cfg.redis_url, e)
        finally:
            await r.aclose()

    async def lazy_workers(self) -> None:
        """A job waits for an allowed backend that has no worker here: start one."""
        import redis.asyncio as aioredis

        from jackgen.bridge import jobqueue as Q

        keys = Q.Keys(self.cfg.instance)
        r = aioredis.Redis.from_url(self.cfg.redis_url, decode_responses=True, socket_timeout=2,
                                    socket_connect_timeout=2)
        try:
            while not self.stopped.is_set() and not self._stopping:
                await asyncio.sleep(1.0)
                g = self.cfg.generators
                for b in g.start_on_demand:
                    if b in self.workers or b not in g.allowed_backends():
                        continue
                    with contextlib.suppress(Exception):
                        for p in Q.PRIORITY_NAMES:
                            s = keys.queue(b, p)
                            groups = await r.xinfo_groups(s)
                            last = next((x["last-delivered-id"] for x in groups if x["name"] == b), "0-0")
                            if await r.xrange(s, f"({last}", "+", count=1):
                                log.info("a %s job waits: starting a %s worker", b, b)
                                self.start_worker(b)
                                break
        finally:
            await r.aclose()

    async def stop(self) -> None:
        others = [c for c in (self.engine, self.feeder, *self.workers.values()) if c]
        await asyncio.gather(*(c.stop(timeout_s=10.0) for c in others))
        if self.control:  # last of the instance's processes: it removes the rings
            await self.control.stop(timeout_s=20.0)
        with contextlib.suppress(OSError):
            (self.cfg.runtime_path / "processes.json").unlink()
        if self.redis:
            await self.redis.stop(timeout_s=10.0)
        with contextlib.suppress(OSError):
            self.cfg.runtime_path.rmdir()  # the runtime folder, once empty
        log.info("stopped")


async def supervise(cfg: Config, config_path: str | None, session: str | None) -> int:
    from jackgen.common.sdnotify import notify

    from jackgen.bridge.ring import InstanceLock, RingError

    problems = cfg.exposure_problems()
    if problems:  # before anything starts: a server reachable from other machines needs a token
        for why in problems:
            log.error("refusing to start: %s", why)
        return 2
    lock = InstanceLock(cfg.instance)  # another jackgen of this instance: say so before starting anything
    try:
        lock.acquire()
    except RingError as e:
        log.error("%s", e)
        return 2
    lock.release()
    sup = Supervisor(cfg, config_path, session)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sup.start()
    except FileNotFoundError as e:  # no redis-server
        log.error("%s", e)
        await sup.stop()
        return 2
    notify("READY=1")
    lazy = asyncio.create_task(sup.lazy_workers())
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(sup.stopped.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    log.info("stopping: the engine, the feeder and the workers, then control, then Redis")
    sup._stopping = True
    lazy.cancel()  # redis-py can swallow a cancel inside a command: never wait on it for long
    await asyncio.wait({lazy}, timeout=2.0)
    await sup.stop()
    return sup.exit_code
