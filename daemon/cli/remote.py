"""The remote commands: thin calls to a running control process over HTTP, each naming its command in
the command table (``frontends.commands``), which gives the route and checks the arguments there.

They are parsed with argparse rather than Typer: a remote command should act within tens of
milliseconds, and importing Typer alone costs ~50 ms here (``bench/cli.py``). Each verb is one
function registered with ``@verb``, its arguments declared beside it.

Files named on this command line are the user's own: a file outside the folders the daemon may
read (the sessions folder and ``control.media_dirs``) is copied into ``sessions/<name>/media/``
first, as a DAW imports a file dragged in, and the command uses the copy (it says so on stderr).
HTTP and OSC clients, which may be anywhere, stay limited to those folders.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Optional

from jackgen.daemon.cli.base import CONFIG_HELP, CliExit, call, control_url, fail, note, show


class Verb(NamedTuple):
    name: str  # "gain", or "jobs list" for a verb in a group
    help: str
    args: tuple[tuple[tuple[str, ...], dict], ...]
    run: Callable[[argparse.Namespace], None]


VERBS: dict[str, Verb] = {}
GROUPS = {"jobs": "Generation jobs: list, show, follow, cancel, retry; the dead letters.",
          "takes": "The library of takes: list, show, search, similar prompts, rm (to the trash), restore.", "midi": "MIDI mapping: show it, or learn a control."}


def arg(*flags: str, **kw: Any) -> tuple[tuple[str, ...], dict]:
    return flags, kw


def verb(name: str, *args: tuple[tuple[str, ...], dict]):
    def register(fn: Callable[[argparse.Namespace], None]):
        VERBS[name] = Verb(name, (fn.__doc__ or "").strip(), args, fn)
        return fn
    return register


def parser_for(v: Verb) -> argparse.ArgumentParser:
    first, _, rest = v.help.partition("\n")
    p = argparse.ArgumentParser(prog=f"jackgen {v.name}", description=first + (("\n" + rest) if rest else ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for flags, kw in v.args:
        p.add_argument(*flags, **kw)
    p.add_argument("--config", "-c", default=None, help=CONFIG_HELP)
    return p


def run(argv: list[str]) -> int:
    """Run the remote verb ``argv`` names; its exit code."""
    name = argv[0]
    if name in GROUPS:
        subs = sorted(k.split(" ", 1)[1] for k in VERBS if k.startswith(name + " "))
        if len(argv) < 2 or argv[1] not in subs:
            if len(argv) >= 2 and argv[1] not in ("-h", "--help"):
                fail(f"unknown command 'jackgen {name} {argv[1]}': use one of {', '.join(subs)}")
            print(f"usage: jackgen {name} {{{','.join(subs)}}} ...\n\n{GROUPS[name]}\n")
            for s in subs:
                print(f"  {s:10s} {VERBS[name + ' ' + s].help.splitlines()[0]}")
            return 0
        name, argv = f"{name} {argv[1]}", argv[1:]
    v = VERBS[name]
    try:
        v.run(parser_for(v).parse_args(argv[1:]))
    except CliExit as e:
        return int(e.code)
    return 0


def _at(at: str) -> Any:
    return int(at) if at.isdigit() else at


def _same_file(a: Path, b: Path) -> bool:
    import hashlib

    if a.stat().st_size != b.stat().st_size:
        return False

    def digest(p: Path) -> str:
        with open(p, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    return digest(a) == digest(b)


def local_file(config: Optional[str], name: Optional[str]) -> Optional[str]:
    """A file named on the command line, as the daemon should see it: a take id as it is, a file
    inside the daemon's folders by its absolute path, any other existing file imported into the
    session's media folder (once: the same file again is not copied twice)."""
    from jackgen.common.takes import TAKE_RE

    if not name:
        return name
    if name.startswith("#") and name[1:].isdigit():
        return name  # a library number (jackgen takes list): control looks it up
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


TRACK = arg("track", type=int, help="Track 1-16.")
AT = arg("--at", default="now", help="now | beat | bar | an absolute JACK frame (default: now).")
JSON = arg("--json", dest="as_json", action="store_true", help="Machine-readable output.")


# ------------------------------------------------------------------ tracks
@verb("load", TRACK, arg("file", help="Audio file (WAV/FLAC/OGG) or take id."))
def load_(a: argparse.Namespace) -> None:
    """Arm a clip on TRACK; a trigger (MIDI/OSC) or `jackgen play TRACK` starts it."""
    show(call(a.config, "load", track=a.track, file=local_file(a.config, a.file)))


@verb("play", TRACK, arg("file", nargs="?", help="Audio file (WAV/FLAC/OGG), MIDI file (for a track whose chain "
                                                  "starts with an instrument) or take id; default: the armed clip."), AT)
def play(a: argparse.Namespace) -> None:
    """Stream an audio file (or the armed clip) into TRACK."""
    show(call(a.config, "play", track=a.track, file=local_file(a.config, a.file), at=_at(a.at)))


@verb("live", TRACK, arg("on", nargs="?", default="on", help="on (default) | off"))
def live(a: argparse.Namespace) -> None:
    """Play TRACK's instrument from live MIDI: channel TRACK of jackgen:midi_in (and controllers),
    at the fixed latency plugins.live_latency_ms. `off` stops it (all notes off)."""
    show(call(a.config, "live", track=a.track, on=a.on))


@verb("stop", TRACK, AT)
def stop(a: argparse.Namespace) -> None:
    """Fade out and stop TRACK."""
    show(call(a.config, "stop", track=a.track, at=_at(a.at)))


@verb("gain", TRACK, arg("db", type=float, help="Gain in dB (-120 .. +24)."))
def gain(a: argparse.Namespace) -> None:
    """Set TRACK's fader in dB (smoothed)."""
    show(call(a.config, "gain", track=a.track, db=a.db))


@verb("pan", TRACK, arg("p", metavar="P", type=float, help="-1 (left) .. 1 (right)."))
def pan(a: argparse.Namespace) -> None:
    """Set TRACK's balance (-1 .. 1; centre is unity on both channels)."""
    show(call(a.config, "pan", track=a.track, pan=a.p))


@verb("mute", TRACK, arg("on", help="on | off"))
def mute(a: argparse.Namespace) -> None:
    """Mute or unmute TRACK."""
    show(call(a.config, "mute", track=a.track, on=a.on))


@verb("solo", TRACK, arg("on", help="on | off"))
def solo(a: argparse.Namespace) -> None:
    """Solo or unsolo TRACK (solo-in-place)."""
    show(call(a.config, "solo", track=a.track, on=a.on))


@verb("tempo", arg("bpm", type=float, help="Beats per minute (20 .. 400)."))
def tempo(a: argparse.Namespace) -> None:
    """Set the tempo without moving the beat that is playing (beat/bar starts follow it)."""
    show(call(a.config, "tempo", bpm=a.bpm))


@verb("transport", arg("action", choices=("start", "stop"), help="start | stop"))
def transport(a: argparse.Namespace) -> None:
    """Start or stop the JACK transport (Ardour follows it)."""
    show(call(a.config, "transport", action=a.action))


# ------------------------------------------------------------------ status
@verb("status", JSON)
def status(a: argparse.Namespace) -> None:
    """Show xruns, underruns, DSP load, tracks and processes."""
    st = call(a.config, "status")
    if a.as_json:
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
    js = st.get("jack_server") or {}
    if js and not js.get("ok"):
        con.print(f"[red]JACK: {js.get('state')}[/] {js.get('message', '')}")
    if st.get("skipped_cycles"):
        con.print(f"xruns re-locked: {st['skipped_cycles']} ({st.get('skipped_frames', 0)} frames skipped to stay "
                  "on the frame clock)")
    con.print(table)
    con.print("processes: " + ", ".join(f"{k} {v}" for k, v in st["processes"].items())
              + (f"  (restarts: engine {st.get('engine_restarts', 0)}, feeder {st.get('feeder_restarts', 0)}, "
                 f"control {st.get('control_restarts', 0)})" if any(st.get(k) for k in
                 ("engine_restarts", "feeder_restarts", "control_restarts")) else ""))
    rd = st.get("redis") or {}
    ws = st.get("workers") or []
    con.print(f"queue: Redis {rd.get('url')} {'[green]ok' if rd.get('ok') else '[red]not reachable'}[/]"
              f"{' (embedded)' if rd.get('embedded') else ''}, {st.get('queue_length', 0)} waiting; workers: "
              + (", ".join(f"{w['backend']}@{w['host']} pid {w['pid']}{' busy' if w.get('busy') else ''}"
                           for w in ws) or "none"))
    for j in st.get("jobs", []):
        con.print(f"job {j['job_id']} {j['status']} {j['backend']} {j['progress'] * 100:.0f} %"
                  + (f" -> track {j['track']}" if j["track"] else ""))


@verb("health", JSON)
def health(a: argparse.Namespace) -> None:
    """Each part's health as a table: JACK server, engine, Redis, database, feeder, workers, disk, GPU.

    Exits 1 when a required part is down (``/health`` answers 503 then)."""
    h = call(a.config, "health", accept=(503,))
    if a.as_json:
        show(h)
    else:
        from rich.console import Console
        from rich.table import Table

        def ok(v: Any) -> str:
            return "[green]ok[/]" if v else "[red]failing[/]"

        js, eng, rd, db, disk = (h.get(k) or {} for k in ("jack_server", "engine", "redis", "database", "disk"))
        table = Table("part", "state", "detail")
        table.add_row("JACK server", ok(js.get("ok")), f"{js.get('state')}, {js.get('sample_rate') or '-'} Hz, "
                      f"{js.get('period_frames') or '-'} frames {js.get('message') or ''}")
        table.add_row("engine", ok(eng.get("ok")), f"pid {eng.get('pid')}, last status {eng.get('last_status_age_s')} s "
                      f"ago, {eng.get('xruns', 0)} xruns")
        table.add_row("Redis", ok(rd.get("ok")), f"{rd.get('url')} " + (f"{rd['latency_ms']} ms" if "latency_ms" in rd
                                                                       else rd.get("error", "")))
        table.add_row("database", ok(db.get("ok")), (f"{db.get('backend')}, {db['latency_ms']} ms, prompt search by "
                                                     f"{db.get('search')}") if db.get("ok") else str(db.get("error")))
        table.add_row("feeder", ok((h.get("workers") or {}).get("feeder")), "")
        table.add_row("disk", ok(disk.get("ok")), f"{(disk.get('free_bytes') or 0) / 2**30:.1f} GiB free in "
                      f"{disk.get('path')}")
        for w in (h.get("workers") or {}).get("live", []):
            table.add_row(f"worker {','.join(w.get('backends') or [])}", ok(True),
                          f"{w.get('host')} pid {w.get('pid')} on {w.get('device')}, heartbeat "
                          f"{w.get('heartbeat_age_s')} s ago{', busy' if w.get('busy') else ''}")
        gpu = h.get("gpu") or {}
        for g in gpu.get("gpus") or []:
            table.add_row(f"GPU {g.get('name')}", ok(True), f"{g.get('memory_used_mib')}/{g.get('memory_total_mib')} "
                          f"MiB, {g.get('temperature_c')} °C")
        table.add_row("queue", "", f"{h.get('queue_length', 0)} waiting")
        con = Console()
        con.print(table)
        con.print(f"status: [bold]{h.get('status')}[/]" + (f", failing: {', '.join(h['failing'])}" if h.get("failing")
                                                          else ""))
    if h.get("status") != "ok":
        raise CliExit(1)


# ------------------------------------------------------------------ master and chains
@verb("master", arg("--gain", type=float, default=None, help="Makeup gain into the limiter, dB."),
      arg("--eq", action="append", default=None, help="BAND:TYPE[:FREQ[:GAIN_DB[:Q]]], e.g. 1:lowshelf:100:2 or 3:off "
          "(repeatable; types: lowshelf peak highshelf highpass lowpass off)."))
def master(a: argparse.Namespace) -> None:
    """The master bus's mastering section: EQ (4 bands), makeup gain, true-peak limiter. No options: show it."""
    if a.gain is None and not a.eq:
        show(call(a.config, "master.show"))
        return
    bands = []
    for spec in a.eq or []:
        parts = spec.split(":")
        if len(parts) < 2 or len(parts) > 5:
            fail(f"--eq takes BAND:TYPE[:FREQ[:GAIN_DB[:Q]]], got {spec!r}")
        try:
            band: dict = {"band": int(parts[0]), "type": parts[1]}
            for key, v in zip(("freq", "gain_db", "q"), parts[2:]):
                band[key] = float(v)
        except ValueError:
            fail(f"--eq {spec!r}: band is a number 1-4, and freq, gain and q are numbers")
        bands.append(band)
    show(call(a.config, "master", gain_db=a.gain, eq=bands or None))


def _num(v: str) -> Any:
    try:
        return int(v) if v.lstrip("-").isdigit() else float(v)
    except ValueError:
        return v


CHAIN_USAGE = {"list": (0, ""), "add": (1, "add PLUGIN [--param NAME=VALUE …]"), "remove": (1, "remove INDEX"),
               "bypass": (2, "bypass INDEX on|off"), "set": (3, "set INDEX NAME VALUE"), "move": (2, "move INDEX TO")}


@verb("chain", arg("track", help="Track 1-16, or master."),
      arg("action", nargs="?", default="list", help="add PLUGIN | list | remove I | bypass I on|off | set I NAME VALUE "
          "| move I TO"),
      arg("args", nargs="*", help="The action's arguments."),
      arg("--param", "-p", action="append", default=None, help="NAME=VALUE for add (repeatable)."))
def chain(a: argparse.Namespace) -> None:
    """A track's plugin chain: VST3 (name or path) and built-ins, changed live."""
    args, track = list(a.args), a.track
    if a.action not in CHAIN_USAGE:
        fail(f"unknown chain action {a.action!r}: add, list, remove, bypass, set, move")
    n, text = CHAIN_USAGE[a.action]
    if len(args) != n:
        fail(f"usage: jackgen chain {track} {text}")
    if a.action == "list":
        show(call(a.config, "chain.list", track=track))
    elif a.action == "add":
        params = {}
        for kv in a.param or []:
            if "=" not in kv:
                fail(f"--param takes NAME=VALUE, got {kv!r}")
            k, v = kv.split("=", 1)
            params[k] = _num(v)
        plugin = args[0]
        if plugin.endswith(".vst3") and Path(plugin).exists():
            plugin = str(Path(plugin).resolve())  # a plugin is code: it must lie in the plugin folders
        show(call(a.config, "chain.add", http_timeout=60, track=track, plugin=plugin, params=params))
    elif a.action == "remove":
        show(call(a.config, "chain.remove", track=track, index=_num(args[0])))
    elif a.action == "bypass":
        show(call(a.config, "chain.bypass", track=track, index=args[0], on=args[1]))
    elif a.action == "set":
        show(call(a.config, "chain.param", track=track, index=args[0], name=args[1], value=_num(args[2])))
    else:
        show(call(a.config, "chain.move", track=track, index=_num(args[0]), to=_num(args[1])))


# ------------------------------------------------------------------ generation
def _instruments(a: argparse.Namespace) -> dict:
    """--instrument STEM=PLUGIN and --instrument-param STEM.NAME=VALUE as a job's ``instruments``."""
    out: dict = {}
    for item in a.instrument:
        stem, sep, plugin = item.partition("=")
        if not sep or not stem or not plugin:
            fail(f"--instrument takes STEM=PLUGIN (e.g. lead=synthv1), got {item!r}")
        out[stem.strip()] = {"plugin": plugin.strip(), "params": {}}
    for item in a.instrument_param:
        key, sep, value = item.partition("=")
        stem, dot, name = key.partition(".")
        if not sep or not dot or stem not in out:
            fail(f"--instrument-param takes STEM.NAME=VALUE for a stem given --instrument, got {item!r}")
        try:
            v: object = float(value)
        except ValueError:
            p = Path(value).expanduser()  # a kit is a folder of files: named where it is, not copied
            v = str(p.resolve()) if p.exists() else value
        out[stem]["params"][name] = v
    return out


@verb("generate", arg("prompt", help="What to make, e.g. 'dark trap beat 140 BPM in F#m, hi-hat rolls'."),
      arg("--duration", "-d", type=float, default=None, help="Seconds of audio (0.5 .. generators.max_duration_s; "
          "default 10, or the --structure's length)."),
      arg("--bpm", type=float, default=None, help="Tempo; default: the style's."),
      arg("--key", default=None, help="Key, e.g. 'A minor', 'F#', 'Bb major'."),
      arg("--style", default=None, help="genre: trap | drill | boombap | lofi | house | techno | dnb | dubstep | "
          "breakbeat | ambient | rock, or a spelling of one ('boom bap', 'lo-fi', 'drum and bass', 'edm'); "
          "default: read from the prompt."),
      arg("--structure", default=None, help="song form, e.g. 'intro:4,verse:8,hook:8,outro:4' (section:bars; "
          "sections intro verse hook drop build break outro); without --duration the take is that long."),
      arg("--backend", default=None, help="procedural | fluidsynth | musicgen (default: generators.default_backend)."),
      arg("--track", type=int, default=None, help="Stream into this track (1-16) while generating."),
      arg("--seed", type=int, default=None, help="Seed (default: random, recorded in the take's JSON)."),
      arg("--variations", type=int, default=1, help="Number of takes, seeds seed..seed+K-1."),
      arg("--priority", default="normal", help="high | normal | low"),
      arg("--midi", default=None, help="fluidsynth backend: MIDI file to render."),
      arg("--soundfont", default=None, help="fluidsynth backend: SoundFont (.sf2)."),
      arg("--format", dest="output_format", default="wav", help="wav | flac"),
      arg("--instrument", action="append", default=[], metavar="STEM=PLUGIN",
          help="Play a stem (drums, bass, chords, lead, …) with a plugin instrument (LV2 URI or name, VST3) "
               "instead of FluidSynth; repeat for more stems (procedural, fluidsynth)."),
      arg("--instrument-param", action="append", default=[], metavar="STEM.NAME=VALUE",
          help="A parameter of a stem's instrument, e.g. drums.drumkitfile=kits/tiny/drumkit.xml."),
      arg("--wait", action="store_true", help="Follow progress until the job ends; print the takes."),
      arg("--similar", type=int, nargs="?", const=5, default=None, metavar="K",
          help="First print the K (default 5) past generations whose prompts are nearest this one."))
def generate(a: argparse.Namespace) -> None:
    """Queue a generation job (streamed into --track as it is made) and print its id."""
    if a.similar:
        sim = call(a.config, "takes.similar", prompt=a.prompt, k=a.similar)
        _print_similar(sim)
    r = call(a.config, "generate", prompt=a.prompt, duration=a.duration, variations=a.variations,
             priority=a.priority, output_format=a.output_format, bpm=a.bpm, key=a.key, style=a.style,
             structure=a.structure, backend=a.backend, track=a.track, seed=a.seed,
             soundfont=local_file(a.config, a.soundfont), midi=local_file(a.config, a.midi),
             **({"instruments": _instruments(a)} if a.instrument else {}))
    if isinstance(r, dict) and isinstance(r.get("interpreted"), dict):
        note(f"heard: {r['interpreted'].get('summary', '')}")
    if not a.wait:
        show(r)
        return
    job = _follow_job(a.config, r["job_id"])
    show(job)
    if job["status"] != "done":
        raise CliExit(1)


def _follow_job(config: Optional[str], job_id: str) -> dict:
    """Show a progress bar from the job's server-sent events until it ends; a dropped connection
    (control restarted) is resumed from the last event seen."""
    import time
    import urllib.request

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from jackgen.daemon.frontends.commands import JOB_EVENTS

    call(config, "jobs.show", job_id=job_id)  # a job that does not exist: control's own message
    url = control_url(config) + JOB_EVENTS.format(job_id=job_id)
    last_id, lost_since = None, None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), transient=True, console=None) as bar:
        task = bar.add_task(f"job {job_id}", total=1.0)
        while True:
            req = urllib.request.Request(url, headers={"Last-Event-ID": last_id} if last_id else {})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:  # a keep-alive comes every 15 s
                    lost_since = None
                    for raw in resp:
                        line = raw.decode(errors="replace").strip()
                        if line.startswith("id:"):
                            last_id = line[3:].strip()
                        if not line.startswith("data:"):
                            continue
                        e = json.loads(line[5:])
                        bar.update(task, completed=e.get("progress", 0.0) if e["event"] == "progress" else
                                   (1.0 if e["event"] == "done" else None),
                                   description=f"job {job_id} {e['status']}")
                        if e["event"] in ("done", "failed", "cancelled"):
                            return call(config, "jobs.show", job_id=job_id)
            except OSError as e:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > 60:
                    fail(f"lost the connection to jackgen control while following job {job_id}: {e}", code=1)
                bar.update(task, description=f"job {job_id}: control not answering, retrying")
                time.sleep(1.0)


@verb("jobs list", arg("--dead", action="store_true", help="The dead letters: jobs that failed every attempt."),
      arg("--limit", type=int, default=100, help="At most this many (newest first)."))
def jobs_list(a: argparse.Namespace) -> None:
    """The last jobs (queued, running and finished), or with --dead the dead letters and their errors."""
    show(call(a.config, "jobs.list", limit=a.limit, dead=a.dead or None))


@verb("jobs show", arg("job_id"), arg("--follow", "-f", action="store_true", help="Wait for the end, with progress."))
def jobs_show(a: argparse.Namespace) -> None:
    """A job's status, progress, timings, attempts and takes."""
    show(_follow_job(a.config, a.job_id) if a.follow else call(a.config, "jobs.show", job_id=a.job_id))


@verb("jobs cancel", arg("job_id"))
def jobs_cancel(a: argparse.Namespace) -> None:
    """Cancel a queued or running job (a running one stops within one chunk)."""
    show(call(a.config, "jobs.cancel", job_id=a.job_id))


@verb("jobs retry", arg("job_id"))
def jobs_retry(a: argparse.Namespace) -> None:
    """Queue a failed job again (one from the dead letters, or a cancelled one), with fresh attempts."""
    show(call(a.config, "jobs.retry", job_id=a.job_id))


@verb("workers", arg("--json", action="store_true", help="Print JSON instead of a table."))
def workers(a: argparse.Namespace) -> None:
    """The live generator workers: backend, host, device, model, pid, heartbeat age."""
    ws = call(a.config, "workers")
    if a.json:
        show(ws)
        return
    if not ws:
        print("no workers are running (jackgen run starts generators.workers; `jackgen worker BACKEND` adds one)")
        return
    cols = ("backend", "host", "pid", "device", "model", "busy", "jobs_done", "heartbeat_age_s")
    rows = [[str(w.get(c) if w.get(c) is not None else "-") for c in cols] for w in ws]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(wd) for c, wd in zip(cols, widths)))
    for r in rows:
        print("  ".join(v.ljust(wd) for v, wd in zip(r, widths)))


# ------------------------------------------------------------------ MIDI
@verb("midi learn", arg("action", help="trigger | gain | pan | mute | solo | play | stop | tempo | param | bypass"),
      arg("track", type=int, nargs="?", default=None, help="Track 1-16 (not for tempo)."),
      arg("--gate", action="store_true", help="For trigger: the note-off stops the clip."),
      arg("--plugin", type=int, default=None, help="For param/bypass: the plugin's position in the chain (from 0)."),
      arg("--param", default=None, help="For param: the parameter's name (see `jackgen chain TRACK list`)."),
      arg("--timeout", type=float, default=30.0, help="Seconds to wait for a control to move."))
def midi_learn(a: argparse.Namespace) -> None:
    """Bind the next note/CC/program change that arrives to ACTION (on TRACK)."""
    note(f"move a control on your MIDI device (waiting {a.timeout:.0f} s) …")
    show(call(a.config, "midi.learn", http_timeout=a.timeout + 10, action=a.action, track=a.track, gate=a.gate,
              timeout=a.timeout, plugin=a.plugin, param=a.param))


@verb("midi map")
def midi_map(a: argparse.Namespace) -> None:
    """Show the MIDI mapping, open controllers and the last events seen."""
    show(call(a.config, "midi.map"))


# ------------------------------------------------------------------ the library
def _print_takes(rows: list[dict], total: int | None = None) -> None:
    if not rows:
        print("no takes match" if total is not None else "nothing found")
        return
    for g in rows:
        score = f"{g['score']:.3f}  " if "score" in g else ""
        bpm = f"{g['bpm']:.0f} bpm" if g.get("bpm") else "-"
        print(f"#{g['id']:<5} {score}{g['take']}  {g['session']:<12} {g['backend']:<10} {bpm:>8}  "
              f"{(g.get('key') or '-'):<9} {(g.get('style') or '-'):<9} {g.get('seconds') or 0:6.1f} s  "
              f"{(g.get('prompt') or '')[:60]}")
    if total is not None and total > len(rows):
        print(f"({len(rows)} of {total}; --offset/--limit for more)")


def _print_similar(sim: dict) -> None:
    if sim.get("mode") == "text":
        note("similar prompts by text match (the prompt-embedding model is not installed)")
    note(f"similar past generations ({len(sim.get('results', []))}):")
    _print_takes(sim.get("results", []))


LIST_ARGS = (arg("--session", default=None), arg("--backend", default=None),
             arg("--bpm", default=None, help="A tempo or a range: 140, 120-130"),
             arg("--key", default=None), arg("--style", default=None),
             arg("--since", default=None, help="Date (2026-11-30) or days ago (7d)"),
             arg("--trash", action="store_true", help="The takes in the trash instead."),
             arg("--limit", type=int, default=50), arg("--offset", type=int, default=0),
             arg("--json", action="store_true", help="Print JSON."))


def _list_fields(a: argparse.Namespace, q: str | None = None) -> dict:
    import time as _time

    f: dict[str, Any] = {"session": a.session, "backend": a.backend, "key": a.key, "style": a.style, "q": q,
                         "limit": a.limit, "offset": a.offset, "deleted": a.trash or None}
    if a.bpm:
        lo, _, hi = a.bpm.partition("-")
        try:
            f["bpm_min"], f["bpm_max"] = float(lo), float(hi or lo)
        except ValueError:
            fail(f"--bpm must be a number or a range like 120-130, got {a.bpm!r}")
    if a.since:
        try:
            f["since"] = (_time.time() - float(a.since[:-1]) * 86400 if a.since.endswith("d")
                          else _time.mktime(_time.strptime(a.since, "%Y-%m-%d")))
        except ValueError:
            fail(f"--since must be a date (2026-11-30) or days ago (7d), got {a.since!r}")
    return f


@verb("takes list", *LIST_ARGS)
def takes_list(a: argparse.Namespace) -> None:
    """The library's takes, newest first, filtered by session, backend, tempo, key, style, date."""
    r = call(a.config, "takes.list", **_list_fields(a))
    show(r) if a.json else _print_takes(r["generations"], r["total"])


@verb("takes search", arg("text", help="Words the prompt must contain."), *LIST_ARGS)
def takes_search(a: argparse.Namespace) -> None:
    """Takes whose prompt contains every word of TEXT (with the same filters as list)."""
    r = call(a.config, "takes.list", **_list_fields(a, a.text))
    show(r) if a.json else _print_takes(r["generations"], r["total"])


@verb("takes similar", arg("prompt"), arg("-k", type=int, default=5, help="How many (1-100)."),
      arg("--json", action="store_true", help="Print JSON."))
def takes_similar(a: argparse.Namespace) -> None:
    """The K past generations whose prompts mean the nearest thing to PROMPT, with scores."""
    r = call(a.config, "takes.similar", prompt=a.prompt, k=a.k)
    show(r) if a.json else _print_similar(r)


def _take_ident(s: str) -> str:
    return s[1:] if s.startswith("#") else s


@verb("takes show", arg("take", help="A take id or the library's number (#42)."))
def takes_show(a: argparse.Namespace) -> None:
    """Everything the library knows of one take: parameters, timings, files, stems."""
    show(call(a.config, "takes.show", id=_take_ident(a.take)))


@verb("takes rm", arg("take", help="A take id or the library's number (#42)."))
def takes_rm(a: argparse.Namespace) -> None:
    """Move a take's files to its session's .trash/ folder (jackgen takes restore brings them back)."""
    g = call(a.config, "takes.rm", id=_take_ident(a.take))
    note(f"take {g['take']} moved to the trash (jackgen takes restore {g['take']})")


@verb("takes restore", arg("take", help="A take id or the library's number (#42)."))
def takes_restore(a: argparse.Namespace) -> None:
    """Bring a take back from the trash."""
    g = call(a.config, "takes.restore", id=_take_ident(a.take))
    note(f"take {g['take']} restored: {g['path']}")
