"""What every plugin kind shares: the error, the parameter description, and the one loader thread."""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading
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
