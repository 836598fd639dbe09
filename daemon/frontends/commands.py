"""The command table: every command control takes, declared once.

Like scsynth's flat command reference, one entry per command says its name, its typed arguments
(a pydantic model), what it does on control, and where each front end finds it: its OSC address
(with the order of its positional arguments and its reply), its HTTP method and route, and the CLI
verb that calls it. The OSC dispatcher (``frontends.osc``), the HTTP routes (``frontends.http``) and
the remote CLI commands (``cli.main``) are all built from this table, so an argument is checked in
one place. Types are checked here; ranges, existence and file policy are checked once more inside
control, which is the only thing that knows them (a track number, a plugin's parameter range).

Kept free of jackgen's heavier modules (control, JACK, numpy): the CLI imports it to find the route
of a remote command, and ``jackgen --help`` must start quickly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from jackgen.common.errors import JackgenError


# ------------------------------------------------------------------ the table
class Call(NamedTuple):
    """What a front end hands a command besides its arguments."""

    at_frame: int | None = None  # an OSC bundle's future timetag as an engine frame
    sender: Any = None  # the OSC sender (replies to it later, e.g. when a job ends); None elsewhere
    subscribe: Callable[[bool], None] | None = None  # (un)subscribes the OSC sender to notifications


class Command(NamedTuple):
    name: str
    help: str
    args: str  # the name of its model in frontends.args (loaded when first checked: pydantic is slow to import)
    run: Callable[[Any, Any, Call], Any]  # (control, args, call) -> a dict (or an awaitable of one)
    osc: str | None = None  # address, {field} for path parts ({index} is a number)
    osc_args: tuple[str, ...] = ()  # fields taken from the OSC arguments, in order
    osc_required: int | None = None  # how many of them must be there (default: all)
    osc_parse: Callable[[str, tuple], dict] | None = None  # for commands whose arguments are not fixed
    osc_reply: Callable[[str, Any, Any], tuple | None] | None = None  # (address, args, result) -> (address, *args)
    timed: bool = False  # an OSC bundle's timetag sets its frame
    http: tuple[str, str] | None = None  # (method, route); {field} parts come from the path
    http_status: int = 200
    cli: str | None = None  # the `jackgen` verb that calls it over HTTP
    http_status_of: Callable[[Any], int] | None = None  # the HTTP status a result answers with (health: 503)

    def fields_in_path(self, route: str) -> list[str]:
        return re.findall(r"{(\w+)}", route)


def _done(addr: str, _args: Any, _r: Any) -> tuple:
    return ("/jackgen/done", addr)


def _status_reply(addr: str, _args: Any, st: dict) -> tuple:
    playing = sum(1 for t in st["tracks"] if t["state"] == "playing")
    return ("/jackgen/status.reply", "xruns", st["xruns"], "underruns", st["underruns"], "dsp_load",
            float(st["dsp_load"]), "sample_rate", st["sample_rate"], "block_size", st["block_size"],
            "tracks_playing", playing, "jobs", len(st["jobs"]), "tempo", float(st["tempo_bpm"]),
            "engine", 1 if st["engine_running"] else 0)


def _play_osc(addr: str, args: tuple) -> dict:
    """[s file] [s now|beat|bar], in either order."""
    if len(args) > 2:
        raise JackgenError(f"{addr} takes [file] [now|beat|bar], got {len(args)} arguments")
    out: dict = {}
    for a in args:
        if a in ("now", "beat", "bar"):
            out["at"] = a
        elif isinstance(a, str) and a:
            out["file"] = a
        else:
            raise JackgenError(f"{addr}: arguments are [s file] [s now|beat|bar], got {a!r}")
    return out


def _chain_add_osc(addr: str, args: tuple) -> dict:
    """s plugin, then s name / f value pairs."""
    if not args or not isinstance(args[0], str) or len(args) % 2 == 0:
        raise JackgenError(f"{addr} takes s plugin, then name/value pairs")
    params = {}
    for k, v in zip(args[1::2], args[2::2]):
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise JackgenError(f"{addr}: parameters come as s name, f value pairs")
        params[k] = v
    return {"plugin": args[0], "params": params}


def _osc_job_keys() -> dict[str, tuple[type, ...]]:
    """The job fields an OSC message may carry as key/value pairs, with the OSC types each takes:
    read off the job's own model (``JobSpec``), so OSC keeps no job schema of its own."""
    import dataclasses

    from jackgen.generators.job import JobSpec

    kinds = {"int": (int,), "float": (int, float), "str": (str,)}
    out = {}
    for f in dataclasses.fields(JobSpec):
        base = str(f.type).split("|")[0].strip()
        if f.name not in ("prompt", "duration_s") and base in kinds:
            out[f.name] = kinds[base]
    return out


def _generate_osc(addr: str, args: tuple) -> dict:
    """s prompt, f seconds, then key/value pairs (``bpm`` f, ``key`` s, …); the job's model checks them."""
    if len(args) < 2 or not isinstance(args[0], str) or isinstance(args[1], bool) or \
            not isinstance(args[1], (int, float)):
        raise JackgenError(f"{addr} takes s prompt, f seconds, then key/value pairs (bpm f, key s, style s, "
                           "track i, backend s, seed i, variations i)")
    rest = args[2:]
    if len(rest) % 2:
        raise JackgenError(f"{addr}: key/value pairs come in twos; {rest[-1]!r} has no value")
    keys = _osc_job_keys()
    req: dict = {"prompt": args[0], "duration": float(args[1])}
    for k, v in zip(rest[::2], rest[1::2]):
        if not isinstance(k, str) or k not in keys:
            raise JackgenError(f"{addr}: unknown key {k!r}; known: {', '.join(keys)}")
        if isinstance(v, bool) or not isinstance(v, keys[k]):
            raise JackgenError(f"{addr}: {k} must be {'/'.join(t.__name__ for t in keys[k])}, got {type(v).__name__}")
        req[k] = v
    return req


def _learned(addr: str, _a: Any, r: dict) -> tuple:
    b = r["binding"]
    return ("/jackgen/done", addr, f"{b['type']} {b['number']} ch {b['channel'] or 'any'} -> "
                                   f"{b['action']} {b['track'] or ''}".strip())


async def _generate(c: Any, a: Any, call: Call) -> dict:
    sender = call.sender

    def tell_sender(job) -> None:  # OSC: /jackgen/done (or /jackgen/error) when the job ends
        if job.status == "done":
            sender.reply("/jackgen/done", "/jackgen/generate", job.id)
        else:
            sender.reply("/jackgen/error", "/jackgen/generate", f"job {job.id} {job.status}: {job.error or ''}".strip())

    return await c.jobs.submit(a.model_dump(), on_final=tell_sender if sender is not None else None)


def _notify(c: Any, a: Any, call: Call) -> dict:
    if call.subscribe is not None:
        call.subscribe(a.on)
    return {"notify": a.on}


def _master_eq(c: Any, a: Any, call: Call) -> dict:
    band = {"band": a.band, "type": a.type, "freq": a.freq, "gain_db": a.gain_db}
    if a.q is not None:
        band["q"] = a.q
    return c.set_master(eq=[band])


_T = "/jackgen/track/{track}"
_API_T = "/api/tracks/{track}"

COMMANDS: tuple[Command, ...] = (
    Command("gain", "Set a track's fader in dB (-120 .. +24), smoothed over 10 ms.", "GainArgs",
            lambda c, a, k: c.set_gain(a.track, a.db, at_frame=k.at_frame),
            osc=f"{_T}/gain", osc_args=("db",), timed=True, http=("POST", f"{_API_T}/gain"), cli="gain"),
    Command("pan", "Set a track's balance (-1 .. 1; centre is unity on both channels).", "PanArgs",
            lambda c, a, k: c.set_pan(a.track, a.pan, at_frame=k.at_frame),
            osc=f"{_T}/pan", osc_args=("pan",), timed=True, http=("POST", f"{_API_T}/pan"), cli="pan"),
    Command("mute", "Mute or unmute a track.", "FlagArgs",
            lambda c, a, k: c.set_flag("mute", a.track, a.on, at_frame=k.at_frame),
            osc=f"{_T}/mute", osc_args=("on",), timed=True, http=("POST", f"{_API_T}/mute"), cli="mute"),
    Command("solo", "Solo or unsolo a track (solo-in-place).", "FlagArgs",
            lambda c, a, k: c.set_flag("solo", a.track, a.on, at_frame=k.at_frame),
            osc=f"{_T}/solo", osc_args=("on",), timed=True, http=("POST", f"{_API_T}/solo"), cli="solo"),
    Command("load", "Arm a clip on a track; a trigger starts it on its exact frame.", "LoadArgs",
            lambda c, a, k: c.load(a.track, a.file), osc=f"{_T}/load", osc_args=("file",),
            osc_reply=lambda addr, a, r: ("/jackgen/done", addr, r["armed"]), http=("POST", f"{_API_T}/load"),
            cli="load"),
    Command("play", "Stream a file (or the armed clip) into a track, now or on the next beat or bar.", "PlayArgs",
            lambda c, a, k: c.play(a.track, a.file, k.at_frame if k.at_frame is not None else a.at),
            osc=f"{_T}/play", osc_parse=_play_osc, timed=True,
            osc_reply=lambda addr, a, r: ("/jackgen/done", addr, r["stream"] or "", r["at_frame"]),
            http=("POST", f"{_API_T}/play"), cli="play"),
    Command("stop", "Fade out and stop a track, now or on the next beat or bar.", "StopArgs",
            lambda c, a, k: c.stop_track(a.track, k.at_frame if k.at_frame is not None else a.at),
            osc=f"{_T}/stop", osc_args=("at",), osc_required=0, timed=True, http=("POST", f"{_API_T}/stop"),
            cli="stop"),
    Command("live", "Play a track's instrument from live MIDI (channel N → track N) at a fixed latency, or stop.",
            "LiveArgs", lambda c, a, k: c.live(a.track, a.on),
            osc=f"{_T}/live", osc_args=("on",), osc_required=0, http=("POST", f"{_API_T}/live"), cli="live"),
    Command("tempo", "Set the tempo (BPM) without moving the beat that is playing.", "TempoArgs",
            lambda c, a, k: c.set_tempo(a.bpm), osc="/jackgen/tempo", osc_args=("bpm",), http=("POST", "/api/tempo"),
            cli="tempo"),
    Command("master", "The mastering section: makeup gain and EQ bands.", "MasterArgs",
            lambda c, a, k: c.set_master(a.gain_db, a.eq), http=("POST", "/api/master"), cli="master"),
    Command("master.show", "The mastering section's settings, chain and latency.", "NoArgs",
            lambda c, a, k: c.master_info(), http=("GET", "/api/master"), cli="master"),
    Command("master.gain", "The master's makeup gain in dB.", "MasterGainArgs",
            lambda c, a, k: c.set_master(gain_db=a.gain_db), osc="/jackgen/master/gain", osc_args=("gain_db",)),
    Command("master.eq", "One master EQ band: i band (1-4), s type, f freq, f gain_db [, f q].", "MasterEqArgs",
            _master_eq, osc="/jackgen/master/eq", osc_args=("band", "type", "freq", "gain_db", "q"), osc_required=4),
    Command("transport", "Start or stop the JACK transport (Ardour follows it).", "TransportArgs",
            lambda c, a, k: c.transport(a.action), osc="/jackgen/transport/{action}",
            http=("POST", "/api/transport/{action}"), cli="transport"),
    Command("status", "xruns, underruns, DSP load, tracks, processes, jobs.", "NoArgs",
            lambda c, a, k: c.status(), osc="/jackgen/status", osc_reply=_status_reply, http=("GET", "/api/status"),
            cli="status"),
    Command("tracks", "Every track's state.", "NoArgs", lambda c, a, k: c.status()["tracks"],
            http=("GET", "/api/tracks")),
    Command("health", "Health of each part: JACK server, engine, Redis, database, feeder, workers, disk, GPU; "
            "HTTP 503 naming the failing parts.", "NoArgs", lambda c, a, k: c.health(),
            http=("GET", "/health"), cli="health", http_status_of=lambda r: 503 if r.get("failing") else 200),
    Command("takes.similar", "The past generations whose prompts are nearest a prompt, with scores.", "SimilarArgs",
            lambda c, a, k: _lib(c, "similar", a.prompt, a.k), http=("GET", "/api/generations/similar"), cli="takes similar"),
    Command("takes.list", "The library's takes, newest first: filter by session, backend, bpm range, key, style, "
            "words in the prompt, date; paged.", "GenerationsArgs", lambda c, a, k: _takes_list(c, a), http=("GET", "/api/generations"),
            cli="takes list"),
    Command("takes.show", "One take of the library: every parameter, timing, file and stem.", "GenerationArgs",
            lambda c, a, k: _lib(c, "get", a.id), http=("GET", "/api/generations/{id}"), cli="takes show"),
    Command("takes.rm", "Move a take's files to the session's trash (.trash/); `takes restore` brings them back.",
            "GenerationArgs", lambda c, a, k: _lib(c, "delete", a.id), http=("DELETE", "/api/generations/{id}"),
            cli="takes rm"),
    Command("takes.restore", "Bring a take back from the trash.", "GenerationArgs",
            lambda c, a, k: _lib(c, "restore", a.id), http=("POST", "/api/generations/{id}/restore"),
            cli="takes restore"),
    Command("notify", "Subscribe the sender to meters, track states and job progress (0 to stop).", "NotifyArgs",
            _notify, osc="/jackgen/notify", osc_args=("on",), osc_required=0, osc_reply=_done),
    Command("sync", "Answer once the engine has applied everything sent before.", "SyncArgs",
            lambda c, a, k: _synced(c, a), osc="/jackgen/sync", osc_args=("id",), osc_required=0,
            osc_reply=lambda addr, a, r: ("/jackgen/synced", a.id), http=("POST", "/api/sync")),
    Command("session.save", "Save the session (under a new name: save as).", "SessionSaveArgs",
            lambda c, a, k: c.save_session_as(a.name), osc="/jackgen/session/save", osc_args=("name",),
            osc_required=0, osc_reply=lambda addr, a, r: ("/jackgen/done", addr, r["session"]),
            http=("POST", "/api/session/save")),
    Command("session.load", "Load a saved session by name.", "SessionLoadArgs",
            lambda c, a, k: c.load_session_named(a.name), osc="/jackgen/session/load", osc_args=("name",),
            osc_reply=lambda addr, a, r: ("/jackgen/done", addr, r["session"]), http=("POST", "/api/session/load")),
    Command("session.info", "The running session: its name and folder, and control's config with absolute "
            "folders (what the offline commands use while a daemon runs).", "NoArgs",
            lambda c, a, k: {"session": c.session, "session_dir": str(c.session_dir), "config": c.cfg.resolved()},
            http=("GET", "/api/session")),
    Command("midi.learn", "Bind the next MIDI control that moves to an action.", "LearnArgs",
            lambda c, a, k: c.midi_learn(a.action, a.track, a.gate, a.timeout, a.plugin, a.param),
            osc="/jackgen/midi/learn", osc_args=("action", "track", "plugin", "param"), osc_required=1,
            osc_reply=_learned, http=("POST", "/api/midi/learn"), cli="midi learn"),
    Command("midi.map", "The MIDI mapping, open controllers and the last events.", "NoArgs",
            lambda c, a, k: c.midi_map(), http=("GET", "/api/midi/map"), cli="midi map"),
    Command("generate", "Queue a generation job (streamed into its track while it is made).", "GenerateArgs",
            _generate, osc="/jackgen/generate", osc_parse=_generate_osc,
            osc_reply=lambda addr, a, r: ("/jackgen/job", r["job_id"], r["status"]),
            http=("POST", "/api/music-generation"), http_status=202, cli="generate"),
    Command("jobs.list", "The last jobs (status, progress, takes), or the dead letters with their errors.",
            "JobListArgs", lambda c, a, k: c.jobs.list(a.limit, a.dead), http=("GET", "/api/jobs"),
            cli="jobs list"),
    Command("jobs.show", "A job's status, progress, timings, attempts and takes.", "JobArgs",
            lambda c, a, k: c.jobs.get(a.job_id), http=("GET", "/api/jobs/{job_id}"), cli="jobs show"),
    Command("jobs.retry", "Queue a failed (or dead-lettered, or cancelled) job again.", "JobArgs",
            lambda c, a, k: c.jobs.retry(a.job_id), osc="/jackgen/job/retry", osc_args=("job_id",),
            osc_reply=lambda addr, a, r: ("/jackgen/job", r["job_id"], r["status"]),
            http=("POST", "/api/jobs/{job_id}/retry"), cli="jobs retry"),
    Command("workers", "The live generator workers: backend, host, device, model, pid, heartbeat age.", "NoArgs",
            lambda c, a, k: c.jobs.workers(), http=("GET", "/api/workers"), cli="workers"),
    Command("jobs.cancel", "Cancel a queued or running job.", "JobArgs",
            lambda c, a, k: _cancelled(c, a), osc="/jackgen/job/cancel", osc_args=("job_id",),
            osc_reply=lambda addr, a, r: ("/jackgen/job", r["job_id"], r["status"]),
            http=("DELETE", "/api/jobs/{job_id}"), cli="jobs cancel"),
    Command("chain.list", "A chain's plugins, parameters, bypass and latency.", "TrackArgs",
            lambda c, a, k: c.chain_list(a.track), http=("GET", f"{_API_T}/chain"), cli="chain list"),
    Command("chain.add", "Append a plugin (VST3 name or path, or a built-in) to a chain.", "ChainAddArgs",
            lambda c, a, k: c.chain_add(a.track, a.plugin, a.params, a.index), osc=f"{_T}/chain/add",
            osc_parse=_chain_add_osc, osc_reply=lambda addr, a, r: ("/jackgen/done", addr, r["index"]),
            http=("POST", f"{_API_T}/chain/add"), cli="chain add"),
    Command("chain.remove", "Remove a plugin from a chain.", "ChainIndexArgs",
            lambda c, a, k: c.chain_remove(a.track, a.index), osc=f"{_T}/chain/remove", osc_args=("index",),
            osc_reply=_done, http=("POST", f"{_API_T}/chain/remove"), cli="chain remove"),
    Command("chain.move", "Move a plugin to another place in its chain.", "ChainMoveArgs",
            lambda c, a, k: c.chain_move(a.track, a.index, a.to), http=("POST", f"{_API_T}/chain/move"),
            cli="chain move"),
    Command("chain.bypass", "Bypass a plugin (crossfaded) or bring it back.", "ChainBypassArgs",
            lambda c, a, k: c.chain_bypass(a.track, a.index, a.on, at_frame=k.at_frame),
            osc=f"{_T}/chain/{{index}}/bypass", osc_args=("on",), timed=True,
            http=("POST", f"{_API_T}/chain/{{index}}/bypass"), cli="chain bypass"),
    Command("chain.param", "Set a plugin parameter (glides over 20 ms).", "ChainParamArgs",
            lambda c, a, k: c.chain_param(a.track, a.index, a.name, a.value, at_frame=k.at_frame),
            osc=f"{_T}/chain/{{index}}/{{name}}", osc_args=("value",), timed=True,
            http=("POST", f"{_API_T}/chain/{{index}}/param"), cli="chain set"),
)

BY_NAME = {c.name: c for c in COMMANDS}
JOB_EVENTS = "/api/jobs/{job_id}/events"  # a job's server-sent events: a stream, so a route of its own


def _lib(c: Any, method: str, *args: Any):
    """A library method, run in the library's thread (503 while the database is not open)."""
    lib = c.library.lib
    return c.library.call(getattr(lib, method) if lib is not None else None, *args)


async def _takes_list(c: Any, a: Any) -> dict:
    from jackgen.daemon.library.store import Filters

    f = Filters(session=a.session, backend=a.backend, bpm_min=a.bpm_min, bpm_max=a.bpm_max, key=a.key,
                style=a.style, text=a.q, since=a.since, until=a.until, deleted=a.deleted)
    total, rows = await _lib(c, "query", f, a.limit, a.offset)
    return {"total": total, "offset": a.offset, "limit": a.limit, "generations": rows}


async def _synced(c: Any, a: Any) -> dict:
    return {"frame_time": await c.sync()}


async def _cancelled(c: Any, a: Any) -> dict:
    return await c.jobs.cancel(a.job_id)


# ------------------------------------------------------------------ checking arguments
_MODELS: list = []  # frontends.args, once loaded (pydantic: only the daemon ever checks here, not the CLI)


def check_args(cmd: Command, data: dict, surface: str, where: str) -> Any:
    """``data`` as ``cmd``'s arguments, or a JackgenError phrased for the surface (OSC or HTTP)."""
    if not _MODELS:
        from jackgen.daemon.frontends import args

        _MODELS.append(args)
    models = _MODELS[0]
    try:
        return getattr(models, cmd.args).model_validate(data)
    except models.ValidationError as e:
        errors = e.errors()
        typed = [x for x in errors if isinstance((x.get("ctx") or {}).get("error"), models.ArgError)]
        err = (typed or errors)[0]  # an argument type's own words first (a union adds pydantic's)
        name = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "arguments"
        if err["type"] == "missing":
            raise JackgenError(f"missing field '{name}'" if surface == "http" else f"{where} needs {name}") from None
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, models.ArgError):
            v = cause.value
            if surface == "osc":
                raise JackgenError(f"{where} needs {cause.expected} for {name}, got {type(v).__name__} {v!r}") from None
            raise JackgenError(f"{name} must be {cause.expected}, got {v!r}") from None
        raise JackgenError(f"{name}: {err['msg']}") from None


# ------------------------------------------------------------------ OSC addresses
def _osc_pattern(address: str) -> re.Pattern:
    parts = []
    for piece in re.split(r"({\w+})", address):
        m = re.fullmatch(r"{(\w+)}", piece)
        if not m:
            parts.append(re.escape(piece))
        elif m.group(1) == "index":
            parts.append(r"(?P<index>\d+)")
        elif m.group(1) == "name":
            parts.append(r"(?P<name>[A-Za-z0-9_]+)")
        else:
            parts.append(f"(?P<{m.group(1)}>[^/]+)")
    return re.compile("^" + "".join(parts) + "$")


_OSC_TABLE: list[tuple[re.Pattern, Command]] = []  # compiled on first use: the CLI never needs it
_ROUTES: dict[str, tuple[Command, dict] | None] = {}  # address -> match: a fader flood repeats a few addresses
ROUTE_CACHE_SIZE = 4096


def match_osc(address: str) -> tuple[Command, dict] | None:
    """The command an OSC address names and the arguments its path carries (first match wins:
    ``chain/<i>/bypass`` comes before ``chain/<i>/<param>``). The result is shared: do not change it."""
    try:
        return _ROUTES[address]
    except KeyError:
        pass
    if len(_ROUTES) >= ROUTE_CACHE_SIZE:
        _ROUTES.clear()  # bounded: a client inventing addresses cannot grow it
    found = _ROUTES[address] = _match_osc(address)
    return found


def _match_osc(address: str) -> tuple[Command, dict] | None:
    if not _OSC_TABLE:
        _OSC_TABLE.extend((_osc_pattern(c.osc), c) for c in COMMANDS if c.osc)
    for rx, cmd in _OSC_TABLE:
        m = rx.match(address)
        if m:
            parts = m.groupdict()
            if "index" in parts:
                parts["index"] = int(parts["index"])
            return cmd, parts
    return None


def osc_arguments(cmd: Command, address: str, args: tuple) -> dict:
    """An OSC message's positional arguments as named fields."""
    if cmd.osc_parse is not None:
        return cmd.osc_parse(address, args)
    total = len(cmd.osc_args)
    need = total if cmd.osc_required is None else cmd.osc_required
    if not need <= len(args) <= total:
        want = f"{total}" if need == total else f"{need} to {total}"
        raise JackgenError(f"{address} takes {want} argument{'s' if total != 1 else ''}, got {len(args)}")
    return dict(zip(cmd.osc_args, args))


def cli_verbs() -> dict[str, list[Command]]:
    """The remote CLI verbs and the commands behind them."""
    out: dict[str, list[Command]] = {}
    for c in COMMANDS:
        if c.cli:
            out.setdefault(c.cli, []).append(c)
    return out


def http_request(name: str, **fields: Any) -> tuple[str, str, dict | None]:
    """(method, path, JSON body) that runs command ``name`` over HTTP: what the remote CLI sends."""
    cmd = BY_NAME[name]
    assert cmd.http is not None, name
    method, route = cmd.http
    in_path = cmd.fields_in_path(route)
    path = route.format(**{k: fields[k] for k in in_path})
    body = {k: v for k, v in fields.items() if k not in in_path and v is not None}
    if method == "GET" and body:  # GET takes its options in the query string
        from urllib.parse import urlencode

        path += "?" + urlencode({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in body.items()})
    return method, path, (body if method in ("POST", "PUT") else None)
