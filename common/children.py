"""Supervised child processes: started, watched and restarted with back-off when they die.

Control supervises the engine, the feeder and the generator workers with this (under
``jackgen run``); under systemd each runs as its own unit and systemd supervises. A child may
speak JSON lines on stdin/stdout (``jackgen.common.link``): ``send`` writes one request,
``on_line`` gets each line it prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time

from jackgen.common.errors import Unavailable

log = logging.getLogger("jackgen.supervisor")

FAILING_S = 30.0  # a child that dies this soon after its start is failing (back off), not crashing once
LOUD_REPEATS = (1, 2, 5, 10)  # a run of identical exits is logged at these counts, then every 100th


class ChildProcess:
    """A supervised child (engine or feeder): restarted with backoff when it dies."""

    def __init__(self, role: str, argv: list[str], restart_delay_s: float = 0.5,
                 max_restart_delay_s: float = 10.0, on_start=None, on_exit=None,
                 stdin: bool = False, on_line=None, no_restart_codes: tuple[int, ...] = (),
                 die_with_parent: bool = False, new_session: bool = False, env: dict | None = None) -> None:
        self.role = role
        self.argv = argv
        self.restart_delay_s = restart_delay_s
        self.max_restart_delay_s = max_restart_delay_s
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.on_start = on_start
        self.on_exit = on_exit
        self.on_line = on_line
        self.want_stdin = stdin
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.last_exit: int | None = None
        self.no_restart_codes = no_restart_codes
        self.disabled = False  # exited with a code that says restarting cannot help
        self.die_with_parent = die_with_parent  # SIGTERM when this process dies, however it dies (no orphans)
        self.new_session = new_session  # its own session: a Ctrl-C in the terminal reaches the parent only
        self.env = env

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"supervise-{self.role}")

    async def _loop(self) -> None:
        delay = self.restart_delay_s
        same, last_code = 0, None  # how many times in a row it exited with last_code
        while not self._stopping:
            started = time.monotonic()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE if self.want_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if self.on_line else None,
                start_new_session=self.new_session,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
                env=self.env,
            )
            log.info("%s started (pid %d)", self.role, self.proc.pid)
            if self.on_start:
                await self.on_start(self)
            if self.on_line:
                assert self.proc.stdout is not None
                async for raw in self.proc.stdout:
                    with contextlib.suppress(Exception):
                        await self.on_line(raw.decode(errors="replace").strip())
            code = await self.proc.wait()
            self.last_exit = code
            if self._stopping:
                break
            if code in self.no_restart_codes:
                self.disabled = True
                log.error("%s exited with code %s and will not be restarted", self.role, code)
                if self.on_exit:
                    await self.on_exit(self, code)
                break
            self.restarts += 1
            same = same + 1 if code == last_code else 1
            last_code = code
            if same in LOUD_REPEATS or same % 100 == 0:  # a night without JACK is not 10 000 log lines
                log.error("%s exited with code %s%s; restarting in %.1f s", self.role, code,
                          f" ({same} times in a row)" if same > 1 else "", delay)
            else:
                log.debug("%s exited with code %s again (%d times); restarting in %.1f s", self.role, code, same, delay)
            if self.on_exit:
                await self.on_exit(self, code)
            await asyncio.sleep(delay)
            # back off while it keeps failing soon after its start (the engine takes 5 s to give up
            # on a missing JACK server); one that ran a while and crashed comes back at once
            if time.monotonic() - started < FAILING_S:
                delay = min(max(delay * 2, 0.1), self.max_restart_delay_s)
            else:
                delay = self.restart_delay_s
                same = 0

    async def send(self, msg: dict) -> None:
        if not self.proc or self.proc.returncode is not None or self.proc.stdin is None:
            raise Unavailable(f"the {self.role} is not running (it is being restarted); try again in a moment")
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        p = self.proc
        if p and p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(p.wait(), timeout_s)
            except asyncio.TimeoutError:
                log.warning("%s did not stop within %.0f s; killing it", self.role, timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def self_argv(*args: str) -> list[str]:
    """Command line that runs a jackgen subcommand with this interpreter."""
    return [sys.executable, "-m", "jackgen.daemon.cli", *args]

