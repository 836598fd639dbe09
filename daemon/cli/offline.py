"""The offline tools: they do their work in this process, not in the daemon. ``render`` (MIDI to
audio), ``bounce`` (the session, faster than real time), ``warp`` (time-stretch to a tempo),
``record`` (capture from the JACK ports), ``plugins`` (scan), ``demo`` and ``install-units``.

While a daemon runs, ``bounce``, ``warp`` and ``record`` use its config and its session (asked over
HTTP), from whatever folder they are run.
"""

from __future__ import annotations

import sys

import json
import os
from pathlib import Path
from typing import Optional

import typer

from jackgen.daemon.cli.app import ConfigOpt, app, setup_logging
from jackgen.daemon.cli.base import fail, load, running_config, show


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
        fail(f"MIDI file {midi} does not exist")
    soundfont = soundfont or load(config).generators.soundfont or None
    _check_rate_and_tail(rate, tail)
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"rendering {Path(midi).name}", total=1.0)
            info = render_file(midi, out, soundfont, rate, tail_s=tail, progress=lambda f: bar.update(task, completed=f))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        fail(str(e))
        raise
    typer.echo(f"{info['path']}: {info['seconds']:.2f} s at {rate} Hz, rendered in {info['render_s']:.2f} s "
               f"({info['realtime_factor']:.0f}x real time) with {info['soundfont']}")


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
    """Render the session offline (each track's clip from the start, chains, mixer, mastering EQ and true-peak limiter), faster than real time."""
    from rich.progress import Progress

    from jackgen.daemon.cli.bounce import bounce as run_bounce
    from jackgen.common.errors import JackgenError

    _check_rate_and_tail(rate, tail)
    cfg, session = running_config(config, session)
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("bouncing", total=1.0)
            info = run_bounce(cfg, session, out and str(Path(out).expanduser().resolve()), fmt, stems, rate,
                              tail_s=tail, progress=lambda f: bar.update(task, completed=f), lufs=lufs)
    except JackgenError as e:
        fail(str(e))
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

    from jackgen.common.media import MediaPolicy
    from jackgen.common.takes import tempo_from_metadata
    from jackgen.daemon.control.session import SessionError, read_session
    from jackgen.dsp.warp import estimate_tempo, stretch_to_tempo

    cfg, session = running_config(config, session)
    sdir = cfg.session_dir(session)
    path = Path(source)
    if not path.exists():
        path = MediaPolicy.for_session(sdir, cfg.control.sessions_dir).take_path(source) or path
    if not path.is_file():
        fail(f"{source} is not an audio file or a take of session {sdir.name}")
    if to is None:
        try:
            to = read_session(sdir).tempo_bpm
        except SessionError:
            to = cfg.control.tempo_bpm
    for name, v in (("--to", to), ("--from", from_bpm)):
        if v is not None and not 20 <= v <= 400:
            fail(f"{name} must be from 20 to 400 BPM, got {v}")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        fail(f"{path} is not an audio file jackgen can read: {e}")
        raise
    how = "given"
    if from_bpm is None:
        from_bpm, how = tempo_from_metadata(path), "take metadata"
    if from_bpm is None:
        try:
            from_bpm, how = estimate_tempo(audio, rate), "estimated"
        except (ImportError, ValueError) as e:
            fail(f"cannot tell {path.name}'s tempo ({e}): give it with --from BPM")
    y = stretch_to_tempo(audio, rate, from_bpm, to)
    dest = Path(out) if out else path.with_name(f"{path.stem}-{to:g}bpm.wav")
    sf.write(str(dest), y, rate, subtype="FLOAT")
    show({"path": str(dest), "from_bpm": round(from_bpm, 2), "from": how, "to_bpm": to,
            "seconds": round(y.shape[0] / rate, 3), "source_seconds": round(audio.shape[0] / rate, 3)})


def _check_rate_and_tail(rate: int, tail: float) -> None:
    if not 8000 <= rate <= 192000:
        fail(f"rate must be from 8000 to 192000 Hz, got {rate}")
    if not 0 <= tail <= 60:
        fail(f"tail must be from 0 to 60 s, got {tail}")


def _plugin_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "jackgen" / "plugins.json"


@app.command()
def plugins(
    action: str = typer.Argument("list", help="scan (look again, in a child process per plugin) | list"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Plugins found — VST3, LV2 (effects and instruments) and the built-ins — with every parameter's range and unit."""
    from jackgen.plugins.isolate import scan
    from jackgen.common.files import atomic_write_json

    if action not in ("scan", "list"):
        fail(f"plugins takes scan or list, got {action!r}")
    cfg = load(config)
    cache = _plugin_cache()
    data = None
    if action == "list" and cache.is_file():
        try:
            data = json.loads(cache.read_text())
        except ValueError:
            data = None
        if not isinstance(data, dict) or "plugins" not in data:  # written by an older jackgen, or broken
            data = None
    if data is None:
        def progress(i: int, n: int, name: str) -> None:
            if not as_json:
                typer.echo(f"scanning {i + 1}/{n}: {name}", err=True)

        data = scan(cfg.plugins.vst3_dirs, cfg.plugins.scan_timeout_s, progress)
        data["plugins"] = flat_plugin_list(data)
        atomic_write_json(cache, data)
    if as_json:
        show(data)
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
    for pl in data.get("lv2") or ():
        chans = f"{pl['audio_inputs']} in / {pl['audio_outputs']} out"
        extra = f"; presets: {', '.join(pl['presets'])}" if pl.get("presets") else ""
        table.add_row(f"{pl['name']}\n[dim]{pl['uri']}[/]", "lv2 instrument" if pl["instrument"] else "lv2", chans,
                      ", ".join(fmt(p) for p in pl["params"]) + extra)
    for bi in data["builtins"]:
        table.add_row(bi["name"], "built-in", "stereo", ", ".join(fmt(p) for p in bi["params"]))
    con = Console()
    con.print(table)
    for f in data["failed"]:
        con.print(f"[red]could not load[/] {f['path']}: {f['error']}")
    con.print(f"VST3 folders: {', '.join(data['folders'])}; LV2 path: {data.get('lv2_path') or 'none read'}"
              f"  (cache: {cache})")


def flat_plugin_list(data: dict) -> list[dict]:
    """Every plugin a scan found, one list: format (vst3 | lv2 | builtin), name, what names it in a
    chain (``plugin``), whether it is an instrument, its parameters."""
    out = []
    for b in data.get("vst3") or ():
        for pl in b["plugins"]:
            out.append({"format": "vst3", "name": pl["name"], "plugin": b["path"], "instrument": not pl["effect"],
                        "params": pl["params"]})
    for pl in data.get("lv2") or ():
        out.append({"format": "lv2", "name": pl["name"], "plugin": pl["uri"], "instrument": pl["instrument"],
                    "params": pl["params"], "presets": pl.get("presets", [])})
    for bi in data.get("builtins") or ():
        out.append({"format": "builtin", "name": bi["name"], "plugin": bi["name"], "instrument": False,
                    "params": bi["params"]})
    return out


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

    if not 0 < seconds <= 24 * 3600:
        fail(f"seconds must be between 0 and 86400, got {seconds}")
    cfg, _ = running_config(config, announce=False)  # the running jackgen's JACK client and server names
    try:
        ports = resolve_ports(port, cfg.jack.client_name)
    except ValueError as e:
        fail(str(e))
        raise
    try:
        rec = do_record(ports, seconds, server=cfg.jack_server)
    except jack.JackError as e:
        fail(f"cannot record from {', '.join(ports)}: {e} (is `jackgen run` running?)", code=1)
        raise
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    from jackgen.common.errors import JackgenError

    try:
        rec.write(out)
    except JackgenError as e:
        fail(str(e), code=1)
        raise
    import numpy as np

    peak = float(np.abs(rec.data).max()) if rec.data.size else 0.0
    show({"file": str(Path(out).resolve()), "seconds": seconds, "start_frame": rec.start_frame,
            "sample_rate": rec.sample_rate, "peak": peak, "xruns": rec.xruns})


@app.command()
def demo(
    config: Optional[str] = ConfigOpt,
    seconds: float = typer.Option(8.0, help="Seconds of master to record (the job generates 2 s more)."),
    session: str = typer.Option("demo", help="Session to record into."),
) -> None:
    """End-to-end demo: JACK (dummy if none runs), jackgen, a procedural job streamed into track 1, master recorded."""
    from jackgen.daemon.cli.demo import run_demo

    cfg = load(config, {"control.session": session})
    setup_logging("WARNING")
    raise typer.Exit(run_demo(cfg, config, seconds))


@app.command("install-units")
def install_units(
    user: bool = typer.Option(False, "--user", help="User units (recommended: JACK runs in your session)."),
    output: Optional[str] = typer.Option(None, "--output", help="Folder to write to (default: the systemd folder)."),
    workdir: str = typer.Option(".", help="Working directory of the services (sessions live here)."),
    run_as: Optional[str] = typer.Option(None, "--as-user", help="System units only: the user to run as."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Write systemd units (jackgen.target, redis, control, engine, feeder, worker@BACKEND) for this install."""
    from pathlib import Path as _P

    from jackgen.daemon.cli.units import default_output, render

    if config:
        load(config)  # refuse to write units around a config that does not load
    out = _P(output) if output else default_output(user)
    try:
        paths = render(out, user, config, workdir, run_as)
    except OSError as e:
        fail(f"cannot write units to {out}: {e.strerror} (run as root for system units, or use --user)", code=1)
        raise
    scope = "--user " if user else ""
    show({"written": [str(p) for p in paths],
            "next": f"systemctl {scope}daemon-reload && systemctl {scope}enable --now jackgen.target"})


@app.command("logs")
def logs(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    user: bool = typer.Option(False, "--user", help="The --user units' journal (as installed with --user)."),
    level: str = typer.Option("info", help="Lowest level shown: debug, info, warning, error."),
    lines: int = typer.Option(200, "--lines", "-n", help="How many past lines."),
    unit: Optional[str] = typer.Option(None, help="One part: engine, control, feeder, redis, worker@BACKEND."),
) -> None:
    """Show jackgen's logs from the journal (systemd units); `jackgen run` logs to its own terminal."""
    import os
    import shutil

    prio = {"debug": "debug", "info": "info", "warning": "warning", "error": "err"}.get(level.lower())
    if prio is None:
        fail("--level must be debug, info, warning or error")
    exe = shutil.which("journalctl")
    if not exe:
        fail("journalctl is not installed: under `jackgen run` the log is that command's own output")
    units = [f"jackgen-{unit}.service"] if unit else ["jackgen-*", "jackgen.target"]
    argv = [exe, *(["--user"] if user else []), *(a for u in units for a in ("-u", u)), "-p", prio,
            "-n", str(lines), "-o", "short-iso", *(["-f"] if follow else [])]
    print(" ".join(argv[0:1] + [f"'{a}'" if "*" in a else a for a in argv[1:]]), file=sys.stderr)
    os.execv(exe, argv)


db_app = typer.Typer(help="The library's database: migrations, and importing takes made elsewhere.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")


def _db_config(config: Optional[str]):
    """The daemon's own config while one answers (same database, same folders), else this one."""
    cfg, _session = running_config(config, announce=False)
    return cfg


@db_app.command("upgrade")
def db_upgrade(config: Optional[str] = ConfigOpt,
               revision: str = typer.Option("head", help="Migrate to this revision (default: the newest).")) -> None:
    """Run the library's migrations (control also runs them at every start)."""
    from jackgen.daemon.library.service import _safe_url, library_url
    from jackgen.daemon.library.store import make_engine, upgrade

    cfg = _db_config(config)
    url = library_url(cfg)
    try:
        before, after = upgrade(make_engine(url), revision)
    except Exception as e:  # unreachable server, bad credentials, a file it cannot write
        fail(f"cannot migrate {_safe_url(url)}: {type(e).__name__}: {str(e).splitlines()[0]}", code=1)
    print(f"{_safe_url(url)}: {before or 'empty'} -> {after}" if before != after else
          f"{_safe_url(url)}: at {after} already")


@db_app.command("import")
def db_import(directory: Path = typer.Argument(..., help="A session folder, or a folder of sessions."),
              config: Optional[str] = ConfigOpt) -> None:
    """Add every take JSON under DIRECTORY (audio_gen/<take>.json beside its audio) to the library.
    Takes it knows already are skipped; takes outside the sessions folder are copied into it first."""
    from rich.progress import Progress

    from jackgen.daemon.library.service import open_library

    setup_logging("WARNING")
    cfg = _db_config(config)
    src = directory.expanduser().resolve()
    if not src.is_dir():
        fail(f"{directory} is not a folder")
    root = Path(cfg.control.sessions_dir).resolve()
    if not src.is_relative_to(root):
        src = _copy_sessions_in(src, root)
    lib = open_library(cfg)
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"importing {src}", total=None)
            got = lib.import_dir(src, lambda i, n: bar.update(task, completed=i, total=n))
    finally:
        lib.close()
    show(got)


def _copy_sessions_in(src: Path, root: Path) -> Path:
    """A folder of takes from elsewhere (another machine's sessions) copied under the sessions folder,
    where the daemon may read them; the copy's path."""
    import shutil

    sessions = [src] if (src / "audio_gen").is_dir() else [p for p in src.iterdir() if (p / "audio_gen").is_dir()]
    if not sessions:
        fail(f"{src} has no audio_gen/ folder (a session) nor sessions with one")
    for s in sessions:
        dest = root / s.name
        print(f"copying {s} -> {dest}", file=sys.stderr)
        shutil.copytree(s, dest, dirs_exist_ok=True)
    return root / sessions[0].name if sessions == [src] else root
