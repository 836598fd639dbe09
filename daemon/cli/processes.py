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
    """Run everything in the foreground: control (HTTP), the engine and the feeder, supervised."""
    import asyncio

    from jackgen.daemon.control.control import Control
    from jackgen.daemon.service import serve
    from jackgen.common.proctitle import set_title

    overrides = {"control.session": session} if session else None
    cfg = load(config, overrides)
    setup_logging()
    set_title("jackgen: control")
    control = Control(cfg, config_path=config, supervise_engine=True, session=session)
    raise typer.Exit(asyncio.run(serve(control)))


@app.command()
def control(
    config: Optional[str] = ConfigOpt,
    session: Optional[str] = typer.Option(None, help="Session name."),
) -> None:
    """Run the control process alone (the engine runs as its own service)."""
    import asyncio

    from jackgen.daemon.control.control import Control
    from jackgen.daemon.service import serve
    from jackgen.common.proctitle import set_title

    cfg = load(config, {"control.session": session} if session else None)
    setup_logging()
    set_title("jackgen: control")
    raise typer.Exit(asyncio.run(serve(Control(cfg, config_path=config, supervise_engine=False, session=session))))


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
    setup_logging()
    try:
        code = run_engine(cfg, stats_out=stats_out)
    except RingError as e:
        fail(str(e), code=1)
        raise
    raise typer.Exit(code)


@app.command(hidden=True)
def feeder(instance: str = typer.Option("default", help="Instance name.")) -> None:
    """Internal: stream files into track rings (started by control)."""
    from jackgen.generators.feeder import run_feeder

    setup_logging()
    raise typer.Exit(run_feeder(instance))


@app.command()
def worker(
    backend: str = typer.Argument(..., help="procedural | fluidsynth | musicgen"),
    instance: str = typer.Option("default", help="Instance name (whose track rings to stream into)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """One generator worker (control starts these; systemd runs jackgen-generator@BACKEND)."""
    from jackgen.generators.worker import run_worker

    setup_logging()
    cfg = load(config)
    g = cfg.generators
    opts: dict = {"soundfont": g.soundfont or None}
    if backend == "musicgen":
        opts.update(model=g.musicgen_model, device=g.musicgen_device, dtype=g.musicgen_dtype,
                    chunk_s=g.musicgen_chunk_s, first_chunk_s=g.musicgen_first_chunk_s,
                    cache_dir=g.musicgen_cache_dir or None)
    raise typer.Exit(run_worker(backend, instance, opts))
