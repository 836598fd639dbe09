"""Supervised children: a child that keeps failing is restarted with back-off and logged sparingly."""

from __future__ import annotations

import asyncio
import logging
import sys

from jackgen.common.children import ChildProcess


def test_a_child_that_keeps_failing_backs_off_and_is_logged_sparingly(caplog):
    async def go() -> int:
        child = ChildProcess("flaky", [sys.executable, "-c", "raise SystemExit(2)"], restart_delay_s=0.05,
                             max_restart_delay_s=0.4)
        child.start()
        await asyncio.sleep(4.0)
        await child.stop()
        return child.restarts

    with caplog.at_level(logging.INFO, logger="jackgen.supervisor"):
        restarts = asyncio.run(go())
    # 0.05, 0.1, 0.2, 0.4, 0.4 … s between starts (plus each start's own time): without back-off
    # it would have been restarted every 0.05 s
    assert 4 <= restarts <= 16, restarts
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR and "exited with code 2" in r.getMessage()]
    assert len(loud) == len([n for n in (1, 2, 5, 10) if n <= restarts]), [r.getMessage() for r in loud]
    assert "times in a row" in loud[-1].getMessage()
