"""The control service: control's state with its front ends (HTTP, OSC) on top, until SIGTERM/SIGINT.

This is where the pieces meet: :class:`~jackgen.daemon.control.control.Control` knows nothing of
its front ends; the OSC server and the HTTP app are built here around it and register what they
add (OSC's counters in status, its job notifications) through control's and the job board's hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from jackgen.bridge.ring import RingError
from jackgen.common.sdnotify import notify
from jackgen.daemon.control.control import Control

log = logging.getLogger("jackgen.control")


async def start_osc(control: Control):
    """The OSC server on control.osc_host:osc_port (UDP and TCP); None when osc_port is 0."""
    cc = control.cfg.control
    if not cc.osc_port:
        return None
    from jackgen.daemon.frontends.osc import OscControl

    osc = OscControl(control)
    try:
        await osc.start(cc.osc_host, cc.osc_port)
    except OSError as e:
        raise RingError(f"cannot listen for OSC on {cc.osc_host}:{cc.osc_port}: {e.strerror} "
                        "(another jackgen? set control.osc_port)") from None
    control.status_parts["osc"] = osc.counters
    if control.jobs is not None:
        control.jobs.listeners.append(osc.notify_job)
    log.info("OSC on udp+tcp %s:%d", cc.osc_host, cc.osc_port)
    return osc


async def serve(control: Control) -> int:
    """Run control (and its children) plus the HTTP API and OSC until SIGTERM/SIGINT."""
    import uvicorn

    from jackgen.daemon.frontends.http import build_app

    problems = control.cfg.exposure_problems()
    if problems:
        for why in problems:
            log.error("refusing to start: %s", why)
        return 2
    try:
        await control.start()
    except RingError as e:  # another jackgen holds the instance: leave its rings alone
        log.error("%s", e)
        return 2
    try:
        osc = await start_osc(control)
    except RingError as e:
        log.error("%s", e)
        await control.stop()
        return 2
    cfg = control.cfg
    server = uvicorn.Server(uvicorn.Config(build_app(control), host=cfg.control.http_host,
                                           port=cfg.control.http_port, log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None  # we own SIGTERM/SIGINT
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serve_task = asyncio.create_task(server.serve())
    await asyncio.sleep(0)
    log.info("control listening on http://%s:%d (session '%s', instance '%s')", cfg.control.http_host,
             cfg.control.http_port, control.session, cfg.instance)
    notify("READY=1")

    async def watchdog() -> None:
        while True:  # the event loop turning is what systemd's watchdog should hear
            notify("WATCHDOG=1")
            await asyncio.sleep(5.0)

    wd = asyncio.create_task(watchdog())
    done, _ = await asyncio.wait({serve_task, asyncio.create_task(stop.wait())},
                                 return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if serve_task in done and serve_task.exception():
        log.error("HTTP server failed: %s", serve_task.exception())
        code = 2
    elif serve_task in done and not stop.is_set():
        log.error("HTTP server could not start on %s:%d (port in use?)", cfg.control.http_host, cfg.control.http_port)
        code = 2
    log.info("shutting down")
    wd.cancel()
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(serve_task, 5.0)
    if osc is not None:
        await osc.stop()
    await control.stop()
    return code
