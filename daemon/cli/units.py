"""Render jackgen's systemd units for this install (``jackgen install-units``).

User units (``--user``, the default recommendation: JACK usually runs in the audio
user's session) go to ``~/.config/systemd/user``; system units to
``/etc/systemd/system`` with ``User=`` and the audio group for real-time limits.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

UNITS = ("jackgen.target", "jackgen-redis.service", "jackgen-control.service", "jackgen-engine.service",
         "jackgen-worker@.service")


def jackgen_executable() -> str:
    exe = Path(sys.executable).with_name("jackgen")
    return str(exe) if exe.exists() else (shutil.which("jackgen") or f"{sys.executable} -m jackgen.daemon.cli")


def render(output: Path, user: bool, config: str | None, workdir: str, run_as: str | None = None) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    env = []
    if os.environ.get("JACK_DEFAULT_SERVER"):
        env.append(f"Environment=JACK_DEFAULT_SERVER={os.environ['JACK_DEFAULT_SERVER']}")
    values = {
        "@JACKGEN@": jackgen_executable(),
        "@CONFIG@": str(Path(config).resolve()) if config else "",
        "@WORKDIR@": str(Path(workdir).resolve()),
        "@ENVIRONMENT@": "\n".join(env),
        "@USER@": f"User={run_as}\nSupplementaryGroups=audio" if (run_as and not user) else "",
        "@SCOPE@": "--user " if user else "",
        "@WANTEDBY@": "default.target" if user else "multi-user.target",
    }
    written = []
    for name in UNITS:
        text = resources.files("jackgen.systemd").joinpath(name + ".in").read_text()
        if not config:
            text = text.replace(" --config @CONFIG@", "")
        for key, val in values.items():
            text = text.replace(key, val)
        # placeholders that rendered empty leave blank lines; keep only those before a section
        lines = text.splitlines()
        text = "\n".join(line for i, line in enumerate(lines)
                         if line.strip() or (i + 1 < len(lines) and lines[i + 1].startswith("["))) + "\n"
        path = output / name
        path.write_text(text)
        written.append(path)
    return written


def default_output(user: bool) -> Path:
    return Path.home() / ".config/systemd/user" if user else Path("/etc/systemd/system")
