"""The ``jackgen`` command: every verb has ``--help``.

The verbs live by kind: ``remote`` (thin calls to a running daemon over HTTP, from the command
table; argparse, so they start in tens of milliseconds), ``processes`` (run, engine, control,
worker) and ``offline`` (tools that work in this process: render, bounce, warp, record, plugins,
demo, install-units), both on Typer. ``jackgen --help`` lists them all without loading Typer.
"""

from __future__ import annotations

import sys

# The Typer verbs' one-line summaries, for the top-level help (a test keeps them equal to the
# verbs' own docstrings, so this list cannot drift from them).
LOCAL_VERBS = {
    "run": "Run everything in the foreground: Redis (embedded), control, the engine, the feeder and the workers, "
           "supervised.",
    "control": "Run the control process alone (the engine, the feeder and the workers run as their own services).",
    "engine": "Run the real-time engine (the JACK client) alone.",
    "worker": "A generator worker on the Redis queue, on this machine or another (systemd: jackgen-worker@BACKEND).",
    "render": "Render MIDI to audio with FluidSynth, offline, sounding as the `fluidsynth` CLI does.",
    "bounce": "Render the session offline (each track's clip from the start, chains, mixer, mastering EQ and "
              "true-peak limiter), faster than real time.",
    "warp": "Time-stretch a clip or take to a tempo, keeping its pitch (then `jackgen load` it).",
    "plugins": "Plugins found — VST3, LV2 (effects and instruments) and the built-ins — with every parameter's range and unit.",
    "record": "Capture SECONDS from jackgen's JACK ports to a 32-bit float WAV.",
    "demo": "End-to-end demo: JACK (dummy if none runs), jackgen, a procedural job streamed into track 1, master "
            "recorded.",
    "install-units": "Write systemd units (jackgen.target, redis, control, engine, feeder, worker@BACKEND) for this "
                     "install.",
    "db": "The library's database: migrations, and importing takes made elsewhere.",
    "logs": "Show jackgen's logs from the journal (systemd units); `jackgen run` logs to its own terminal.",
}
HIDDEN_VERBS = ("feeder", "redis")  # started by the supervisor or systemd, not by people


def top_help() -> str:
    from jackgen.daemon.cli.remote import GROUPS, VERBS

    rows = [(n, v.help.splitlines()[0]) for n, v in VERBS.items() if " " not in n]
    rows += [(g, h) for g, h in GROUPS.items()] + list(LOCAL_VERBS.items())
    width = max(len(n) for n, _ in rows)
    lines = ["usage: jackgen COMMAND [ARGS]... (jackgen COMMAND --help for each)", "",
             "Headless real-time audio host: 16 stereo JACK tracks fed live by generators.", "", "commands:"]
    lines += [f"  {n:<{width}}  {h}" for n, h in rows]
    return "\n".join(lines)


def typer_app():
    from jackgen.daemon.cli import offline, processes  # noqa: F401  (each registers its commands)
    from jackgen.daemon.cli.app import app

    return app


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(top_help())
        sys.exit(0)
    from jackgen.daemon.cli.remote import GROUPS, VERBS, run

    if argv[0] in VERBS or argv[0] in GROUPS:
        sys.exit(run(argv))
    if argv[0] not in LOCAL_VERBS and argv[0] not in HIDDEN_VERBS:
        print(f"jackgen: no command {argv[0]!r} (see jackgen --help)", file=sys.stderr)
        sys.exit(2)
    typer_app()(args=argv, prog_name="jackgen")


if __name__ == "__main__":
    main()
