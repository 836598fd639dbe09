"""The typed arguments of every command in the command table (``frontends.commands``).

One pydantic model per command. Each argument type checks the type only and says what it expected
(``ArgError``), so each front end can phrase the error its way (OSC: "<address> needs a number",
HTTP: "db must be a number"); ranges, existence and file policy are checked inside control.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

__all__ = ["ArgError", "Args", "ValidationError"]  # and one model per command


class ArgError(ValueError):
    """An argument of the wrong type: ``expected`` is what it must be, phrased for any surface."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"must be {expected}")
        self.expected = expected
        self.value = value


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArgError("a number", v)
    if not math.isfinite(v):
        raise ArgError("a finite number", v)
    return float(v)


def _integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ArgError("a whole number", v)
    return v


def _flag(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("on", "1", "true", "yes", "off", "0", "false", "no"):
        return v.lower() in ("on", "1", "true", "yes")
    raise ArgError("on or off (0 or 1)", v)


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ArgError("a string", v)
    return v


def _audio_file(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ArgError("a path to an audio file (WAV, FLAC, OGG) or a take id", v)
    return v


def _value(v: Any) -> float | str:
    """A plugin parameter's value: a number, or the name of one of its choices."""
    if isinstance(v, str) and v:
        return v
    return _number(v)


def _params(v: Any) -> dict:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise ArgError("an object of parameter name -> value", v)
    return v


Number = Annotated[float, BeforeValidator(_number)]
Params = Annotated[dict, BeforeValidator(_params)]
Integer = Annotated[int, BeforeValidator(_integer)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Text = Annotated[str, BeforeValidator(_text)]
AudioFile = Annotated[str, BeforeValidator(_audio_file)]
Value = Annotated[Any, BeforeValidator(_value)]
When = Any  # now | beat | bar | a JACK frame: control resolves it (it knows the clock and the tempo map)
Track = Any  # 1-16 (or "master" for chains): control checks it and names the range


class Args(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class NoArgs(Args):
    pass


class TrackArgs(Args):
    track: Track


class GainArgs(TrackArgs):
    db: Number


class PanArgs(TrackArgs):
    pan: Number


class FlagArgs(TrackArgs):
    on: Flag


class LiveArgs(TrackArgs):
    on: Flag = True


class LoadArgs(TrackArgs):
    file: AudioFile


class PlayArgs(TrackArgs):
    file: AudioFile | None = None
    at: When = "now"


class StopArgs(TrackArgs):
    at: When = "now"


class TempoArgs(Args):
    bpm: Number


class MasterArgs(Args):
    gain_db: Number | None = None
    eq: Any = None  # a band or a list of bands; control checks each field against the EQ's ranges


class MasterGainArgs(Args):
    gain_db: Number


class MasterEqArgs(Args):
    band: Integer
    type: Text
    freq: Number
    gain_db: Number
    q: Number | None = None


class TransportArgs(Args):
    action: Text


class SyncArgs(Args):
    id: Integer = 0


class SessionSaveArgs(Args):
    name: Text | None = None


class SessionLoadArgs(Args):
    name: Text


class LearnArgs(Args):
    action: Text
    track: Track = None
    gate: Flag = False
    timeout: Number = 30.0
    plugin: Integer | None = None
    param: Text | None = None


class GenerateArgs(Args):
    """A job request as JSON: the job's own model (``JobSpec``) checks every field."""

    model_config = ConfigDict(extra="allow", frozen=True)


class JobArgs(Args):
    job_id: Text


class JobListArgs(Args):
    limit: int = Field(100, ge=1, le=10000)
    dead: bool = False


class ChainAddArgs(TrackArgs):
    plugin: Text
    params: Params | None = None
    index: Integer | None = None


class ChainIndexArgs(TrackArgs):
    index: Integer


class ChainMoveArgs(ChainIndexArgs):
    to: Integer


class ChainBypassArgs(ChainIndexArgs):
    on: Flag


class ChainParamArgs(ChainIndexArgs):
    name: Text
    value: Value


class NotifyArgs(Args):
    on: Flag = True




class GenerationsArgs(Args):
    """Filters of the library's list (query-string values: pydantic turns "120" into 120.0)."""
    session: str | None = None
    backend: str | None = None
    bpm_min: float | None = Field(None, ge=0, le=1000)
    bpm_max: float | None = Field(None, ge=0, le=1000)
    key: str | None = None
    style: str | None = None
    q: str | None = Field(None, max_length=500)  # words the prompt must contain
    since: float | None = None  # UNIX seconds
    until: float | None = None
    deleted: bool = False  # the trash instead
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)


class GenerationArgs(Args):
    id: str | int  # a take id (20261130-191500-a1b2c3) or the library's number


class SimilarArgs(Args):
    prompt: Text
    k: int = Field(5, ge=1, le=100)
