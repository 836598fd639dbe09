"""The ``jackgen`` command line (see INTERFACE.md for the contract).

Exit codes: 0 ok, 1 jackgen is not reachable / an operation failed, 2 bad input
(the message says what was wrong).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from jackgen.daemon.config import Config, ConfigError, load_config

app = typer.Typer(
    name="jackgen",
    help="Headless real-time audio host: 16 stereo JACK tracks fed live by generators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config file (default: $JACKGEN_CONFIG or built-in defaults).")
# Negative numbers ("gain 2 -6", "pan 1 -0.5") must not be taken for options.
NUMERIC_ARGS = {"ignore_unknown_options": True}


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=os.environ.get("JACKGEN_LOG_LEVEL", level),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"jackgen: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _config(path: Optional[str], overrides: dict | None = None) -> Config:
    try:
        return load_config(path, overrides)
    except ConfigError as e:
        _fail(str(e))
        raise  # unreachable


def _api(cfg: Config, method: str, path: str, body: dict | None = None, timeout: float = 15.0) -> dict:
    import httpx

    url = cfg.control_url + path
    try:
        r = httpx.request(method, url, json=body, timeout=timeout)
    except httpx.HTTPError as e:
        _fail(f"cannot reach jackgen control at {cfg.control_url} ({e.__class__.__name__}): "
              "is `jackgen run` running? (see --config for host/port)", code=1)
        raise
    try:
        data = r.json()
    except ValueError:
        data = {"error": r.text}
    if r.status_code >= 400:
        _fail(data.get("error", r.text) if isinstance(data, dict) else r.text, code=2 if r.status_code < 500 else 1)
    return data


def _print(data: object) -> None:
    typer.echo(json.dumps(data, indent=2) if not isinstance(data, str) else data)


# ------------------------------------------------------------------ processes
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
    cfg = _config(config, overrides)
    _setup_logging()
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

    cfg = _config(config, {"control.session": session} if session else None)
    _setup_logging()
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

    cfg = _config(config, {"instance": instance} if instance else None)
    _setup_logging()
    try:
        code = run_engine(cfg, stats_out=stats_out)
    except RingError as e:
        _fail(str(e), code=1)
        raise
    raise typer.Exit(code)


@app.command(hidden=True)
def feeder(instance: str = typer.Option("default", help="Instance name.")) -> None:
    """Internal: stream files into track rings (started by control)."""
    from jackgen.generators.feeder import run_feeder

    _setup_logging()
    raise typer.Exit(run_feeder(instance))


@app.command()
def worker(
    backend: str = typer.Argument(..., help="procedural | fluidsynth | musicgen"),
    instance: str = typer.Option("default", help="Instance name (whose track rings to stream into)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """One generator worker (control starts these; systemd runs jackgen-generator@BACKEND)."""
    from jackgen.generators.worker import run_worker

    _setup_logging()
    cfg = _config(config)
    g = cfg.generators
    opts: dict = {"soundfont": g.soundfont or None}
    if backend == "musicgen":
        opts.update(model=g.musicgen_model, device=g.musicgen_device, dtype=g.musicgen_dtype,
                    chunk_s=g.musicgen_chunk_s, first_chunk_s=g.musicgen_first_chunk_s,
                    cache_dir=g.musicgen_cache_dir or None)
    raise typer.Exit(run_worker(backend, instance, opts))


# ------------------------------------------------------------------ generation
@app.command()
def generate(
    prompt: str = typer.Argument(..., help="What to make, e.g. 'dusty lofi beat with rhodes'."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds of audio (0.5 .. generators.max_duration_s)."),
    bpm: Optional[float] = typer.Option(None, help="Tempo; default: the style's."),
    key: Optional[str] = typer.Option(None, help="Key, e.g. 'A minor', 'F#', 'Bb major'."),
    style: Optional[str] = typer.Option(None, help="procedural style: lofi | house | ambient | rock (default: from the prompt)."),
    backend: Optional[str] = typer.Option(None, help="procedural | fluidsynth | musicgen (default: generators.default_backend)."),
    track: Optional[int] = typer.Option(None, help="Stream into this track (1-16) while generating."),
    seed: Optional[int] = typer.Option(None, help="Seed (default: random, recorded in the take's JSON)."),
    variations: int = typer.Option(1, help="Number of takes, seeds seed..seed+K-1."),
    priority: str = typer.Option("normal", help="high | normal | low"),
    midi: Optional[str] = typer.Option(None, help="fluidsynth backend: MIDI file to render."),
    soundfont: Optional[str] = typer.Option(None, help="fluidsynth backend: SoundFont (.sf2)."),
    output_format: str = typer.Option("wav", "--format", help="wav | flac"),
    wait: bool = typer.Option(False, "--wait", help="Follow progress until the job ends; print the takes."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Queue a generation job (streamed into --track as it is made) and print its id."""
    cfg = _config(config)
    body: dict = {"prompt": prompt, "duration": duration, "variations": variations, "priority": priority,
                  "output_format": output_format}
    for k, v in (("bpm", bpm), ("key", key), ("style", style), ("backend", backend), ("track", track),
                 ("seed", seed), ("soundfont", soundfont and _abs(soundfont)), ("midi", midi and _abs(midi))):
        if v is not None:
            body[k] = v
    r = _api(cfg, "POST", "/api/music-generation", body)
    if not wait:
        _print(r)
        return
    job = _follow_job(cfg, r["job_id"])
    _print(job)
    if job["status"] != "done":
        raise typer.Exit(1)


def _follow_job(cfg: Config, job_id: str) -> dict:
    """Show a progress bar from the job's server-sent events until it ends."""
    import httpx
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    url = f"{cfg.control_url}/api/jobs/{job_id}/events"
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), transient=True, console=None) as bar:
        task = bar.add_task(f"job {job_id}", total=1.0)
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10.0, read=None)) as resp:
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    e = json.loads(line[5:])
                    bar.update(task, completed=e.get("progress", 0.0) if e["event"] == "progress" else
                               (1.0 if e["event"] == "done" else None),
                               description=f"job {job_id} {e['status']}")
                    if e["event"] in ("done", "failed", "cancelled"):
                        break
        except httpx.HTTPError as e:
            _fail(f"lost the connection to jackgen control while following job {job_id}: {e}", code=1)
    return _api(cfg, "GET", f"/api/jobs/{job_id}")


jobs_app = typer.Typer(help="Generation jobs: list, show, follow, cancel.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list(config: Optional[str] = ConfigOpt) -> None:
    """Jobs that are queued or running."""
    _print(_api(_config(config), "GET", "/api/jobs"))


@jobs_app.command("show")
def jobs_show(job_id: str, config: Optional[str] = ConfigOpt,
              follow: bool = typer.Option(False, "--follow", "-f", help="Wait for the end, with progress.")) -> None:
    """A job's status, progress, timings and takes."""
    cfg = _config(config)
    _print(_follow_job(cfg, job_id) if follow else _api(cfg, "GET", f"/api/jobs/{job_id}"))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, config: Optional[str] = ConfigOpt) -> None:
    """Cancel a queued or running job (a running one stops within one chunk)."""
    _print(_api(_config(config), "DELETE", f"/api/jobs/{job_id}"))


@app.command()
def render(
    midi: str = typer.Argument(..., help="General MIDI file (.mid)."),
    out: str = typer.Argument(..., help="Output audio file (.wav, .flac, .ogg, .aiff)."),
    soundfont: Optional[str] = typer.Option(None, help="SoundFont (.sf2); default: Debian's FluidR3_GM."),
    rate: int = typer.Option(48000, help="Sample rate in Hz."),
    tail: float = typer.Option(0.0, help="Seconds of release/reverb tail after the last event (the CLI has none)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Render MIDI to audio with FluidSynth, offline, sounding as the `fluidsynth` CLI does."""
    from rich.progress import Progress

    from jackgen.generators.synth import render_file

    if not Path(midi).is_file():
        _fail(f"MIDI file {midi} does not exist")
    soundfont = soundfont or _config(config).generators.soundfont or None
    _check_rate_and_tail(rate, tail)
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"rendering {Path(midi).name}", total=1.0)
            info = render_file(midi, out, soundfont, rate, tail_s=tail, progress=lambda f: bar.update(task, completed=f))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        _fail(str(e))
        raise
    typer.echo(f"{info['path']}: {info['seconds']:.2f} s at {rate} Hz, rendered in {info['render_s']:.2f} s "
               f"({info['realtime_factor']:.0f}x real time) with {info['soundfont']}")


@app.command(context_settings=NUMERIC_ARGS)
def master(
    gain: Optional[float] = typer.Option(None, "--gain", help="Makeup gain into the limiter, dB."),
    eq: Optional[list[str]] = typer.Option(None, "--eq", help="BAND:TYPE[:FREQ[:GAIN_DB[:Q]]], e.g. 1:lowshelf:100:2 or 3:off (repeatable; types: lowshelf peak highshelf highpass lowpass off)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """The master bus's mastering section: EQ (4 bands), makeup gain, true-peak limiter. No options: show it."""
    cfg = _config(config)
    if gain is None and not eq:
        _print(_api(cfg, "GET", "/api/master"))
        return
    bands = []
    for spec in eq or []:
        parts = spec.split(":")
        if len(parts) < 2 or len(parts) > 5:
            _fail(f"--eq takes BAND:TYPE[:FREQ[:GAIN_DB[:Q]]], got {spec!r}")
        try:
            band = {"band": int(parts[0]), "type": parts[1]}
            for key, v in zip(("freq", "gain_db", "q"), parts[2:]):
                band[key] = float(v)
        except ValueError:
            _fail(f"--eq {spec!r}: band is a number 1-4, and freq, gain and q are numbers")
        bands.append(band)
    body: dict = {}
    if gain is not None:
        body["gain_db"] = gain
    if bands:
        body["eq"] = bands
    _print(_api(cfg, "POST", "/api/master", body))


@app.command(context_settings=NUMERIC_ARGS)
def chain(
    track: str = typer.Argument(..., help="Track 1-16."),
    action: str = typer.Argument("list", help="add PLUGIN | list | remove I | bypass I on|off | set I NAME VALUE | move I TO"),
    args: Optional[list[str]] = typer.Argument(None),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="NAME=VALUE for add (repeatable)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """A track's plugin chain: VST3 (name or path) and built-ins, changed live."""
    cfg = _config(config)
    args = list(args or [])
    base = f"/api/tracks/{track}/chain"

    def num(v: str):
        try:
            return int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            return v

    def need(n: int, usage: str) -> None:
        if len(args) != n:
            _fail(f"usage: jackgen chain {track} {usage}")

    if action == "list":
        _print(_api(cfg, "GET", base))
    elif action == "add":
        need(1, "add PLUGIN [--param NAME=VALUE …]")
        params = {}
        for kv in param or []:
            if "=" not in kv:
                _fail(f"--param takes NAME=VALUE, got {kv!r}")
            k, v = kv.split("=", 1)
            params[k] = num(v)
        plugin = args[0]
        if plugin.endswith(".vst3") and Path(plugin).exists():
            plugin = _abs(plugin)
        _print(_api(cfg, "POST", f"{base}/add", {"plugin": plugin, "params": params}, timeout=60))
    elif action == "remove":
        need(1, "remove INDEX")
        _print(_api(cfg, "POST", f"{base}/remove", {"index": num(args[0])}))
    elif action == "bypass":
        need(2, "bypass INDEX on|off")
        _print(_api(cfg, "POST", f"{base}/{args[0]}/bypass", {"on": args[1]}))
    elif action == "set":
        need(3, "set INDEX NAME VALUE")
        _print(_api(cfg, "POST", f"{base}/{args[0]}/param", {"name": args[1], "value": num(args[2])}))
    elif action == "move":
        need(2, "move INDEX TO")
        _print(_api(cfg, "POST", f"{base}/move", {"index": num(args[0]), "to": num(args[1])}))
    else:
        _fail(f"unknown chain action {action!r}: add, list, remove, bypass, set, move")


@app.command()
def bounce(
    out: Optional[str] = typer.Argument(None, help="Output file (default: sessions/<name>/bounces/<name>-<time>.wav)."),
    session: Optional[str] = typer.Option(None, help="Session to render (default: control.session)."),
    fmt: str = typer.Option("24", "--format", help="16 | 24 | 32f (WAV) | flac"),
    stems: bool = typer.Option(False, help="Also write each track, post-fader, beside the master."),
    rate: int = typer.Option(48000, help="Sample rate."),
    tail: float = typer.Option(2.0, help="Seconds rendered after the longest clip (reverb and delay tails)."),
    lufs: Optional[float] = typer.Option(None, "--lufs", help="Loudness target, e.g. -14: the master's makeup gain is set (re-rendering if needed) so the bounce measures this integrated LUFS."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Render the session offline (armed clips from the start, chains, mixer, mastering EQ and true-peak limiter), faster than real time."""
    from rich.progress import Progress

    from jackgen.daemon.cli.bounce import bounce as run_bounce
    from jackgen.common.errors import JackgenError

    cfg = _config(config)
    _check_rate_and_tail(rate, tail)
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("bouncing", total=1.0)
            info = run_bounce(cfg, session or cfg.control.session, out and _abs(out), fmt, stems, rate,
                              tail_s=tail, progress=lambda f: bar.update(task, completed=f), lufs=lufs)
    except JackgenError as e:
        _fail(str(e))
        raise
    typer.echo(json.dumps(info, indent=2))


@app.command()
def warp(
    source: str = typer.Argument(..., help="Audio file or take id."),
    to: Optional[float] = typer.Option(None, "--to", help="Target tempo (default: the session's tempo)."),
    from_bpm: Optional[float] = typer.Option(None, "--from", help="The clip's tempo (default: its take metadata, else an estimate)."),
    out: Optional[str] = typer.Option(None, help="Output file (default: beside the source, <name>-<bpm>bpm.wav)."),
    session: Optional[str] = typer.Option(None, help="Session (for take ids and its tempo; default: control.session)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Time-stretch a clip or take to a tempo, keeping its pitch (then `jackgen load` it)."""
    import soundfile as sf

    from jackgen.common.takes import TAKE_RE, tempo_from_metadata
    from jackgen.dsp.warp import estimate_tempo, stretch_to_tempo

    cfg = _config(config)
    sdir = cfg.session_dir(session or cfg.control.session)
    path = Path(source)
    if TAKE_RE.match(source) and not path.exists():
        path = next((p for p in (sdir / "audio_gen" / f"{source}.{e}" for e in ("wav", "flac")) if p.is_file()), path)
    if not path.is_file():
        _fail(f"{source} is not an audio file or a take of session {sdir.name}")
    if to is None:
        sj = sdir / "session.json"
        to = float(json.loads(sj.read_text()).get("tempo_bpm", 0)) if sj.is_file() else cfg.control.tempo_bpm
    for name, v in (("--to", to), ("--from", from_bpm)):
        if v is not None and not 20 <= v <= 400:
            _fail(f"{name} must be from 20 to 400 BPM, got {v}")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        _fail(f"{path} is not an audio file jackgen can read: {e}")
        raise
    how = "given"
    if from_bpm is None:
        from_bpm, how = tempo_from_metadata(path), "take metadata"
    if from_bpm is None:
        try:
            from_bpm, how = estimate_tempo(audio, rate), "estimated"
        except (ImportError, ValueError) as e:
            _fail(f"cannot tell {path.name}'s tempo ({e}): give it with --from BPM")
    y = stretch_to_tempo(audio, rate, from_bpm, to)
    dest = Path(out) if out else path.with_name(f"{path.stem}-{to:g}bpm.wav")
    sf.write(str(dest), y, rate, subtype="FLOAT")
    _print({"path": str(dest), "from_bpm": round(from_bpm, 2), "from": how, "to_bpm": to,
            "seconds": round(y.shape[0] / rate, 3), "source_seconds": round(audio.shape[0] / rate, 3)})


def _check_rate_and_tail(rate: int, tail: float) -> None:
    if not 8000 <= rate <= 192000:
        _fail(f"rate must be from 8000 to 192000 Hz, got {rate}")
    if not 0 <= tail <= 60:
        _fail(f"tail must be from 0 to 60 s, got {tail}")


def _plugin_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "jackgen" / "plugins.json"


@app.command()
def plugins(
    action: str = typer.Argument("list", help="scan (look again, in a child process per plugin) | list"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """VST3 plugins found (with their parameters) and the built-ins."""
    from jackgen.plugins.isolate import scan
    from jackgen.common.files import atomic_write_json

    if action not in ("scan", "list"):
        _fail(f"plugins takes scan or list, got {action!r}")
    cfg = _config(config)
    cache = _plugin_cache()
    if action == "list" and cache.is_file():
        data = json.loads(cache.read_text())
    else:
        def progress(i: int, n: int, name: str) -> None:
            if not as_json:
                typer.echo(f"scanning {i + 1}/{n}: {name}", err=True)

        data = scan(cfg.plugins.vst3_dirs, cfg.plugins.scan_timeout_s, progress)
        atomic_write_json(cache, data)
    if as_json:
        _print(data)
        return
    from rich.console import Console
    from rich.table import Table

    def fmt(p: dict) -> str:
        if p.get("choices"):
            return f"{p['name']} ({'|'.join(p['choices'])})"
        rng = "" if p["min"] is None else f" {p['min']:g}…{p['max']:g}"
        return f"{p['name']}{rng}{(' ' + p['unit']) if p['unit'] else ''}"

    table = Table("plugin", "kind", "channels", "parameters")
    for b in data["vst3"]:
        for pl in b["plugins"]:
            table.add_row(pl["name"], "vst3" if pl["effect"] else "vst3 instrument",
                          {1: "mono (dual mono on tracks)", 2: "stereo"}.get(pl["channels"], "?"),
                          ", ".join(fmt(p) for p in pl["params"]))
    for bi in data["builtins"]:
        table.add_row(bi["name"], "built-in", "stereo", ", ".join(fmt(p) for p in bi["params"]))
    con = Console()
    con.print(table)
    for f in data["failed"]:
        con.print(f"[red]could not load[/] {f['path']}: {f['error']}")
    con.print(f"folders: {', '.join(data['folders'])}  (cache: {cache})")


# ------------------------------------------------------------------ status and tracks
@app.command()
def status(config: Optional[str] = ConfigOpt, as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show xruns, underruns, DSP load, tracks and processes."""
    cfg = _config(config)
    st = _api(cfg, "GET", "/api/status")
    if as_json:
        _print(st)
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(
        f"[bold]jackgen[/] session [cyan]{st['session']}[/]  engine {'[green]running' if st['engine_running'] else '[red]down'}[/]"
        f"  {st['sample_rate']} Hz / {st['block_size']} frames  dsp load {st['dsp_load']:.1f} %"
        f"  xruns {st['xruns']}  underruns {st['underruns']}  callback max {st['callback_max_us']:.0f} µs"
    )
    table = Table("track", "state", "gain dB", "pan", "mute", "solo", "source")
    for t in st["tracks"]:
        table.add_row(str(t["track"]), t["state"], f"{t['gain_db']:+.1f}", f"{t['pan']:+.2f}",
                      "M" if t["mute"] else "", "S" if t["solo"] else "",
                      Path(t["source"] or t["armed"] or "").name)
    con.print(table)
    con.print("processes: " + ", ".join(f"{k} {v}" for k, v in st["processes"].items()))
    for j in st.get("jobs", []):
        con.print(f"job {j['job_id']} {j['status']} {j['backend']} {j['progress'] * 100:.0f} %"
                  + (f" -> track {j['track']}" if j["track"] else ""))


def _abs(path: str) -> str:
    from jackgen.common.takes import TAKE_RE

    if TAKE_RE.match(path) and not Path(path).exists():
        return path  # a take id: control finds it in the session's audio_gen/
    return str(Path(path).expanduser().resolve()) if not Path(path).is_absolute() else path


@app.command()
def load(track: int, file: str, config: Optional[str] = ConfigOpt) -> None:
    """Arm a clip on TRACK; a trigger (MIDI/OSC) or `jackgen play TRACK` starts it."""
    _print(_api(_config(config), "POST", f"/api/tracks/{track}/load", {"file": _abs(file)}))


@app.command()
def play(
    track: int,
    file: Optional[str] = typer.Argument(None, help="Audio file (WAV/FLAC/OGG); default: the armed clip."),
    at: str = typer.Option("now", "--at", help="now | beat | bar | an absolute JACK frame."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Stream an audio file (or the armed clip) into TRACK."""
    body: dict = {"at": int(at) if at.isdigit() else at}
    if file:
        body["file"] = _abs(file)
    _print(_api(_config(config), "POST", f"/api/tracks/{track}/play", body))


@app.command()
def stop(track: int, at: str = typer.Option("now", "--at", help="now | beat | bar | a JACK frame."),
         config: Optional[str] = ConfigOpt) -> None:
    """Fade out and stop TRACK."""
    _print(_api(_config(config), "POST", f"/api/tracks/{track}/stop", {"at": int(at) if at.isdigit() else at}))




@app.command(context_settings=NUMERIC_ARGS)
def gain(track: int, db: float = typer.Argument(..., help="Gain in dB (-120 .. +24)."), config: Optional[str] = ConfigOpt) -> None:
    """Set TRACK's fader in dB (smoothed)."""
    _print(_api(_config(config), "POST", f"/api/tracks/{track}/gain", {"db": db}))


@app.command(context_settings=NUMERIC_ARGS)
def pan(track: int, p: float = typer.Argument(..., metavar="P", help="-1 (left) .. 1 (right)."), config: Optional[str] = ConfigOpt) -> None:
    """Set TRACK's balance (-1 .. 1; centre is unity on both channels)."""
    _print(_api(_config(config), "POST", f"/api/tracks/{track}/pan", {"pan": p}))


@app.command()
def mute(track: int, on: str = typer.Argument(..., help="on | off"), config: Optional[str] = ConfigOpt) -> None:
    """Mute or unmute TRACK."""
    _print(_api(_config(config), "POST", f"/api/tracks/{track}/mute", {"on": on}))


@app.command()
def solo(track: int, on: str = typer.Argument(..., help="on | off"), config: Optional[str] = ConfigOpt) -> None:
    """Solo or unsolo TRACK (solo-in-place)."""
    _print(_api(_config(config), "POST", f"/api/tracks/{track}/solo", {"on": on}))


@app.command()
def record(
    seconds: float,
    out: str = typer.Argument(..., metavar="OUT.wav"),
    port: str = typer.Option("master", "--port", help="master | track_NN"),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Capture SECONDS from jackgen's JACK ports to a 32-bit float WAV."""
    import jack

    from jackgen.daemon.cli.recorder import record as do_record
    from jackgen.daemon.cli.recorder import resolve_ports

    cfg = _config(config)
    if not 0 < seconds <= 24 * 3600:
        _fail(f"seconds must be between 0 and 86400, got {seconds}")
    try:
        ports = resolve_ports(port, cfg.jack.client_name)
    except ValueError as e:
        _fail(str(e))
        raise
    try:
        rec = do_record(ports, seconds, server=cfg.jack_server)
    except jack.JackError as e:
        _fail(f"cannot record from {', '.join(ports)}: {e} (is `jackgen run` running?)", code=1)
        raise
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    rec.write(out)
    import numpy as np

    peak = float(np.abs(rec.data).max()) if rec.data.size else 0.0
    _print({"file": str(Path(out).resolve()), "seconds": seconds, "start_frame": rec.start_frame,
            "sample_rate": rec.sample_rate, "peak": peak, "xruns": rec.xruns})


@app.command()
def demo(
    config: Optional[str] = ConfigOpt,
    seconds: float = typer.Option(8.0, help="Seconds of master to record (the job generates 2 s more)."),
    session: str = typer.Option("demo", help="Session to record into."),
) -> None:
    """End-to-end demo: JACK (dummy if none runs), jackgen, a procedural job streamed into track 1, master recorded."""
    from jackgen.daemon.cli.demo import run_demo

    cfg = _config(config, {"control.session": session})
    _setup_logging("WARNING")
    raise typer.Exit(run_demo(cfg, config, seconds))


@app.command("install-units")
def install_units(
    user: bool = typer.Option(False, "--user", help="User units (recommended: JACK runs in your session)."),
    output: Optional[str] = typer.Option(None, "--output", help="Folder to write to (default: the systemd folder)."),
    workdir: str = typer.Option(".", help="Working directory of the services (sessions live here)."),
    run_as: Optional[str] = typer.Option(None, "--as-user", help="System units only: the user to run as."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Write systemd units (jackgen.target, jackgen-control, jackgen-engine) for this install."""
    from pathlib import Path as _P

    from jackgen.daemon.cli.units import default_output, render

    if config:
        _config(config)  # refuse to write units around a config that does not load
    out = _P(output) if output else default_output(user)
    try:
        paths = render(out, user, config, workdir, run_as)
    except OSError as e:
        _fail(f"cannot write units to {out}: {e.strerror} (run as root for system units, or use --user)", code=1)
        raise
    scope = "--user " if user else ""
    _print({"written": [str(p) for p in paths],
            "next": f"systemctl {scope}daemon-reload && systemctl {scope}enable --now jackgen.target"})


midi_app = typer.Typer(help="MIDI mapping: show it, or learn a control.", no_args_is_help=True)
app.add_typer(midi_app, name="midi")


@midi_app.command("learn")
def midi_learn(
    action: str = typer.Argument(..., help="trigger | gain | pan | mute | solo | play | stop | tempo | param | bypass"),
    track: Optional[int] = typer.Argument(None, help="Track 1-16 (not for tempo)."),
    gate: bool = typer.Option(False, help="For trigger: the note-off stops the clip."),
    plugin: Optional[int] = typer.Option(None, help="For param/bypass: the plugin's position in the chain (from 0)."),
    param: Optional[str] = typer.Option(None, help="For param: the parameter's name (see `jackgen chain TRACK list`)."),
    timeout: float = typer.Option(30.0, help="Seconds to wait for a control to move."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Bind the next note/CC/program change that arrives to ACTION (on TRACK)."""
    typer.secho(f"move a control on your MIDI device (waiting {timeout:.0f} s) …", err=True)
    _print(_api(_config(config), "POST", "/api/midi/learn",
                {"action": action, "track": track, "gate": gate, "timeout": timeout, "plugin": plugin,
                 "param": param}, timeout=timeout + 10))


@midi_app.command("map")
def midi_map(config: Optional[str] = ConfigOpt) -> None:
    """Show the MIDI mapping, open controllers and the last events seen."""
    _print(_api(_config(config), "GET", "/api/midi/map"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
