"""Control's end of the link to the feeder: a unix socket it connects to, and reconnects to.

The feeder runs beside control (supervised by ``jackgen run`` or systemd), not under it: when
control restarts, the feeder goes on streaming, and the new control connects and learns, from the
feeder's hello, which streams it still feeds. A feeder that restarted says hello with a new pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Awaitable, Callable

from jackgen.common.errors import Unavailable

log = logging.getLogger("jackgen.control")


class FeederLink:
    def __init__(self, path: Path, on_line: Callable[[str], Awaitable[None]],
                 on_hello: Callable[[dict], Awaitable[None]]) -> None:
        self.path = path
        self.on_line = on_line
        self.on_hello = on_hello
        self.pid: int | None = None  # the connected feeder's, once it said hello
        self.restarts = 0  # new feeders seen after the first
        self.last_pid: int | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._missing_logged = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="feeder-link")

    async def _loop(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path), limit=1 << 20)
            except OSError:
                if not self._missing_logged:
                    self._missing_logged = True
                    log.info("waiting for the feeder on %s", self.path)
                await asyncio.sleep(0.1)
                continue
            self._missing_logged = False
            self._writer = writer
            try:
                async for raw in reader:
                    line = raw.decode(errors="replace").strip()
                    if not line:
                        continue
                    try:
                        msg = json.loads(line)
                        if isinstance(msg, dict) and msg.get("event") == "hello":
                            pid = int(msg.get("pid") or 0)
                            if self.last_pid is not None and pid != self.last_pid:
                                self.restarts += 1
                            self.pid = self.last_pid = pid
                            await self.on_hello(msg)
                        else:
                            await self.on_line(line)
                    except Exception:
                        log.exception("feeder said %.200s", line)
            except (OSError, ValueError) as e:
                log.debug("feeder link: %s", e)
            finally:
                self._writer = None
                self.pid = None
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            log.warning("lost the feeder (pid %s); waiting for it to come back", self.last_pid)
            await asyncio.sleep(0.05)

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for a feeder to be connected; ``send`` says if none came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (self._writer is None or self.pid is None) and loop.time() < deadline:
            await asyncio.sleep(0.05)

    async def send(self, msg: dict) -> None:
        w = self._writer
        if w is None or self.pid is None:
            raise Unavailable("the feeder is not running (it is being restarted); try again in a moment")
        w.write((json.dumps(msg) + "\n").encode())
        try:
            await w.drain()
        except OSError as e:
            raise Unavailable(f"the feeder went away: {e}") from None

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()
