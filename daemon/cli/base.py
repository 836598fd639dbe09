"""What every ``jackgen`` command shares, with nothing but the standard library: errors and exit
codes, output, where control is, and the HTTP client the remote commands talk to it with.

Exit codes: 0 ok, 1 jackgen is not reachable / an operation failed, 2 bad input (the message says
what was wrong).

Why a small HTTP client of its own: a remote command (``jackgen gain 3 -6``) should act within a
few tens of milliseconds of being typed (``bench/cli.py``). The interpreter itself takes ~40 ms
here; ``urllib.request`` and ``http.client`` take another ~30 ms to import (email parsing, ssl),
httpx ~190 ms. The requests here are one JSON object to localhost and one back, so one socket and
HTTP/1.1 with ``Connection: close`` (Content-Length or chunked answers) is all that is needed.
Server-sent events (``jobs show --follow``) still go through urllib, where start time is nothing
beside the job.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

DEFAULT_HTTP = ("127.0.0.1", 8750)
CONFIG_HELP = "TOML config file (default: $JACKGEN_CONFIG or built-in defaults)."


class CliExit(SystemExit):
    """Leave the command with an exit code (the message is already on stderr)."""


def _say(message: str, color: str) -> None:
    tty = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    sys.stderr.write(f"\033[{color}mjackgen: {message}\033[0m\n" if tty else f"jackgen: {message}\n")


def fail(message: str, code: int = 2) -> None:
    _say(message, "31")
    raise CliExit(code)


def note(message: str) -> None:
    """A line for the user on stderr (stdout stays machine-readable)."""
    _say(message, "36")


def show(data: object) -> None:
    sys.stdout.write((json.dumps(data, indent=2) if not isinstance(data, str) else data) + "\n")


def load(path: Optional[str], overrides: dict | None = None):
    """The full, validated config (pydantic): for commands that run something here."""
    from jackgen.daemon.config import ConfigError, load_config

    try:
        return load_config(path, overrides)
    except ConfigError as e:
        fail(str(e))
        raise  # unreachable


def control_address(path: Optional[str]) -> tuple[str, int]:
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
        token = section.get("token")
        if isinstance(token, str) and token and not os.environ.get("JACKGEN_TOKEN"):
            os.environ["JACKGEN_TOKEN"] = token  # sent as Authorization: Bearer (this process only)
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            load(path)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return host, port


def control_url(path: Optional[str]) -> str:
    host, port = control_address(path)
    return f"http://{host}:{port}"


class Unreachable(OSError):
    pass


def _http(host: str, port: int, method: str, path: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
    """One HTTP/1.1 exchange with ``Connection: close``: (status, body)."""
    import socket

    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise Unreachable(e.strerror or str(e)) from None
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close", "Accept: application/json"]
        token = os.environ.get("JACKGEN_TOKEN")
        if token:
            head.append(f"Authorization: Bearer {token}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        chunks = []
        while True:
            got = s.recv(65536)
            if not got:
                break
            chunks.append(got)
    finally:
        s.close()
    raw = b"".join(chunks)
    header, _, rest = raw.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise Unreachable(f"not an HTTP answer: {lines[0][:80]!r}") from None
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        out, pos = [], 0
        while True:
            end = rest.index(b"\r\n", pos)
            size = int(rest[pos:end].split(b";")[0], 16)
            if size == 0:
                break
            out.append(rest[end + 2:end + 2 + size])
            pos = end + 2 + size + 2
        rest = b"".join(out)
    elif "content-length" in fields:
        rest = rest[: int(fields["content-length"])]
    return status, rest


def request(url: str, method: str, path: str, body: dict | None = None, timeout: float = 15.0,
            quiet: bool = False, accept: tuple[int, ...] = ()) -> Any:
    """One HTTP request to control; its JSON answer, or exit with control's error message.
    With ``quiet``, an unreachable control returns None instead (the caller has a fallback)."""
    hostport = url.split("://", 1)[1]
    host, _, port = hostport.rpartition(":")
    data = None if body is None else json.dumps(body).encode()
    try:
        status, raw = _http(host, int(port), method, path, data, timeout)
    except (Unreachable, OSError) as e:
        if quiet:
            return None
        fail(f"cannot reach jackgen control at {url} ({e}): is `jackgen run` running? "
             "(see --config for host/port)", code=1)
        raise
    try:
        answer = json.loads(raw or b"null")
    except ValueError:
        answer = {"error": raw.decode(errors="replace")}
    if status >= 400 and status not in accept:
        fail(answer.get("error", str(answer)) if isinstance(answer, dict) else str(answer),
             code=2 if status < 500 else 1)
    return answer


def call(config: Optional[str], name: str, http_timeout: float = 15.0, quiet: bool = False,
         accept: tuple[int, ...] = (), **fields: Any) -> Any:
    """Run command ``name`` of the command table on the running control, over HTTP (with ``quiet``,
    None when no control answers)."""
    from jackgen.daemon.frontends.commands import http_request

    method, path, body = http_request(name, **fields)
    return request(control_url(config), method, path, body, http_timeout, quiet=quiet, accept=accept)


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
