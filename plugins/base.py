"""What every plugin kind shares: the error, the parameter description, and the one loader thread."""

from __future__ import annotations

import concurrent.futures
import gc
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any


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
    kind: str = "number"  # number | path (a file the plugin reads: a drum kit, a sample)

    def check(self, plugin: str, value: Any) -> Any:
        if self.kind == "path":
            if not isinstance(value, str) or not value or "\0" in value:
                raise PluginError(f"{plugin} {self.name} must be a file path, got {value!r}")
            if not os.path.isfile(value):
                raise PluginError(f"{plugin} {self.name}: no file {value}")
            return value
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
        if self.kind != "number":
            d["kind"] = self.kind
        return d


def resolve_file_params(params: dict, resolve) -> dict:
    """``params`` with every value that names a file (a string with a slash, or an .xml name: a
    drum kit, its MIDI map) replaced by ``str(resolve(value, name))``, where ``resolve`` applies the
    caller's folder policy and raises when the file is outside it."""
    return {k: (str(resolve(v, k)) if isinstance(v, str) and ("/" in v or v.lower().endswith(".xml")) else v)
            for k, v in params.items()}


# pedalboard (JUCE) lets a VST3 be loaded only by the thread that loaded it first in a process:
# a second feeder stream, in its own thread, got "must be reloaded on the main thread". Every load
# (and state restore) runs in this one long-lived thread; processing may come from any thread.
_LOADER: concurrent.futures.ThreadPoolExecutor | None = None
_LOADER_GUARD = threading.Lock()


def _loader() -> concurrent.futures.ThreadPoolExecutor:
    global _LOADER
    with _LOADER_GUARD:
        if _LOADER is None:
            _LOADER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="plugin-loader")
    return _LOADER


def on_loader(fn, *args):
    """Run ``fn(*args)`` in the process's one plugin-loading thread and return its result."""
    if threading.current_thread().name.startswith("plugin-loader"):
        return fn(*args)
    return _loader().submit(fn, *args).result()


VST3_LOADS = [0]  # VST3 instances made since the last full collection (see release_on_loader)
_LAST_COLLECT = [0.0]
COLLECT_EVERY_S = 5.0


def release_on_loader(holder: list) -> None:
    """Let go of plugins on the thread that made them (as they were loaded): ``holder`` is a
    one-item list with the last reference to something with ``release()`` (a chain, a stage);
    it is released and dropped there, without waiting.

    Every VST3 instance pedalboard makes leaves a twin behind in a reference cycle (through its
    parameter cache), already in the oldest generation when the load returns: only a full
    collection frees it, and those are rare, so a feeder restarting four ZamCompX2 chains every
    few seconds grew about 18 MB a round (4.5 MB an instance). After VST3 loads, a full collection
    runs here, at most every ``COLLECT_EVERY_S``; the processes that stream call ``gc.freeze()``
    once started, so it walks only what was made since (a few ms)."""
    def drop(h: list) -> None:
        for x in h:
            x.release()
        h.clear()
        now = time.monotonic()
        if VST3_LOADS[0] and now - _LAST_COLLECT[0] >= COLLECT_EVERY_S:
            VST3_LOADS[0] = 0
            _LAST_COLLECT[0] = now
            gc.collect()

    if holder:
        _loader().submit(drop, holder)
