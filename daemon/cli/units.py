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
         "jackgen-feeder.service", "jackgen-worker@.service", "jackgen-gpu.slice")
DROP_INS = {"jackgen-worker@musicgen.service.d/slice.conf": "jackgen-worker-musicgen-slice.conf"}


def hardening(cfg, runtime: Path, workdir: Path) -> str:
    """Sandboxing that still lets JACK's and the rings' shared memory (/dev/shm), the runtime
    folder, the data folder and the sessions work; paths that do not exist yet are skipped ("-")."""
    g = cfg.generators
    rw = [Path("/dev/shm"), runtime, cfg.data_path, Path(cfg.control.sessions_dir).resolve(), workdir,
          *(Path(d).resolve() for d in cfg.control.media_dirs),
          Path(g.musicgen_cache_dir).expanduser() if g.musicgen_cache_dir else Path.home() / ".cache"]
    seen, paths = set(), []
    for p in rw:
        if str(p) not in seen:
            seen.add(str(p))
            paths.append(f"-{p}")
    return "\n".join(["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only",
                      "ProtectKernelTunables=yes", "ProtectControlGroups=yes", "RestrictSUIDSGID=yes",
                      "LockPersonality=yes", f"ReadWritePaths={' '.join(paths)}"])


def jackgen_executable() -> str:
    exe = Path(sys.executable).with_name("jackgen")
    return str(exe) if exe.exists() else (shutil.which("jackgen") or f"{sys.executable} -m jackgen.daemon.cli")


def render(output: Path, user: bool, config: str | None, workdir: str, run_as: str | None = None,
           gpu_memory_max: str = "24G") -> list[Path]:
    from jackgen.daemon.config import load_config

    output.mkdir(parents=True, exist_ok=True)
    # every unit finds the others' sockets in the service manager's runtime folder (%t: /run, or
    # /run/user/UID for --user units); system units get /run/jackgen made for their user
    env = ["Environment=JACKGEN_RUNTIME_DIR=%t"]
    if not user:
        env += ["RuntimeDirectory=jackgen", "RuntimeDirectoryPreserve=yes"]
    if os.environ.get("JACK_DEFAULT_SERVER"):
        env.append(f"Environment=JACK_DEFAULT_SERVER={os.environ['JACK_DEFAULT_SERVER']}")
    old_rt = os.environ.get("JACKGEN_RUNTIME_DIR")
    os.environ["JACKGEN_RUNTIME_DIR"] = f"/run/user/{os.getuid()}" if user else "/run"
    try:
        cfg = load_config(config)
        runtime = cfg.runtime_path.parent
    finally:
        if old_rt is None:
            os.environ.pop("JACKGEN_RUNTIME_DIR", None)
        else:
            os.environ["JACKGEN_RUNTIME_DIR"] = old_rt
    values = {
        "@HARDENING@": hardening(cfg, runtime, Path(workdir).resolve()),
        "@GPU_MEMORY_MAX@": gpu_memory_max,
        "@GPU_MEMORY_HIGH@": gpu_memory_max,
        "@JACKGEN@": jackgen_executable(),
        "@CONFIG@": str(Path(config).resolve()) if config else "",
        "@WORKDIR@": str(Path(workdir).resolve()),
        "@ENVIRONMENT@": "\n".join(env),
        "@USER@": f"User={run_as}\nSupplementaryGroups=audio" if (run_as and not user) else "",
        "@SCOPE@": "--user " if user else "",
        "@WANTEDBY@": "default.target" if user else "multi-user.target",
    }
    written = []
    for name, template in [*((u, u) for u in UNITS), *DROP_INS.items()]:
        text = resources.files("jackgen.systemd").joinpath(template + ".in").read_text()
        if not config:
            text = text.replace(" --config @CONFIG@", "")
        for key, val in values.items():
            text = text.replace(key, val)
        # placeholders that rendered empty leave blank lines; keep only those before a section
        lines = text.splitlines()
        text = "\n".join(line for i, line in enumerate(lines)
                         if line.strip() or (i + 1 < len(lines) and lines[i + 1].startswith("["))) + "\n"
        path = output / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def default_output(user: bool) -> Path:
    return Path.home() / ".config/systemd/user" if user else Path("/etc/systemd/system")
