"""Plugins: VST3 (by path or by name in the standard folders), LV2 (by URI or name, in
``jackgen.plugins.lv2``) and pedalboard built-ins, one surface.

``find_vst3`` resolves a name ("ZamCompX2") or path to a bundle; ``BUILTINS``
describes pedalboard's built-in effects with their parameters (name, range,
unit, default); ``Plugin`` wraps either kind with what a host needs:

- parameters by name, checked against their range, with an error that lists
  what exists ("ZamCompX2 has no parameter 'treshold_db'; it has attack_ms, …"),
- mono plugins on stereo tracks as **dual mono** (two instances, parameters kept
  in step): many VST3 effects (ZamComp, ZamEQ2, ZamDelay) have a mono main bus,
- state as plain data (VST3 ``raw_state`` as base64, built-ins as parameters),
  so a session file can restore it.

An instrument (a VST3 instrument, an LV2 plugin with a MIDI input and no audio input) may head a
chain: ``Chain.process`` then takes the block's MIDI and the instrument's output replaces the audio
in. ``open_plugin`` picks the kind: a built-in's name, an LV2 URI, a VST3 name or path, and last an
LV2 plugin's name.

Loading in a child process (scan, and the first load of a plugin a chain takes) is in
``jackgen.plugins.isolate``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from jackgen.plugins.base import VST3_LOADS, Param, PluginError, on_loader  # noqa: F401  (their home for callers)

VST3_DIRS = ("~/.vst3", "/usr/lib/vst3", "/usr/local/lib/vst3")


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
    """One VST3 or built-in plugin in a chain, stereo in and out. Create, prepare and process it on
    one thread (VST3 plugins have hung when called from another: pedalboard#278)."""

    instrument = False

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
            self.kind, self.path, self.name = "vst3", str(path), inst.name
            self._instances = [inst]
            self.params = _vst3_params(inst)
            VST3_LOADS[0] += 1  # pedalboard left a twin in a reference cycle: see release_on_loader
            if not inst.is_effect:  # pedalboard renders it from MIDI, block by block
                self.instrument, self.dual_mono = True, False
                return
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
            VST3_LOADS[0] += 1
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
    def process(self, block: np.ndarray, midi: list[tuple[int, bytes]] | None = None) -> np.ndarray:
        """(2, n) float32 -> (2, n) float32, keeping the plugin's state across calls. An instrument
        takes ``midi`` instead: (frame offset in the block, bytes), sorted."""
        if self.instrument:
            n = block.shape[1]
            msgs = [(bytes(d), o / self.sample_rate) for o, d in (midi or ())]
            out = self._instances[0].process(msgs, n / self.sample_rate, self.sample_rate, num_channels=2,
                                             buffer_size=n, reset=False)
            out = np.asarray(out, dtype=np.float32)
            if out.shape[0] == 1:
                out = np.concatenate([out, out])
            return out[:, :n] if not self.bypass else block
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

    def release(self) -> None:
        """Let go of the plugin now. pedalboard caches a plugin's parameter objects on the plugin, and
        they point back at it: a reference cycle that only Python's cyclic collector frees, and its
        full collections are rare, so a feeder that made and dropped chains kept every VST3 instance
        it had used (about 4.5 MB each for ZamCompX2) until one ran. Breaking the cycle frees it at once."""
        for inst in self._instances:
            try:
                delattr(inst, "__python_parameter_cache__")
            except AttributeError:
                pass
        self._instances = []

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
        if state.get("kind") == "lv2":
            from jackgen.plugins.lv2 import Lv2Plugin

            return Lv2Plugin.from_state(state, sample_rate, extra_dirs)
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
                "dual_mono": self.dual_mono, "instrument": self.instrument, "latency_frames": self.latency_frames,
                "params": {k: self.get(k) for k in self.params}}


def check_order(instruments: list[bool], name: str = "") -> None:
    """An instrument may only head a chain (it makes the audio the effects after it shape)."""
    if any(instruments[1:]):
        what = f"{name} is an instrument" if name else "an instrument"
        raise PluginError(f"{what}: it must be first in the chain (the audio it makes goes through the "
                          "effects after it); one instrument a track")


def open_plugin(name_or_path: str, sample_rate: float, extra_dirs=()):
    """A built-in, an LV2 plugin by URI, a VST3 by name or path, or else an LV2 plugin by name."""
    from jackgen.plugins import lv2

    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise PluginError(f"a plugin is named by a string, got {name_or_path!r}")
    if name_or_path in BUILTIN_PARAMS:
        return Plugin(name_or_path, sample_rate, extra_dirs)
    if lv2.looks_like_uri(name_or_path):
        return lv2.Lv2Plugin(name_or_path, sample_rate)
    try:
        return Plugin(name_or_path, sample_rate, extra_dirs)
    except PluginError as e:
        if "/" in name_or_path or name_or_path.lower().endswith(".vst3") or not lv2.available():
            raise
        try:
            return lv2.Lv2Plugin(name_or_path, sample_rate)
        except PluginError as e2:
            if str(e2).startswith("no LV2 plugin"):
                raise PluginError(f"{e}; {e2}") from None
            raise


class Chain:
    """Plugins in series on a stereo signal. Built and run on one thread (see Plugin)."""

    def __init__(self, sample_rate: float, extra_dirs=()) -> None:
        self.sample_rate = float(sample_rate)
        self.extra_dirs = tuple(extra_dirs)
        self.plugins: list[Plugin] = []

    def add(self, name_or_path: str, params: dict | None = None, index: int | None = None) -> Plugin:
        p = open_plugin(name_or_path, self.sample_rate, self.extra_dirs)
        for k, v in (params or {}).items():
            p.set(k, v)  # a bad parameter leaves the chain as it was
        at = len(self.plugins) if index is None else index
        check_order([*(q.instrument for q in self.plugins[:at]), p.instrument,
                     *(q.instrument for q in self.plugins[at:])], p.name)
        self.plugins.insert(at, p)
        return p

    @property
    def instrument(self):
        """The instrument heading the chain, or None."""
        return self.plugins[0] if self.plugins and self.plugins[0].instrument else None

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

    def process(self, block: np.ndarray, crumb: np.ndarray | None = None,
                midi: list[tuple[int, bytes]] | None = None) -> np.ndarray:
        """``crumb``: a one-element int64 array in shared memory the caller's supervisor reads
        if this process dies: index + 1 of the plugin running (0 when none is). ``midi``: the
        block's events for the instrument at the head, if there is one (ignored otherwise)."""
        for i, p in enumerate(self.plugins):
            if crumb is not None:
                crumb[0] = i + 1
            block = p.process(block, midi) if p.instrument else p.process(block)
        if crumb is not None:
            crumb[0] = 0
        return block

    def state(self) -> list[dict]:
        return [p.state() for p in self.plugins]

    def release(self) -> None:
        """Let go of every plugin now (see Plugin.release); the chain is empty after."""
        for p in self.plugins:
            p.release()
        self.plugins = []

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
