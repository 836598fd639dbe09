"""Files written so that a crash leaves the old version or the new one, never half of one."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


SESSION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_session_name(name: object) -> bool:
    """1-64 letters, digits, '_', '-' or '.', starting with a letter or digit, and no '..'."""
    return isinstance(name, str) and bool(SESSION_NAME_RE.match(name)) and ".." not in name


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """A JSON file's data, or None when it is missing, unreadable or not JSON (said in the log by the caller)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # disk full, say: the old version stays, and no half file is left
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_failure(path: Path | str, e: BaseException) -> str:
    """What a failed write of ``path`` means, said plainly: a full disk names its folder and what is
    free (libsndfile reports ENOSPC only as "System error.")."""
    import errno
    import shutil

    folder = Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < 1 << 20)
    if full:
        left = f"{free / 1e6:.1f} MB free" if free is not None else "no space left"
        return f"disk full: cannot write {Path(path).name} in {folder} ({left}); free some space and try again"
    return f"cannot write {path}: {e}"


class DiskFull(OSError):
    """A write failed for want of space (or another I/O error), said plainly by ``write_failure``."""
