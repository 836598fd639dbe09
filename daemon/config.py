"""Configuration: one typed, validated object built once at start.

Read from a TOML file (``--config FILE`` or ``$JACKGEN_CONFIG``); every key has a
default, so no file is needed. Errors name the key, the value and what is
allowed, e.g. ``engine.fade_ms = -1: must be >= 0.5``.

Example (every key shown with its default)::

    instance = "default"            # names the shared-memory rings; one running jackgen per name
    data_dir = ""                   # jackgen's own data (the embedded Redis, the library); "": $XDG_DATA_HOME/jackgen
                                    # or ~/.local/share/jackgen

    [jack]
    client_name = "jackgen"
    server = ""                     # JACK server name; "" = $JACK_DEFAULT_SERVER or the default
    autoconnect_master = true       # master_L/R -> system:playback_1/2
    connect_timeout_s = 10.0        # a JACK server that does not answer a connect this long: retried

    [engine]
    max_commands_per_block = 64
    fade_ms = 3.0                   # underrun / stop fade
    gain_smoothing_ms = 10.0
    limiter_ceiling_db = -0.3         # master true-peak ceiling (dBTP, 4x oversampled detection)
    limiter_release_ms = 80.0
    limiter_lookahead_ms = 1.5        # master latency = look-ahead + 10 frames (reported on master_L/R)
    ring_seconds = 2.0              # per-track ring, rounded up to a power of two frames
    meter_hz = 30.0

    [control]
    http_host = "127.0.0.1"
    http_port = 8750
    osc_host = "127.0.0.1"
    osc_port = 57130
    sessions_dir = "sessions"
    media_dirs = []                 # more folders audio files may be read from (besides sessions_dir)
    midi_api = "alsa"               # hardware MIDI controllers via rtmidi: alsa | jack | none
    midi_inputs = ["*"]             # controller port names to open (shell patterns)
    midi_exclude = ["Midi Through*", "jackgen*", "*jackgen-control*"]
    session = "default"
    tempo_bpm = 120.0
    token = ""                      # API token (or JACKGEN_TOKEN): HTTP "Authorization: Bearer …", OSC
                                    # /jackgen/auth TOKEN first; required to bind beyond 127.0.0.1
    osc_allow = ["127.0.0.0/8", "::1/128"]  # source networks OSC is taken from (others dropped, counted)
    beats_per_bar = 4

    [feeder]
    prefill_ms = 200.0

    [supervisor]
    restart_delay_s = 0.5
    max_restart_delay_s = 10.0

    [logging]
    level = "info"                  # debug | info | warning | error (JACKGEN_LOG_LEVEL wins)
    levels = {}                     # per logger, e.g. {"jackgen.osc" = "warning", "jackgen.libjack" = "debug"}

    [redis]
    url = ""                        # "": jackgen runs its own redis-server on a unix socket in the
                                    # runtime folder; else redis://[user:password@]host:port/db,
                                    # rediss://… (TLS) or unix:///path/to/redis.sock
    dir = ""                        # the embedded server's data (AOF); "": <data_dir>/redis/<instance>
    appendfsync = "everysec"        # embedded: a killed redis-server loses nothing, a power cut at most
                                    # the last second; "always" loses nothing either way (slower)

    [database]
    url = ""                        # the library's metadata: "" = SQLite in <data_dir>/library/<instance>.sqlite;
                                    # postgresql+psycopg://user:password@host/db for PostgreSQL

    [jobs]
    max_attempts = 3                # a job whose worker died (or that raised) this many times goes to
                                    # the dead letters (`jackgen jobs list --dead`, `jackgen jobs retry ID`)
    retry_backoff_s = 2.0           # the wait before attempt 2; doubles with each attempt (at most 60 s)
    heartbeat_s = 1.0               # how often a worker says it is alive and renews its running job's claim
    worker_ttl_s = 5.0              # a worker silent this long is dead: its job is taken over
    claim_idle_s = 60.0             # a claim not renewed this long is taken over (a hung worker)
    starve_s = 60.0                 # a job waiting this long goes first, whatever its priority
    max_queued = 10000              # more waiting jobs than this: submissions get 503
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from jackgen.common.files import is_session_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.1, ::1, localhost)."""
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key(s)."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JackConfig(_Section):
    client_name: str = Field("jackgen", min_length=1, max_length=32)
    server: str = ""
    autoconnect_master: bool = True
    connect_timeout_s: float = Field(10.0, ge=1.0, le=300.0)


class EngineConfig(_Section):
    max_commands_per_block: int = Field(64, ge=1, le=1024)
    fade_ms: float = Field(3.0, ge=0.5, le=100.0)
    gain_smoothing_ms: float = Field(10.0, ge=0.0, le=1000.0)
    limiter_ceiling_db: float = Field(-0.3, ge=-24.0, le=0.0)
    limiter_release_ms: float = Field(80.0, ge=1.0, le=5000.0)
    limiter_lookahead_ms: float = Field(1.5, ge=0.1, le=10.0)
    ring_seconds: float = Field(2.0, ge=0.1, le=60.0)
    meter_hz: float = Field(30.0, ge=1.0, le=100.0)


class ControlConfig(_Section):
    http_host: str = "127.0.0.1"
    http_port: int = Field(8750, ge=0, le=65535)
    sessions_dir: str = "sessions"
    session: str = "default"
    osc_host: str = "127.0.0.1"
    osc_port: int = Field(57130, ge=0, le=65535)
    media_dirs: tuple[str, ...] = ()  # folders besides the sessions folder that files may come from
    midi_api: str = "alsa"  # hardware controllers: alsa | jack | none
    midi_inputs: tuple[str, ...] = ("*",)  # port name patterns to open
    midi_exclude: tuple[str, ...] = ("Midi Through*", "jackgen*", "*jackgen-control*")
    tempo_bpm: float = Field(120.0, ge=20.0, le=400.0)
    token: str = ""  # API token (or JACKGEN_TOKEN); required when a server binds beyond this machine
    osc_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # source networks OSC is taken from

    @field_validator("osc_allow")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for n in v:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise ValueError(f"{n!r} is not a network (e.g. 192.168.1.0/24)") from None
        return v

    @field_validator("midi_api")
    @classmethod
    def _midi_api(cls, v: str) -> str:
        if v not in ("alsa", "jack", "none"):
            raise ValueError("must be alsa, jack or none")
        return v
    beats_per_bar: int = Field(4, ge=1, le=32)

    @field_validator("session")
    @classmethod
    def _session_name(cls, v: str) -> str:
        check_session_name(v)
        return v


class FeederConfig(_Section):
    prefill_ms: float = Field(200.0, ge=0.0, le=10000.0)


class GeneratorsConfig(_Section):
    workers: tuple[str, ...] = ("procedural", "fluidsynth")  # local workers `jackgen run` starts; () for none
    start_on_demand: tuple[str, ...] = ("musicgen",)  # local workers started when their backend's first job waits
    default_backend: str = "procedural"
    musicgen_enabled: bool = True  # False: musicgen jobs are refused (no torch on this box)
    max_duration_s: float = Field(600.0, ge=1.0, le=3600.0)
    prefill_ms: float = Field(100.0, ge=0.0, le=10000.0)  # audio in the ring before a generated track starts
    worker_start_timeout_s: float = Field(300.0, ge=1.0, le=3600.0)  # unused since jobs went to Redis; old configs load
    max_jobs_kept: int = Field(1000, ge=10, le=1_000_000)
    soundfont: str = ""  # General MIDI SoundFont; empty: Debian's FluidR3_GM
    musicgen_model: str = "small"  # small | medium | large | melody | facebook/musicgen-… | a checkpoint folder
    musicgen_device: str = "auto"  # auto | cuda | cuda:N | cpu
    musicgen_dtype: str = "auto"  # auto (bfloat16/float16 on a GPU, float32 on the CPU) | float16 | bfloat16 | float32
    musicgen_chunk_s: float = Field(0.5, ge=0.1, le=5.0)  # audio per streamed chunk
    musicgen_first_chunk_s: float = Field(0.25, ge=0.04, le=5.0)
    musicgen_cache_dir: str = ""  # Hugging Face cache; empty: HF's default (~/.cache/huggingface)
    max_speed: float = Field(0.0, ge=0.0, le=1000.0)  # > 0: a worker renders at most this many times real time

    @field_validator("workers", "start_on_demand")
    @classmethod
    def _known_workers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [b for b in v if b not in ("procedural", "fluidsynth", "musicgen")]
        if bad:
            raise ValueError(f"unknown backend(s) {', '.join(bad)}: procedural, fluidsynth, musicgen")
        return v

    @field_validator("default_backend")
    @classmethod
    def _known_default(cls, v: str) -> str:
        if v not in ("procedural", "fluidsynth", "musicgen"):
            raise ValueError(f"unknown backend {v!r}: procedural, fluidsynth, musicgen")
        return v

    def allowed_backends(self) -> tuple[str, ...]:
        return ("procedural", "fluidsynth") + (("musicgen",) if self.musicgen_enabled else ())


class PluginsConfig(_Section):
    vst3_dirs: tuple[str, ...] = ()  # searched after ~/.vst3, /usr/lib/vst3, /usr/local/lib/vst3
    scan_timeout_s: float = Field(10.0, ge=1.0, le=600.0)  # per bundle; a plugin that hangs is skipped
    lead_ms: float = Field(50.0, ge=5.0, le=2000.0)  # how far ahead of the playhead a chained track is processed
    # live MIDI into a track's instrument (`jackgen live N on`) sounds exactly this long after its frame
    live_latency_ms: float = Field(50.0, ge=10.0, le=1000.0)
    max_per_chain: int = Field(16, ge=1, le=64)


class RedisConfig(_Section):
    url: str = ""
    dir: str = ""
    appendfsync: str = "everysec"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^(redis|rediss|unix)://", v):
            raise ValueError("must start with redis://, rediss:// or unix:// (or be empty for the embedded server)")
        return v

    @field_validator("appendfsync")
    @classmethod
    def _fsync(cls, v: str) -> str:
        if v not in ("everysec", "always"):
            raise ValueError("must be everysec or always")
        return v


class DatabaseConfig(_Section):
    url: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", v):
            raise ValueError("must be sqlite:///PATH or postgresql+psycopg://user:password@host/db (or empty: SQLite "
                             "in the data folder)")
        if v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v[len("postgresql://"):]  # psycopg 3 is the driver jackgen ships
        return v


class JobsConfig(_Section):
    max_attempts: int = Field(3, ge=1, le=100)
    retry_backoff_s: float = Field(2.0, ge=0.0, le=3600.0)
    heartbeat_s: float = Field(1.0, ge=0.05, le=60.0)
    worker_ttl_s: float = Field(5.0, ge=0.2, le=600.0)
    claim_idle_s: float = Field(60.0, ge=1.0, le=86400.0)
    starve_s: float = Field(60.0, ge=0.0, le=86400.0)
    max_queued: int = Field(10000, ge=1, le=1_000_000)


class SupervisorConfig(_Section):
    restart_delay_s: float = Field(0.5, ge=0.0, le=60.0)
    max_restart_delay_s: float = Field(10.0, ge=0.0, le=600.0)


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class LoggingConfig(_Section):
    level: str = "info"
    levels: dict[str, str] = {}

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return v.lower()

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [f"{k}={x}" for k, x in v.items() if str(x).lower() not in LOG_LEVELS]
        if bad:
            raise ValueError(f"levels must be one of {', '.join(LOG_LEVELS)}: {', '.join(bad)}")
        return {k: str(x).lower() for k, x in v.items()}


class Config(_Section):
    instance: str = "default"
    jack: JackConfig = JackConfig()
    engine: EngineConfig = EngineConfig()
    control: ControlConfig = ControlConfig()
    feeder: FeederConfig = FeederConfig()
    generators: GeneratorsConfig = GeneratorsConfig()
    plugins: PluginsConfig = PluginsConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    redis: RedisConfig = RedisConfig()
    jobs: JobsConfig = JobsConfig()
    database: DatabaseConfig = DatabaseConfig()
    logging: LoggingConfig = LoggingConfig()
    data_dir: str = ""

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", v):
            raise ValueError("must be 1-32 letters, digits, '_' or '-'")
        return v

    @property
    def jack_server(self) -> str | None:
        return self.jack.server or os.environ.get("JACK_DEFAULT_SERVER") or None

    @property
    def control_url(self) -> str:
        host = self.control.http_host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.control.http_port}"

    @property
    def data_path(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir).expanduser().resolve()
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "jackgen"

    @property
    def runtime_path(self) -> Path:
        """Sockets and other things that live as long as this instance runs."""
        base = os.environ.get("JACKGEN_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
        if base:
            return Path(base) / "jackgen" / self.instance
        if os.geteuid() == 0:
            return Path("/run/jackgen") / self.instance
        return Path(f"/tmp/jackgen-{os.getuid()}") / self.instance

    @property
    def token(self) -> str:
        return self.control.token or os.environ.get("JACKGEN_TOKEN", "")

    def exposure_problems(self, roles: tuple[str, ...] = ("http", "osc", "redis")) -> list[str]:
        """Why this config must not start: a server bound beyond this machine without a token,
        a Redis beyond this machine without a password."""
        out = []
        c = self.control
        if not self.token:
            for role, host, port in (("http", c.http_host, c.http_port), ("osc", c.osc_host, c.osc_port)):
                if role in roles and port and not is_loopback(host):
                    out.append(f"control.{role}_host is {host!r}, which other machines can reach, and no API token "
                               "is set: set control.token (or JACKGEN_TOKEN) to a long random string, or bind "
                               "127.0.0.1")
        if "redis" in roles and self.redis.url:
            from urllib.parse import urlsplit

            u = urlsplit(self.redis.url)
            if u.scheme in ("redis", "rediss") and not is_loopback(u.hostname or "") and not u.password:
                out.append(f"[redis] url names {u.hostname!r}, another machine, without a password: use "
                           "redis://USER:PASSWORD@host:port/db (a Redis ACL user) so nobody else can queue or "
                           "forge jobs")
        return out

    @property
    def feeder_socket(self) -> Path:
        return self.runtime_path / "feeder.sock"

    @property
    def redis_embedded(self) -> bool:
        return not self.redis.url

    @property
    def redis_socket(self) -> Path:
        return self.runtime_path / "redis.sock"

    @property
    def redis_url(self) -> str:
        return self.redis.url or f"unix://{self.redis_socket}"

    @property
    def redis_dir(self) -> Path:
        return Path(self.redis.dir).expanduser().resolve() if self.redis.dir else self.data_path / "redis" / self.instance

    def session_dir(self, name: str | None = None) -> Path:
        return Path(self.control.sessions_dir).resolve() / (name or self.control.session)

    def resolved(self) -> dict:
        """This config as plain data with every folder made absolute (relative ones are relative to
        this process's working folder): what a command run from another folder needs to act on the
        same files as this process (``jackgen bounce`` beside a running daemon)."""
        def absolute(p: str) -> str:
            return str(Path(p).expanduser().resolve()) if p else p

        d = self.model_dump(mode="json")
        d["control"]["sessions_dir"] = absolute(d["control"]["sessions_dir"])
        d["control"]["media_dirs"] = [absolute(p) for p in d["control"]["media_dirs"]]
        d["plugins"]["vst3_dirs"] = [absolute(p) for p in d["plugins"]["vst3_dirs"]]
        d["generators"]["soundfont"] = absolute(d["generators"]["soundfont"])
        d["data_dir"] = str(self.data_path)
        d["redis"]["dir"] = str(self.redis_dir)
        return d


def check_session_name(name: str) -> str:
    if not is_session_name(name):
        raise ValueError(
            f"session name {name!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def _field_range(loc: tuple) -> tuple[object, object] | None:
    """(min, max) declared on the field at ``loc`` (e.g. ("engine", "fade_ms")), if any."""
    model: type[BaseModel] = Config
    info = None
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    lo = hi = None
    for m in getattr(info, "metadata", []):
        lo = getattr(m, "ge", lo)
        hi = getattr(m, "le", hi)
    return (lo, hi) if lo is not None or hi is not None else None


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (see `jackgen run --help` for the documented keys)")
            continue
        rng = _field_range(tuple(e["loc"]))
        allowed = f" (allowed: {rng[0]} .. {rng[1]})" if rng else ""
        lines.append(f"  {key} = {e.get('input')!r}: {e['msg']}{allowed}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Build the config from ``path`` (or ``$JACKGEN_CONFIG``), then ``overrides``.

    ``overrides`` uses dotted keys: ``{"control.session": "demo"}``.
    """
    data: dict[str, Any] = {}
    path = path or os.environ.get("JACKGEN_CONFIG") or None
    source = str(path) if path else "defaults"
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None
