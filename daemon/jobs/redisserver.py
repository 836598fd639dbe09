"""The embedded Redis: a private ``redis-server`` (Debian's) on a unix socket, for a setup with no
``[redis] url``.

It listens on ``<runtime folder>/redis.sock`` only (no TCP port, socket mode 0700), keeps its data
in ``<data folder>/redis/<instance>/`` with the append-only file on (``appendfsync everysec``: a
killed redis-server loses nothing, a power cut at most the last second; ``[redis] appendfsync =
"always"`` loses nothing either way, at some cost per write), and never evicts (a queue must not
drop jobs to save memory). ``jackgen run`` starts it before everything else and stops it last;
under systemd it is ``jackgen-redis.service`` (``jackgen redis``).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from jackgen.daemon.config import Config


def redis_server_binary() -> str:
    exe = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if exe is None:
        raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server), "
                                "or set [redis] url to a Redis server jackgen should use")
    return exe


def embedded_argv(cfg: Config) -> list[str]:
    """The command line of the embedded server (folders are made here)."""
    sock, data = cfg.redis_socket, cfg.redis_dir
    sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    return [redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(data), "--appendonly", "yes", "--appendfsync", cfg.redis.appendfsync, "--save", "",
            "--daemonize", "no", "--databases", "1", "--maxmemory-policy", "noeviction", "--loglevel", "warning",
            "--pidfile", "", "--logfile", ""]


def answers(sock: Path, timeout_s: float = 0.5) -> bool:
    """Does a Redis server answer PING on this unix socket?"""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until_answers(sock: Path, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(sock):
            return True
        time.sleep(0.02)
    return False
