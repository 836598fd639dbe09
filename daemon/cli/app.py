"""The ``jackgen`` Typer app and what its commands share: errors and exit codes, output, the config,
and the small HTTP client the remote commands use to talk to a running control process.

Exit codes: 0 ok, 1 jackgen is not reachable / an operation failed, 2 bad input (the message says
what was wrong). Only the standard library and Typer are imported at start: a remote command such
as ``jackgen gain 3 -6`` should act within a few tens of milliseconds (``bench/cli.py`` measures
it), so the config model (pydantic), HTTP libraries and everything else load where they are used.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import typer

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
DEFAULT_HTTP = ("127.0.0.1", 8750)


def setup_logging(level: str = "INFO") -> None:
    import logging

    logging.basicConfig(
        level=os.environ.get("JACKGEN_LOG_LEVEL", level),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"jackgen: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A line for the user on stderr (stdout stays machine-readable)."""
    typer.secho(f"jackgen: {message}", fg=typer.colors.CYAN, err=True)


def load(path: Optional[str], overrides: dict | None = None):
    """The full, validated config (pydantic): for commands that run something here."""
    from jackgen.daemon.config import ConfigError, load_config

    try:
        return load_config(path, overrides)
    except ConfigError as e:
        fail(str(e))
        raise  # unreachable


def control_url(path: Optional[str]) -> str:
    """Where control's HTTP API is, read straight from the TOML file (the config model is not needed
    to find one host and port); a file the full model would refuse is reported as it would be."""
    path = path or os.environ.get("JACKGEN_CONFIG") or None
    host, port = DEFAULT_HTTP
    if path:
        import tomllib

        try:
            with open(path, "rb") as f:
                section = tomllib.load(f).get("control", {})
        except (OSError, tomllib.TOMLDecodeError):
            load(path)  # names the problem and exits
            raise
        host, port = section.get("http_host", host), section.get("http_port", port)
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            load(path)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def request(url: str, method: str, path: str, body: dict | None = None, timeout: float = 15.0,
            quiet: bool = False) -> Any:
    """One HTTP request to control; its JSON answer, or exit with control's error message.
    With ``quiet``, an unreachable control returns None instead (the caller has a fallback)."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"content-type": "application/json"} if data is not None else {})
    token = os.environ.get("JACKGEN_TOKEN")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            msg = json.loads(raw).get("error") or raw.decode(errors="replace")
        except (ValueError, AttributeError):
            msg = raw.decode(errors="replace")
        fail(msg, code=2 if e.code < 500 else 1)
    except (urllib.error.URLError, OSError) as e:
        if quiet:
            return None
        reason = getattr(e, "reason", e)
        fail(f"cannot reach jackgen control at {url} ({reason}): is `jackgen run` running? "
             "(see --config for host/port)", code=1)
    raise AssertionError("unreachable")


def call(config: Optional[str], name: str, http_timeout: float = 15.0, quiet: bool = False, **fields: Any) -> Any:
    """Run command ``name`` of the command table on the running control, over HTTP (with ``quiet``,
    None when no control answers)."""
    from jackgen.daemon.frontends.commands import http_request

    method, path, body = http_request(name, **fields)
    return request(control_url(config), method, path, body, http_timeout, quiet=quiet)


def show(data: object) -> None:
    typer.echo(json.dumps(data, indent=2) if not isinstance(data, str) else data)


def running_config(config: Optional[str], session: Optional[str] = None, overrides: dict | None = None,
                   announce: bool = True):
    """(config, session name) for an offline command (bounce, warp, record): while a daemon answers
    at the config's address, its own config and session, whichever folder this runs from (control
    first writes the session, so what is rendered is what plays); otherwise this config."""
    info = call(config, "session.info", http_timeout=2.0, quiet=True)
    if info is not None:
        from jackgen.daemon.config import Config

        data = info["config"]
        for dotted, value in (overrides or {}).items():
            node = data
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        name = session or info["session"]
        if name == info["session"]:
            call(config, "session.save", http_timeout=5.0)
        if announce:
            note(f"using the running jackgen's session '{name}' ({info['session_dir'].rsplit('/', 1)[0]}/{name})")
        return Config.model_validate(data), name
    cfg = load(config, overrides)
    return cfg, session or cfg.control.session
