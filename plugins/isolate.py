"""Plugins loaded in a child process, so one that crashes, hangs or prints to stdout while loading
cannot take its host with it: ``scan`` probes every VST3 bundle (``python -m jackgen.plugins.isolate
PATH``) and ``instantiate_isolated`` loads one plugin with its parameters to learn its state,
parameter table and latency before a chain takes it. The answer is the child's last stdout line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from jackgen.plugins.host import BUILTIN_PARAMS, PluginError, _vst3_params, builtin_params, open_plugin, vst3_dirs


def probe(path: str) -> dict:
    """Describe one VST3 bundle: its plugins with their parameters (runs in a child process)."""
    import pedalboard

    out = {"path": path, "plugins": []}
    for name in pedalboard.VST3Plugin.get_plugin_names_for_file(path):
        inst = pedalboard.load_plugin(path, plugin_name=name)
        ins = [n for n in (2, 1) if _accepts(inst, n)]  # processing also prepares it, as a host would
        out["plugins"].append({
            "name": name, "effect": bool(inst.is_effect), "channels": ins[0] if ins else None,
            "params": [p.to_dict() for p in _vst3_params(inst).values()],
        })
    return out


def _accepts(inst, channels: int) -> bool:
    try:
        inst.process(np.zeros((channels, 64), np.float32), 48000.0, reset=True)
        return True
    except ValueError:
        return False


def _why(r: subprocess.CompletedProcess) -> str:
    """What went wrong in a child that loaded a plugin."""
    if r.returncode < 0:
        import signal

        try:
            name = signal.Signals(-r.returncode).name
        except ValueError:
            name = f"signal {-r.returncode}"
        return f"crashed while loading ({name}): it cannot be used here"
    err = [ln for ln in r.stderr.decode(errors="replace").strip().splitlines() if "Traceback" not in ln]
    return f"could not be loaded (exit code {r.returncode}: {err[-1] if err else 'no message'})"


def scan(extra_dirs=(), timeout_s: float = 10.0, progress=None) -> dict:
    """Every VST3 bundle in the folders, each probed in its own process; plus the built-ins."""
    bundles = [b for d in vst3_dirs(extra_dirs) if d.is_dir() for b in sorted(d.glob("*.vst3"))]
    vst3, failed = [], []
    for i, b in enumerate(bundles):
        if progress:
            progress(i, len(bundles), b.name)
        try:
            r = subprocess.run([sys.executable, "-m", "jackgen.plugins.isolate", str(b)], capture_output=True,
                               timeout=timeout_s, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except subprocess.TimeoutExpired:
            failed.append({"path": str(b), "error": f"did not load within {timeout_s:.0f} s"})
            continue
        lines = [ln for ln in r.stdout.decode(errors="replace").splitlines() if ln.startswith('{"path"')]
        if r.returncode != 0 or not lines:
            failed.append({"path": str(b), "error": _why(r)[:300]})
            continue
        vst3.append(json.loads(lines[-1]))
    builtins = [{"name": n, "params": [p.to_dict() for p in builtin_params(n).values()]} for n in BUILTIN_PARAMS]
    lv2, lv2_path = [], None
    if progress:
        progress(len(bundles), len(bundles) + 1, "LV2 plugins")
    try:  # lilv reads every bundle's Turtle files; no plugin code runs, but a broken bundle may crash lilv
        r = subprocess.run([sys.executable, "-m", "jackgen.plugins.isolate", "--lv2"], capture_output=True,
                           timeout=max(30.0, timeout_s))
        lines = [ln for ln in r.stdout.decode(errors="replace").splitlines() if ln.startswith('{"path"')]
        if r.returncode == 0 and lines:
            got = json.loads(lines[-1])
            lv2, lv2_path = got["plugins"], got["path"]
        else:
            failed.append({"path": "LV2 path", "error": _why(r)[:300]})
    except subprocess.TimeoutExpired:
        failed.append({"path": "LV2 path", "error": "reading the LV2 bundles took too long"})
    return {"folders": [str(d) for d in vst3_dirs(extra_dirs)], "vst3": vst3, "failed": failed, "builtins": builtins,
            "lv2": lv2, "lv2_path": lv2_path}


def instantiate(name_or_path: str, params: dict | None = None, extra_dirs=()) -> dict:
    """Load a plugin, set ``params``; its state and parameter table (runs in a child process)."""
    p = open_plugin(name_or_path, 48000.0, extra_dirs)
    params = dict(params or {})
    if "preset" in params:  # first: the other parameters given adjust the preset
        p.set("preset", params.pop("preset"))
    for k, v in params.items():
        p.set(k, v)
    return {"state": p.state(), "params": [q.to_dict() for q in p.params.values()], "dual_mono": p.dual_mono,
            "latency_frames": p.latency_frames, "instrument": bool(p.instrument), "format": p.kind}


def instantiate_isolated(name_or_path: str, params: dict | None = None, extra_dirs=(),
                         timeout_s: float = 10.0) -> dict:
    """``instantiate`` in a child process: a plugin that crashes, hangs or prints cannot hurt the caller."""
    arg = json.dumps({"plugin": name_or_path, "params": params or {}, "extra_dirs": list(extra_dirs)})
    try:
        r = subprocess.run([sys.executable, "-m", "jackgen.plugins.isolate", "--instantiate", arg],
                           capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise PluginError(f"{name_or_path} did not load within {timeout_s:.0f} s") from None
    lines = [ln for ln in r.stdout.decode(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        raise PluginError(f"{name_or_path} {_why(r)}")
    out = json.loads(lines[-1])
    if "error" in out:
        raise PluginError(out["error"])
    return out


if __name__ == "__main__":  # the answer is the last line: plugins may print, too
    if sys.argv[1] == "--lv2":
        from jackgen.plugins import lv2 as _lv2

        try:
            result = _lv2.scan()
        except PluginError as e:
            result = {"path": None, "plugins": [], "error": str(e)}
    elif sys.argv[1] == "--instantiate":
        req = json.loads(sys.argv[2])
        try:
            result = instantiate(req["plugin"], req.get("params"), req.get("extra_dirs", ()))
        except PluginError as e:
            result = {"error": str(e)}
    else:
        result = probe(sys.argv[1])
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # some plugins hang in their static destructors; the answer is out
