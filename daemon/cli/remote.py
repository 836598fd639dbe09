"""The remote commands: thin calls to a running control process over HTTP, each naming its command in
the command table (``frontends.commands``), which gives the route and checks the arguments there.

Files named on this command line are the user's own: a file outside the folders the daemon may
read (the sessions folder and ``control.media_dirs``) is copied into ``sessions/<name>/media/``
first, as a DAW imports a file dragged in, and the command uses the copy (it says so on stderr).
HTTP and OSC clients, which may be anywhere, stay limited to those folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from jackgen.common.takes import TAKE_RE
from jackgen.daemon.cli.app import NUMERIC_ARGS, ConfigOpt, app, call, control_url, fail, note, show

jobs_app = typer.Typer(help="Generation jobs: list, show, follow, cancel.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
midi_app = typer.Typer(help="MIDI mapping: show it, or learn a control.", no_args_is_help=True)
app.add_typer(midi_app, name="midi")

def _same_file(a: Path, b: Path) -> bool:
    import hashlib

    if a.stat().st_size != b.stat().st_size:
        return False

    def digest(p: Path) -> str:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    return digest(a) == digest(b)


def local_file(config: Optional[str], name: Optional[str]) -> Optional[str]:
    """A file named on the command line, as the daemon should see it: a take id as it is, a file
    inside the daemon's folders by its absolute path, any other existing file imported into the
    session's media folder (once: the same file again is not copied twice)."""
    if not name:
        return name
    p = Path(name).expanduser()
    if not p.exists():
        if TAKE_RE.match(name):
            return name  # a take id: control finds it in the session's audio_gen/
        return str(p.resolve())  # control says it does not exist, in its own words
    p = p.resolve()
    info = call(config, "session.info", http_timeout=5.0)
    cc = info["config"]["control"]
    roots = [Path(cc["sessions_dir"]), *(Path(d) for d in cc["media_dirs"])]
    if not p.is_file() or any(p.is_relative_to(r) for r in roots):
        return str(p)
    media = Path(info["session_dir"]) / "media"
    media.mkdir(parents=True, exist_ok=True)
    dest, k = media / p.name, 1
    while dest.exists() and not _same_file(dest, p):
        dest, k = media / f"{p.stem}-{k}{p.suffix}", k + 1
    if not dest.exists():
        import shutil

        tmp = dest.with_name(f".{dest.name}.part")
        shutil.copyfile(p, tmp)
        tmp.replace(dest)
        note(f"imported {p} into the session: {dest}")
    else:
        note(f"using {dest} (already imported from {p})")
    return str(dest)


def _at(at: str) -> Any:
    return int(at) if at.isdigit() else at


# ------------------------------------------------------------------ tracks
@app.command("load")
def load_(track: int, file: str, config: Optional[str] = ConfigOpt) -> None:
    """Arm a clip on TRACK; a trigger (MIDI/OSC) or `jackgen play TRACK` starts it."""
    show(call(config, "load", track=track, file=local_file(config, file)))


@app.command()
def play(
    track: int,
    file: Optional[str] = typer.Argument(None, help="Audio file (WAV/FLAC/OGG) or take id; default: the armed clip."),
    at: str = typer.Option("now", "--at", help="now | beat | bar | an absolute JACK frame."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Stream an audio file (or the armed clip) into TRACK."""
    show(call(config, "play", track=track, file=local_file(config, file), at=_at(at)))


@app.command()
def stop(track: int, at: str = typer.Option("now", "--at", help="now | beat | bar | a JACK frame."),
         config: Optional[str] = ConfigOpt) -> None:
    """Fade out and stop TRACK."""
    show(call(config, "stop", track=track, at=_at(at)))


@app.command(context_settings=NUMERIC_ARGS)
def gain(track: int, db: float = typer.Argument(..., help="Gain in dB (-120 .. +24)."), config: Optional[str] = ConfigOpt) -> None:
    """Set TRACK's fader in dB (smoothed)."""
    show(call(config, "gain", track=track, db=db))


@app.command(context_settings=NUMERIC_ARGS)
def pan(track: int, p: float = typer.Argument(..., metavar="P", help="-1 (left) .. 1 (right)."), config: Optional[str] = ConfigOpt) -> None:
    """Set TRACK's balance (-1 .. 1; centre is unity on both channels)."""
    show(call(config, "pan", track=track, pan=p))


@app.command()
def mute(track: int, on: str = typer.Argument(..., help="on | off"), config: Optional[str] = ConfigOpt) -> None:
    """Mute or unmute TRACK."""
    show(call(config, "mute", track=track, on=on))


@app.command()
def solo(track: int, on: str = typer.Argument(..., help="on | off"), config: Optional[str] = ConfigOpt) -> None:
    """Solo or unsolo TRACK (solo-in-place)."""
    show(call(config, "solo", track=track, on=on))


@app.command()
def tempo(bpm: float = typer.Argument(..., help="Beats per minute (20 .. 400)."), config: Optional[str] = ConfigOpt) -> None:
    """Set the tempo without moving the beat that is playing (beat/bar starts follow it)."""
    show(call(config, "tempo", bpm=bpm))


@app.command()
def transport(action: str = typer.Argument(..., help="start | stop"), config: Optional[str] = ConfigOpt) -> None:
    """Start or stop the JACK transport (Ardour follows it)."""
    if action not in ("start", "stop"):
        fail(f"transport takes start or stop, got {action!r}")
    show(call(config, "transport", action=action))


# ------------------------------------------------------------------ status
@app.command()
def status(config: Optional[str] = ConfigOpt, as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show xruns, underruns, DSP load, tracks and processes."""
    st = call(config, "status")
    if as_json:
        show(st)
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


@app.command()
def health(config: Optional[str] = ConfigOpt, as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Each part's health (JACK, workers, disk) as a table; exit 1 when jackgen is degraded."""
    h = call(config, "health")
    if as_json:
        show(h)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("part", "state")
        for k, v in h.items():
            table.add_row(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v))
        Console().print(table)
    if h.get("status") != "ok":
        raise typer.Exit(1)


# ------------------------------------------------------------------ master and chains
@app.command(context_settings=NUMERIC_ARGS)
def master(
    gain: Optional[float] = typer.Option(None, "--gain", help="Makeup gain into the limiter, dB."),
    eq: Optional[list[str]] = typer.Option(None, "--eq", help="BAND:TYPE[:FREQ[:GAIN_DB[:Q]]], e.g. 1:lowshelf:100:2 or 3:off (repeatable; types: lowshelf peak highshelf highpass lowpass off)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """The master bus's mastering section: EQ (4 bands), makeup gain, true-peak limiter. No options: show it."""
    if gain is None and not eq:
        show(call(config, "master.show"))
        return
    bands = []
    for spec in eq or []:
        parts = spec.split(":")
        if len(parts) < 2 or len(parts) > 5:
            fail(f"--eq takes BAND:TYPE[:FREQ[:GAIN_DB[:Q]]], got {spec!r}")
        try:
            band = {"band": int(parts[0]), "type": parts[1]}
            for key, v in zip(("freq", "gain_db", "q"), parts[2:]):
                band[key] = float(v)
        except ValueError:
            fail(f"--eq {spec!r}: band is a number 1-4, and freq, gain and q are numbers")
        bands.append(band)
    show(call(config, "master", gain_db=gain, eq=bands or None))


def _num(v: str) -> Any:
    try:
        return int(v) if v.lstrip("-").isdigit() else float(v)
    except ValueError:
        return v


@app.command(context_settings=NUMERIC_ARGS)
def chain(
    track: str = typer.Argument(..., help="Track 1-16, or master."),
    action: str = typer.Argument("list", help="add PLUGIN | list | remove I | bypass I on|off | set I NAME VALUE | move I TO"),
    args: Optional[list[str]] = typer.Argument(None),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="NAME=VALUE for add (repeatable)."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """A track's plugin chain: VST3 (name or path) and built-ins, changed live."""
    args = list(args or [])
    usage = {"list": (0, ""), "add": (1, "add PLUGIN [--param NAME=VALUE …]"), "remove": (1, "remove INDEX"),
             "bypass": (2, "bypass INDEX on|off"), "set": (3, "set INDEX NAME VALUE"), "move": (2, "move INDEX TO")}
    if action not in usage:
        fail(f"unknown chain action {action!r}: add, list, remove, bypass, set, move")
    n, text = usage[action]
    if len(args) != n:
        fail(f"usage: jackgen chain {track} {text}")
    if action == "list":
        show(call(config, "chain.list", track=track))
    elif action == "add":
        params = {}
        for kv in param or []:
            if "=" not in kv:
                fail(f"--param takes NAME=VALUE, got {kv!r}")
            k, v = kv.split("=", 1)
            params[k] = _num(v)
        plugin = args[0]
        if plugin.endswith(".vst3") and Path(plugin).exists():
            plugin = str(Path(plugin).resolve())  # a plugin is code: it must lie in the plugin folders
        show(call(config, "chain.add", http_timeout=60, track=track, plugin=plugin, params=params))
    elif action == "remove":
        show(call(config, "chain.remove", track=track, index=_num(args[0])))
    elif action == "bypass":
        show(call(config, "chain.bypass", track=track, index=args[0], on=args[1]))
    elif action == "set":
        show(call(config, "chain.param", track=track, index=args[0], name=args[1], value=_num(args[2])))
    else:
        show(call(config, "chain.move", track=track, index=_num(args[0]), to=_num(args[1])))


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
    r = call(config, "generate", prompt=prompt, duration=duration, variations=variations, priority=priority,
             output_format=output_format, bpm=bpm, key=key, style=style, backend=backend, track=track, seed=seed,
             soundfont=local_file(config, soundfont), midi=local_file(config, midi))
    if not wait:
        show(r)
        return
    job = _follow_job(config, r["job_id"])
    show(job)
    if job["status"] != "done":
        raise typer.Exit(1)


def _follow_job(config: Optional[str], job_id: str) -> dict:
    """Show a progress bar from the job's server-sent events until it ends."""
    import urllib.request

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from jackgen.daemon.frontends.commands import JOB_EVENTS

    url = control_url(config) + JOB_EVENTS.format(job_id=job_id)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), transient=True, console=None) as bar:
        task = bar.add_task(f"job {job_id}", total=1.0)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:  # the server sends a keep-alive every 15 s
                for raw in resp:
                    line = raw.decode(errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    e = json.loads(line[5:])
                    bar.update(task, completed=e.get("progress", 0.0) if e["event"] == "progress" else
                               (1.0 if e["event"] == "done" else None),
                               description=f"job {job_id} {e['status']}")
                    if e["event"] in ("done", "failed", "cancelled"):
                        break
        except OSError as e:
            call(config, "jobs.show", job_id=job_id)  # a job that does not exist: control's own message
            fail(f"lost the connection to jackgen control while following job {job_id}: {e}", code=1)
    return call(config, "jobs.show", job_id=job_id)


@jobs_app.command("list")
def jobs_list(config: Optional[str] = ConfigOpt) -> None:
    """Jobs that are queued or running."""
    show(call(config, "jobs.list"))


@jobs_app.command("show")
def jobs_show(job_id: str, config: Optional[str] = ConfigOpt,
              follow: bool = typer.Option(False, "--follow", "-f", help="Wait for the end, with progress.")) -> None:
    """A job's status, progress, timings and takes."""
    show(_follow_job(config, job_id) if follow else call(config, "jobs.show", job_id=job_id))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, config: Optional[str] = ConfigOpt) -> None:
    """Cancel a queued or running job (a running one stops within one chunk)."""
    show(call(config, "jobs.cancel", job_id=job_id))


# ------------------------------------------------------------------ MIDI
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
    show(call(config, "midi.learn", http_timeout=timeout + 10, action=action, track=track, gate=gate,
              timeout=timeout, plugin=plugin, param=param))


@midi_app.command("map")
def midi_map(config: Optional[str] = ConfigOpt) -> None:
    """Show the MIDI mapping, open controllers and the last events seen."""
    show(call(config, "midi.map"))
