"""User-facing errors, mapped once per surface (HTTP 4xx JSON, CLI exit 2, OSC /jackgen/error)."""

from __future__ import annotations

import math

N_TRACKS = 16


class JackgenError(Exception):
    """Something the user asked for cannot be done; the message says why and what to do."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFound(JackgenError):
    status = 404


class Unavailable(JackgenError):
    status = 503


def check_track(track: object) -> int:
    """1-based track number -> 0-based index, or a clear error."""
    if isinstance(track, bool) or not isinstance(track, int):
        try:
            track = int(str(track).strip())
        except ValueError:
            raise JackgenError(f"track {track!r} is not a number: tracks are 1-{N_TRACKS}") from None
    if not 1 <= track <= N_TRACKS:
        raise JackgenError(f"track {track} does not exist: tracks are 1-{N_TRACKS}")
    return track - 1


def check_finite(name: str, value: object, lo: float, hi: float, unit: str = "") -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise JackgenError(f"{name} must be a number{f' in {unit}' if unit else ''}, got {value!r}") from None
    if not math.isfinite(v):
        raise JackgenError(f"{name} must be a finite number, got {value!r}")
    if not lo <= v <= hi:
        raise JackgenError(f"{name} {v:g}{unit and ' ' + unit} is out of range: allowed {lo:g} to {hi:g}")
    return v
