"""Plugins: VST3 (by path or by name in the standard folders) and pedalboard built-ins, one surface.

``find_vst3`` resolves a name ("ZamCompX2") or path to a bundle; ``BUILTINS``
describes pedalboard's built-in effects with their parameters (name, range,
unit, default); ``Plugin`` wraps either kind with what a host needs:

- parameters by name, checked against their range, with an error that lists
  what exists ("ZamCompX2 has no parameter 'treshold_db'; it has attack_ms, …"),
- mono plugins on stereo tracks as **dual mono** (two instances, parameters kept
  in step): many VST3 effects (ZamComp, ZamEQ2, ZamDelay) have a mono main bus,
- state as plain data (VST3 ``raw_state`` as base64, built-ins as parameters),
  so a session file can restore it.

Loading in a child process (scan, and the first load of a plugin a chain takes) is in
``jackgen.plugins.isolate``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VST3_DIRS = ("~/.vst3", "/usr/lib/vst3", "/usr/local/lib/vst3")


class PluginError(ValueError):
    """A plugin request that cannot be met; the message says what exists instead."""


@dataclass(frozen=True)
class Param:
    name: str
    min: float | None
    max: float | None
    default: Any
    unit: str = ""
    choices: tuple[str, ...] = ()

    def check(self, plugin: str, value: Any) -> Any:
        if self.choices:
            if value not in self.choices:
                raise PluginError(f"{plugin} {self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise PluginError(f"{plugin} {self.name} must be a number, got {value!r}")
        if self.min is not None and self.max is not None and not (self.min <= float(value) <= self.max):
            raise PluginError(f"{plugin} {self.name} must be from {self.min:g} to {self.max:g}"
                              f"{' ' + self.unit if self.unit else ''}, got {value!r}")
        return float(value)

    def to_dict(self) -> dict:
        d = {"name": self.name, "min": self.min, "max": self.max, "default": self.default, "unit": self.unit}
        if self.choices:
            d["choices"] = list(self.choices)
        return d


# pedalboard built-ins: parameter -> (min, max, unit). Defaults are read from a fresh instance.
BUILTIN_PARAMS: dict[str, dict[str, tuple[float, float, str]]] = {
    "Compressor": {"threshold_db": (-60, 0, "dB"), "ratio": (1, 30, ":1"), "attack_ms": (0.01, 500, "ms"),
                   "release_ms": (1, 5000, "ms")},
    "Limiter": {"threshold_db": (-60, 0, "dB"), "release_ms": (1, 5000, "ms")},
    "Gain": {"gain_db": (-96, 24, "dB")},
    "HighpassFilter": {"cutoff_frequency_hz": (10, 22000, "Hz")},
    "LowpassFilter": {"cutoff_frequency_hz": (10, 22000, "Hz")},
    "HighShelfFilter": {"cutoff_frequency_hz": (10, 22000, "Hz"), "gain_db": (-24, 24, "dB"), "q": (0.1, 10, "")},
    "LowShelfFilter": {"cutoff_frequency_hz": (10, 22000, "Hz"), "gain_db": (-24, 24, "dB"), "q": (0.1, 10, "")},
    "PeakFilter": {"cutoff_frequency_hz": (10, 22000, "Hz"), "gain_db": (-24, 24, "dB"), "q": (0.1, 10, "")},
    "Reverb": {"room_size": (0, 1, ""), "damping": (0, 1, ""), "wet_level": (0, 1, ""), "dry_level": (0, 1, ""),
               "width": (0, 1, ""), "freeze_mode": (0, 1, "")},
    "Delay": {"delay_seconds": (0, 10, "s"), "feedback": (0, 1, ""), "mix": (0, 1, "")},
    "Chorus": {"rate_hz": (0.01, 100, "Hz"), "depth": (0, 1, ""), "centre_delay_ms": (1, 100, "ms"),
               "feedback": (-1, 1, ""), "mix": (0, 1, "")},
    "Phaser": {"rate_hz": (0.01, 100, "Hz"), "depth": (0, 1, ""), "centre_frequency_hz": (20, 20000, "Hz"),
               "feedback": (-1, 1, ""), "mix": (0, 1, "")},
    "Distortion": {"drive_db": (0, 100, "dB")},
    "Clipping": {"threshold_db": (-60, 0, "dB")},
    "NoiseGate": {"threshold_db": (-100, 0, "dB"), "ratio": (1, 100, ":1"), "attack_ms": (0.01, 500, "ms"),
                  "release_ms": (1, 5000, "ms")},
    "Bitcrush": {"bit_depth": (1, 32, "bits")},
}


# pedalboard (JUCE) lets a VST3 be loaded only by the thread that loaded it first in a process:
# a second feeder stream, in its own thread, got "must be reloaded on the main thread". Every load
# (and state restore) runs in this one long-lived thread; processing may come from any thread.
_LOADER: concurrent.futures.ThreadPoolExecutor | None = None
_LOADER_GUARD = threading.Lock()


def on_loader(fn, *args):
    """Run ``fn(*args)`` in the process's one plugin-loading thread and return its result."""
    global _LOADER
    if threading.current_thread().name.startswith("plugin-loader"):
        return fn(*args)
    with _LOADER_GUARD:
        if _LOADER is None:
            _LOADER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="plugin-loader")
    return _LOADER.submit(fn, *args).result()


def builtin_params(name: str) -> dict[str, Param]:
    import pedalboard

    inst = getattr(pedalboard, name)()
    return {p: Param(p, lo, hi, float(getattr(inst, p)), unit) for p, (lo, hi, unit) in BUILTIN_PARAMS[name].items()}


def vst3_dirs(extra: tuple[str, ...] | list[str] = ()) -> list[Path]:
    return [Path(d).expanduser() for d in (*VST3_DIRS, *extra)]


def find_vst3(name_or_path: str, extra_dirs: tuple[str, ...] | list[str] = ()) -> Path:
    """A VST3 bundle by path, or by name ('ZamCompX2', 'ZamCompX2.vst3') in the standard folders."""
    p = Path(name_or_path).expanduser()
    if p.is_absolute() or "/" in name_or_path:
        if p.suffix.lower() != ".vst3" or not p.exists():
            raise PluginError(f"{name_or_path} is not a VST3 plugin (a .vst3 bundle)")
        # a plugin is code jackgen runs: only from the plugin folders, whoever asks (OSC, HTTP)
        rp = p.resolve()
        dirs = [d.resolve() for d in vst3_dirs(extra_dirs)]
        if not any(rp.is_relative_to(d) for d in dirs):
            raise PluginError(f"{name_or_path} is outside the plugin folders ({', '.join(map(str, dirs))}): "
                              "install it there or add its folder to plugins.vst3_dirs")
        return p
    stem = name_or_path[:-5] if name_or_path.lower().endswith(".vst3") else name_or_path
    found = []
    for d in vst3_dirs(extra_dirs):
        if d.is_dir():
            for b in sorted(d.glob("*.vst3")):
                if b.stem.lower() == stem.lower():
                    return b
                found.append(b.stem)
    builtins = ", ".join(BUILTIN_PARAMS)
    raise PluginError(f"no plugin named {name_or_path!r}: not a built-in ({builtins}) and no {stem}.vst3 in "
                      f"{', '.join(map(str, vst3_dirs(extra_dirs)))}"
                      + (f" (found: {', '.join(found[:12])}{' …' if len(found) > 12 else ''})" if found else ""))


def _vst3_params(plugin) -> dict[str, Param]:
    out = {}
    for key, p in plugin.parameters.items():
        lo, hi, _step = p.range
        choices = tuple(str(v) for v in (p.valid_values or ())) if p.type is str else ()
        out[key] = Param(key, None if lo is None else float(lo), None if hi is None else float(hi),
                         getattr(plugin, key), (p.label or "").strip(), choices)
    return out


class Plugin:
    """One effect in a chain, stereo in and out. Create, prepare and process it on one thread
    (VST3 plugins have hung when called from another: pedalboard#278)."""

    def __init__(self, name_or_path: str, sample_rate: float, extra_dirs: tuple[str, ...] | list[str] = ()) -> None:
        on_loader(self._load, name_or_path, sample_rate, extra_dirs)

    def _load(self, name_or_path: str, sample_rate: float, extra_dirs) -> None:
        import pedalboard

        self.sample_rate = float(sample_rate)
        self.bypass = False
        if name_or_path in BUILTIN_PARAMS:
            self.kind, self.path, self.name = "builtin", None, name_or_path
            self._instances = [getattr(pedalboard, name_or_path)()]
            self.params = builtin_params(name_or_path)
        else:
            path = find_vst3(name_or_path, extra_dirs)
            try:
                inst = pedalboard.load_plugin(str(path))
            except Exception as e:  # pedalboard raises ImportError/RuntimeError/ValueError for bad bundles
                raise PluginError(f"{path} could not be loaded as a VST3 plugin: {e}") from None
            if not inst.is_effect:
                raise PluginError(f"{path.name} is an instrument, not an effect: chains take effects")
            self.kind, self.path, self.name = "vst3", str(path), inst.name
            self._instances = [inst]
            self.params = _vst3_params(inst)
        self.dual_mono = not self._takes_stereo()
        if self.dual_mono:
            self._instances.append(self._clone())

    def _takes_stereo(self) -> bool:
        probe = np.zeros((2, 64), dtype=np.float32)
        try:
            self._instances[0].process(probe, self.sample_rate, reset=True)
            return True
        except ValueError:  # "does not support 2-channel output": a mono main bus
            self._instances[0].process(probe[:1], self.sample_rate, reset=True)
            return False

    def _clone(self):
        import pedalboard

        if self.kind == "builtin":
            twin = getattr(pedalboard, self.name)()
        else:
            twin = pedalboard.load_plugin(self.path)
            twin.raw_state = self._instances[0].raw_state
        return twin

    # ----------------------------------------------------------------- parameters
    def set(self, name: str, value: Any) -> Any:
        p = self.params.get(name)
        if p is None:
            raise PluginError(f"{self.name} has no parameter {name!r}; it has {', '.join(self.params)}")
        v = p.check(self.name, value)
        for inst in self._instances:
            setattr(inst, name, v)
        return getattr(self._instances[0], name)

    def get(self, name: str) -> Any:
        if name not in self.params:
            raise PluginError(f"{self.name} has no parameter {name!r}; it has {', '.join(self.params)}")
        return getattr(self._instances[0], name)

    @property
    def latency_frames(self) -> int:
        """What the plugin reports (VST3); built-ins used here have none."""
        return int(getattr(self._instances[0], "reported_latency_samples", 0) or 0)

    # ----------------------------------------------------------------- audio
    def process(self, block: np.ndarray) -> np.ndarray:
        """(2, n) float32 -> (2, n) float32, keeping the plugin's state across calls."""
        if self.bypass:
            return block
        if self.dual_mono:
            left = self._instances[0].process(block[:1], self.sample_rate, reset=False)
            right = self._instances[1].process(block[1:2], self.sample_rate, reset=False)
            return np.concatenate([left, right], axis=0)
        return self._instances[0].process(block, self.sample_rate, reset=False)

    def reset(self) -> None:
        for inst in self._instances:
            inst.reset()

    # ----------------------------------------------------------------- state
    def state(self) -> dict:
        d: dict[str, Any] = {"plugin": self.path or self.name, "kind": self.kind, "name": self.name,
                             "bypass": self.bypass}
        if self.kind == "vst3":  # the plugin's own blob, and the parameters: DPF plugins keep them out of it
            d["raw_state"] = base64.b64encode(self._instances[0].raw_state).decode()
        d["params"] = {k: self.get(k) for k in self.params}
        return d

    @classmethod
    def from_state(cls, state: dict, sample_rate: float, extra_dirs=()) -> Plugin:
        p = cls(state["plugin"], sample_rate, extra_dirs)
        if state.get("raw_state"):
            raw = base64.b64decode(state["raw_state"])
            def restore() -> None:
                for inst in p._instances:
                    inst.raw_state = raw

            on_loader(restore)
        for k, v in (state.get("params") or {}).items():
            p.set(k, v)
        p.bypass = bool(state.get("bypass", False))
        return p

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": self.path, "bypass": self.bypass,
                "dual_mono": self.dual_mono, "latency_frames": self.latency_frames,
                "params": {k: self.get(k) for k in self.params}}


class Chain:
    """Plugins in series on a stereo signal. Built and run on one thread (see Plugin)."""

    def __init__(self, sample_rate: float, extra_dirs=()) -> None:
        self.sample_rate = float(sample_rate)
        self.extra_dirs = tuple(extra_dirs)
        self.plugins: list[Plugin] = []

    def add(self, name_or_path: str, params: dict | None = None, index: int | None = None) -> Plugin:
        p = Plugin(name_or_path, self.sample_rate, self.extra_dirs)
        for k, v in (params or {}).items():
            p.set(k, v)  # a bad parameter leaves the chain as it was
        self.plugins.insert(len(self.plugins) if index is None else index, p)
        return p

    def _at(self, i: int) -> Plugin:
        if not isinstance(i, int) or not 0 <= i < len(self.plugins):
            n = len(self.plugins)
            raise PluginError(f"no plugin {i} in this chain: it has {n} ({'0…' + str(n - 1) if n else 'none'})")
        return self.plugins[i]

    def remove(self, i: int) -> Plugin:
        self._at(i)
        return self.plugins.pop(i)

    def move(self, i: int, to: int) -> None:
        p = self.remove(i)
        self.plugins.insert(max(0, min(to, len(self.plugins))), p)

    def set_bypass(self, i: int, on: bool) -> None:
        self._at(i).bypass = bool(on)

    def set(self, i: int, name: str, value: Any) -> Any:
        return self._at(i).set(name, value)

    @property
    def latency_frames(self) -> int:
        return sum(p.latency_frames for p in self.plugins if not p.bypass)

    def process(self, block: np.ndarray, crumb: np.ndarray | None = None) -> np.ndarray:
        """``crumb``: a one-element int64 array in shared memory the caller's supervisor reads
        if this process dies: index + 1 of the plugin running (0 when none is)."""
        if crumb is None:
            for p in self.plugins:
                block = p.process(block)
            return block
        for i, p in enumerate(self.plugins):
            crumb[0] = i + 1
            block = p.process(block)
        crumb[0] = 0
        return block

    def state(self) -> list[dict]:
        return [p.state() for p in self.plugins]

    @classmethod
    def from_state(cls, states: list[dict], sample_rate: float, extra_dirs=(), crumb: np.ndarray | None = None) -> Chain:
        """``crumb`` (see process) holds −(index + 1) while that plugin loads."""
        c = cls(sample_rate, extra_dirs)
        for i, s in enumerate(states):
            if crumb is not None:
                crumb[0] = -(i + 1)
            c.plugins.append(Plugin.from_state(s, sample_rate, extra_dirs))
        if crumb is not None:
            crumb[0] = 0
        return c
