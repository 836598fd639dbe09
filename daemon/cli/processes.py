"""The process commands: ``jackgen run`` (everything, supervised), and one role each (``engine``,
``control``, ``worker BACKEND``, and the internal ``feeder``), as systemd runs them."""

from __future__ import annotations

from typing import Optional

import typer

from jackgen.daemon.cli.app import ConfigOpt, app, setup_logging
from jackgen.daemon.cli.base import fail, load


@app.command()
def run(
    config: Optional[str] = ConfigOpt,
    session: Optional[str] = typer.Option(None, help="Session name (folder under control.sessions_dir)."),
) -> None:
    """Run everything in the foreground: Redis (embedded), control, the engine, the feeder and the workers, supervised.

    Any one of them can die and come back while the others go on; control re-attaches to the
    running engine, feeder and workers without stopping a note."""
    import asyncio

    from jackgen.common.proctitle import set_title
    from jackgen.daemon.supervisor import supervise

    overrides = {"control.session": session} if session else None
    cfg = load(config, overrides)
    setup_logging(cfg=cfg)
    set_title("jackgen: supervisor")
    raise typer.Exit(asyncio.run(supervise(cfg, config, session)))


@app.command()
def control(
    config: Optional[str] = ConfigOpt,
    session: Optional[str] = typer.Option(None, help="Session name."),
) -> None:
    """Run the control process alone (the engine, the feeder and the workers run as their own services)."""
    import asyncio

    from jackgen.daemon.control.control import Control
    from jackgen.daemon.service import serve
    from jackgen.common.proctitle import set_title

    cfg = load(config, {"control.session": session} if session else None)
    setup_logging(cfg=cfg)
    set_title("jackgen: control")
    raise typer.Exit(asyncio.run(serve(Control(cfg, config_path=config, session=session))))


@app.command(hidden=True)
def redis(config: Optional[str] = ConfigOpt) -> None:
    """Internal: run the embedded redis-server in the foreground (jackgen-redis.service)."""
    import os

    from jackgen.daemon.jobs.redisserver import embedded_argv

    cfg = load(config)
    if not cfg.redis_embedded:
        print(f"jackgen: [redis] url is set ({cfg.redis.url}): no embedded Redis to run")
        raise typer.Exit(0)
    argv = embedded_argv(cfg)
    os.execv(argv[0], argv)


@app.command()
def engine(
    config: Optional[str] = ConfigOpt,
    instance: Optional[str] = typer.Option(None, help="Instance name (overrides the config)."),
    stats_out: Optional[str] = typer.Option(None, help="Write callback statistics (JSON) here on exit."),
) -> None:
    """Run the real-time engine (the JACK client) alone."""
    from jackgen.bridge.ring import RingError
    from jackgen.daemon.engine.driver import run_engine

    cfg = load(config, {"instance": instance} if instance else None)
    setup_logging(cfg=cfg)
    try:
        code = run_engine(cfg, stats_out=stats_out)
    except RingError as e:
        fail(str(e), code=1)
        raise
    raise typer.Exit(code)


@app.command(hidden=True)
def feeder(config: Optional[str] = ConfigOpt,
           instance: Optional[str] = typer.Option(None, help="Instance name (overrides the config)."),
           redis_url: Optional[str] = typer.Option(None, "--redis", help="Relay remote workers' audio from here "
                                                   "(default: the config's Redis)."),
           sessions: Optional[str] = typer.Option(None, help="Land remote workers' takes in this sessions folder "
                                                  "(default: control.sessions_dir)."),
           sock: Optional[str] = typer.Option(None, "--socket", help="Listen for control here (default: "
                                              "feeder.sock in the runtime folder).")) -> None:
    """Internal: stream files (and remote workers' audio) into track rings (jackgen-feeder.service)."""
    from pathlib import Path

    from jackgen.generators.feeder import run_feeder

    cfg = load(config, {"instance": instance} if instance else None)
    setup_logging(cfg=cfg)
    raise typer.Exit(run_feeder(cfg.instance, redis_url or cfg.redis_url,
                                sessions or str(Path(cfg.control.sessions_dir).resolve()),
                                sock or str(cfg.feeder_socket)))


@app.command()
def worker(
    backend: str = typer.Argument(..., help="procedural | fluidsynth | musicgen"),
    backends: Optional[str] = typer.Option(None, help="Serve several backends from this one process: "
                                           "'procedural,fluidsynth' (BACKEND is the first)."),
    redis_url: Optional[str] = typer.Option(None, "--redis", help="The queue's Redis (default: [redis] url, or "
                                            "the embedded server's socket)."),
    remote: bool = typer.Option(False, "--remote", help="Send audio through Redis to the engine host's relay "
                                "even on the engine's machine (containers without a shared /dev/shm)."),
    instance: Optional[str] = typer.Option(None, help="Instance name (overrides the config)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """A generator worker on the Redis queue, on this machine or another (systemd: jackgen-worker@BACKEND)."""
    from jackgen.generators.queueworker import WorkerSettings, run_queue_worker

    cfg = load(config, {"instance": instance} if instance else None)
    setup_logging(cfg=cfg)
    for why in load(config, {"redis.url": redis_url} if redis_url else None).exposure_problems(("redis",)):
        fail(f"refusing to start: {why}")
    names = [backend] + [b.strip() for b in (backends or "").split(",") if b.strip() and b.strip() != backend]
    known = ("procedural", "fluidsynth", "musicgen")
    bad = [b for b in names if b not in known]
    if bad:
        fail(f"unknown backend(s) {', '.join(bad)}: use {', '.join(known)}")
    g, j = cfg.generators, cfg.jobs
    opts: dict = {"soundfont": g.soundfont or None}
    if "musicgen" in names:
        opts.update(model=g.musicgen_model, device=g.musicgen_device, dtype=g.musicgen_dtype,
                    chunk_s=g.musicgen_chunk_s, first_chunk_s=g.musicgen_first_chunk_s,
                    cache_dir=g.musicgen_cache_dir or None)
    settings = WorkerSettings(heartbeat_s=j.heartbeat_s, worker_ttl_s=j.worker_ttl_s, claim_idle_s=j.claim_idle_s,
                              max_attempts=j.max_attempts, retry_backoff_s=j.retry_backoff_s, starve_s=j.starve_s,
                              max_speed=g.max_speed, max_duration_s=g.max_duration_s)
    raise typer.Exit(run_queue_worker(redis_url or cfg.redis_url, cfg.instance, names, opts, settings,
                                      cfg.control.sessions_dir, cfg.control.media_dirs, remote))
